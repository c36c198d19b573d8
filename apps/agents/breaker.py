"""A circuit breaker per workspace and remote provider: when the model keeps failing (timeouts,
429s, 5xx, a server down), turns stop calling it for a while and the visitor is told at once
that the AI cannot answer, and offered a person, instead of waiting through every retry.

Closed: every call goes ahead. Each retryable failure (after the provider's own retries) adds
one to a count that a success clears; a failure no retry fixes (a refused key, a missing model)
is the workspace's configuration, shown to staff, and not counted. AI_BREAKER_FAILURES in a row open the circuit for
AI_BREAKER_OPEN_SECONDS: no call. Then half-open: one trial call at a time goes ahead (the
others are refused as while open); its success closes the circuit, its failure opens it again.

State lives in Redis (every worker and thread of the workspace sees the same circuit), under
the workspace's schema and the provider's name. Redis unreachable: the breaker lets calls go
ahead (the provider's own timeouts still bound them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import cast

import redis
from django.conf import settings

from syntera import slots

from .providers import ChatRequest, LLMProvider, ProviderError, ProviderEvent, capabilities_of

logger = logging.getLogger(__name__)

# A half-open trial that never reports (its worker died) frees the way after this long.
TRIAL_SECONDS = 60


class CircuitOpen(ProviderError):
    """The circuit is open: the provider is not called."""

    def __init__(self) -> None:
        super().__init__("The AI provider failed repeatedly; calls are paused for a moment.", retryable=True)


class Breaker:
    def __init__(self, schema: str, provider: str) -> None:
        self.prefix = slots.key(f"breaker:{schema}:{provider}")

    def _keys(self) -> tuple[str, str, str]:
        return f"{self.prefix}:failures", f"{self.prefix}:open", f"{self.prefix}:trial"

    def guard(self, provider: LLMProvider) -> LLMProvider:
        """`provider` behind this breaker: every call (answers, summaries) is checked and counted."""
        return _Guarded(provider, self)

    def check(self) -> None:
        """Raise CircuitOpen unless a call may go ahead now."""
        failures, opened, trial = self._keys()
        try:
            client = slots.client()
            if client.exists(opened):
                raise CircuitOpen
            count = int(cast(bytes | None, client.get(failures)) or 0)
            if count >= settings.AI_BREAKER_FAILURES and not client.set(trial, "1", nx=True, ex=TRIAL_SECONDS):
                raise CircuitOpen  # half-open, and another call is the trial
        except redis.RedisError:
            logger.warning("circuit breaker state unreadable; the call goes ahead", exc_info=True)

    def succeeded(self) -> None:
        failures, _, trial = self._keys()
        try:
            slots.client().delete(failures, trial)
        except redis.RedisError:
            logger.warning("circuit breaker state not written", exc_info=True)

    def failed(self) -> None:
        failures, opened, trial = self._keys()
        seconds = max(1, settings.AI_BREAKER_OPEN_SECONDS)
        try:
            client = slots.client()
            pipe = client.pipeline()
            pipe.incr(failures)
            pipe.expire(failures, seconds * 10)  # a failure long ago no longer counts
            count = int(pipe.execute()[0])
            if count >= settings.AI_BREAKER_FAILURES:
                client.set(opened, "1", ex=seconds)
                client.delete(trial)
                logger.warning("circuit opened for %s after %d failures in a row", self.prefix, count)
        except redis.RedisError:
            logger.warning("circuit breaker state not written", exc_info=True)


class _Guarded:
    def __init__(self, provider: LLMProvider, breaker: Breaker) -> None:
        self.provider, self.breaker = provider, breaker
        self.name = provider.name
        self.capabilities = capabilities_of(provider)

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        self.breaker.check()
        try:
            yield from self.provider.stream(request)
        except ProviderError as exc:
            if exc.retryable:
                self.breaker.failed()
            raise
        self.breaker.succeeded()
