"""The guarded httpx transports: check each request's URL (redirect hops included) and hold each
request, body included, to its total deadline.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .backends import _AsyncBackend, _Backend
from .deadlines import _until, _until_for
from .policy import _check_request_url


class _TimedBody(httpx.SyncByteStream):
    """A response body read under its request's deadline (reads happen after handle_request)."""

    def __init__(self, inner: httpx.SyncByteStream, until: float | None) -> None:
        self._inner = inner
        self._until = until

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            token = _until.set(self._until)
            try:
                chunk = next(chunks, None)
            finally:
                _until.reset(token)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _AsyncTimedBody(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, until: float | None) -> None:
        self._inner = inner
        self._until = until

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            token = _until.set(self._until)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _until.reset(token)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class _Config:
    """What a guarded transport is built with (shared by the sync and async ones)."""

    deadline: float | None
    trusted_origins: tuple[tuple[str, int], ...]
    ssl_context: ssl.SSLContext
    limits: httpx.Limits

    def pool_options(self) -> dict[str, Any]:
        return {
            "ssl_context": self.ssl_context,
            "max_connections": self.limits.max_connections,
            "max_keepalive_connections": self.limits.max_keepalive_connections,
            "keepalive_expiry": self.limits.keepalive_expiry,
        }


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, config: _Config) -> None:
        super().__init__(verify=config.ssl_context, limits=config.limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(**config.pool_options(), network_backend=_Backend(config.trusted_origins))
        self._deadline = config.deadline

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _check_request_url(request.url)
        until = _until_for(self._deadline)
        token = _until.set(until)
        try:
            response = super().handle_request(request)
        finally:
            _until.reset(token)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _TimedBody(response.stream, until)
        return response


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, config: _Config) -> None:
        super().__init__(verify=config.ssl_context, limits=config.limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            **config.pool_options(), network_backend=_AsyncBackend(config.trusted_origins)
        )
        self._deadline = config.deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_request_url(request.url)
        until = _until_for(self._deadline)
        token = _until.set(until)
        try:
            response = await super().handle_async_request(request)
        finally:
            _until.reset(token)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncTimedBody(response.stream, until)
        return response
