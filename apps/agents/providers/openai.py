"""OpenAI Chat Completions as an LLM provider (docs/subsystems/agents.md), through the official
`openai` SDK, so any OpenAI-compatible server (a local one included) works through `base_url`.

Credentials: a tenant's `ProviderCredentials` are used as a set when they carry a key or a base
URL (a tenant key is never sent to the platform's base URL, nor the platform key to a tenant's);
otherwise the platform's OPENAI_API_KEY / OPENAI_BASE_URL. A base URL without a key (a local
server) is sent a placeholder key. Clients are cached per credential set, so connections are
reused across conversations.

Every request goes through the guarded outbound client (syntera/outbound/, passed to the SDK
as `http_client`): a tenant's base URL reaches only public addresses, or those the operator's
OUTBOUND_ALLOWLIST admits (a self-hosted model server), checked at connection time; the
operator's own OPENAI_BASE_URL is trusted (its host and port). Redirects are not followed, so
a key is only ever sent to the configured endpoint. Each attempt has a total deadline
(OPENAI_DEADLINE) besides the per-read timeout, so a server trickling its answer is cut off.

One call = one streamed request (`stream=True`, `stream_options.include_usage`), tools as
OpenAI function tools with `tool_choice="auto"`. The SDK makes the request (auth, retries,
status errors) through `with_streaming_response`; the server-sent events are read here as plain
JSON: the SDK's typed chunk objects cost some 70 µs each, several milliseconds of CPU per
answer in a worker that runs many (docs/benchmarks.md). Events, in order: `TextDelta` per content
delta; then, once the stream has finished, one `ToolCall` per assembled tool call (fragments
keyed by index, arguments concatenated, in index order), one `Usage` (the server's final usage
chunk, else counted with apps.agents.tokens) and one `Finish(reason)` with OpenAI's reason
("stop", "length", "tool_calls", "content_filter").

Failures: the SDK retries 408/409/429/5xx, timeouts and connection errors OPENAI_MAX_RETRIES
times with exponential backoff (0.5 s doubling, jittered, capped at 8 s) or the server's
retry-after(-ms); after that `ProviderError(retryable=True)`. A refused key, a missing model or
a rejected request (400/401/403/404/422, and 429 `insufficient_quota`) are
`ProviderError(retryable=False)`. A stream that breaks or ends without a finish reason raises
`ProviderError(retryable=True)` even after text was delivered: the runtime discards partial
output.

Messages are shown to the tenant's staff (test chat, the turn's audit, API answers), and the
endpoint may be the tenant's own choice, so they are generic: written here, never copied from
the exception chain or the server's answer, with no host, port, status code or exception
name. Everything that says "nothing usable answered" (refused by the guard, a connection
refused or timed out, a 5xx, a server that does not speak OpenAI's error format) reads the
same (`UNREACHABLE`), so the messages cannot map the network. Only answers in OpenAI's error
format get a specific message (key refused, model not found, quota, rate limit, rejected).
The details go to the server log.

Reasoning models (o-series, gpt-5 except gpt-5-chat) take `max_completion_tokens` and no
temperature; every other model gets `max_tokens` and `temperature`, which compatible servers
understand.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import openai
from django.conf import settings

from apps.agents import tokens
from syntera import outbound

from . import (
    Capabilities,
    ChatRequest,
    Finish,
    ProviderCredentials,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
    register,
)

logger = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
UNREACHABLE = "The OpenAI endpoint could not be reached or did not answer in time ({attempts} attempts)."
LOCAL_SERVER_KEY = "not-needed"  # OpenAI-compatible local servers ignore the key; the SDK wants one
REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))")
KEY_LIKE = re.compile(r"\b(?:sk|key|rk|sess)-[\w*.-]{3,}")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What iterating a stream can raise: the SDK's errors and, in SDKs that do not wrap them,
    the HTTP client's own (httpx before openai 2, httpx2 after)."""
    errors: list[type[BaseException]] = [openai.OpenAIError]
    for module in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


STREAM_ERRORS = _transport_errors()
# ...and a stream whose data is not OpenAI's JSON, or that reports an error itself
BROKEN_STREAM: tuple[type[BaseException], ...] = (*STREAM_ERRORS, ValueError)


def _operator_origins() -> tuple[tuple[str, int], ...]:
    """The operator's own endpoint (OPENAI_BASE_URL): trusted configuration, whatever its address."""
    origin = outbound.origin_of(settings.OPENAI_BASE_URL)
    return (origin,) if origin else ()


@functools.lru_cache(maxsize=64)
def _client(
    api_key: str,
    base_url: str,
    organization: str,
    timeout: float,
    max_retries: int,
    deadline: float,
    trusted: tuple[tuple[str, int], ...],
    connections: int,
) -> openai.OpenAI:
    # One connection per answer streaming, kept for the next: as many as the process's turns.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    http_client = outbound.client(
        timeout=timeout, deadline=deadline, follow_redirects=False, trusted_origins=trusted, limits=limits
    )
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        organization=organization or None,
        timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
        max_retries=max_retries,
        http_client=http_client,  # type: ignore[arg-type]  # openai 3 types httpx2 and takes httpx too
    )


def tool_param(tool: ToolSpec) -> dict[str, Any]:
    """A ToolSpec as an OpenAI function tool."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


class OpenAIProvider:
    name = "openai"

    @property
    def capabilities(self) -> Capabilities:
        """A model: it calls tools, is asked even without reference material (it may hand
        over or take a lead), writes summaries; it needs a key (or a compatible server)."""
        return Capabilities(
            tools=True,
            abstains_without_context=False,
            summaries=True,
            default_model=settings.OPENAI_CHAT_MODEL,
            needs_credentials=True,
            waits_on_network=True,
        )

    def __init__(self, credentials: ProviderCredentials) -> None:
        if credentials.api_key or credentials.base_url:
            self.api_key, base_url = credentials.api_key, credentials.base_url
        else:
            self.api_key, base_url = settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.organization = credentials.organization
        if not self.api_key and base_url:
            self.api_key = LOCAL_SERVER_KEY

    # --- the interface ------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        if not self.api_key:
            raise ProviderError("No OpenAI API key is configured.", retryable=False)
        timeout = float(settings.OPENAI_TIMEOUT)
        max_retries = int(settings.OPENAI_MAX_RETRIES)
        attempts = max_retries + 1
        model = request.model or settings.OPENAI_CHAT_MODEL
        trusted = _operator_origins()
        try:
            # Checked here too so that a refused endpoint fails at once, not after the SDK's
            # retries; the connection itself is checked again (syntera/outbound/), whatever this said.
            outbound.check_url(self.base_url, trusted_origins=trusted)
        except outbound.OutboundRefused as exc:
            logger.warning("OpenAI endpoint refused by the outbound guard: %s", exc.detail)
            raise ProviderError(UNREACHABLE.format(attempts=1), retryable=False) from None
        deadline = float(settings.OPENAI_DEADLINE)
        connections = int(settings.OPENAI_MAX_CONNECTIONS)
        client = _client(
            self.api_key, self.base_url, self.organization, timeout, max_retries, deadline, trusted, connections
        )
        streaming = client.chat.completions.with_streaming_response.create(**self._params(request, model))
        try:
            response = streaming.__enter__()
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model, attempts=attempts) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            logger.warning("OpenAI endpoint unreachable after %d attempts: %r", attempts, exc.__cause__ or exc)
            raise ProviderError(UNREACHABLE.format(attempts=attempts), retryable=True) from None
        except outbound.OutboundRefused as exc:
            logger.warning("OpenAI endpoint refused by the outbound guard at connection: %s", exc.detail)
            raise ProviderError(UNREACHABLE.format(attempts=1), retryable=False) from None
        except openai.OpenAIError as exc:
            logger.warning("OpenAI request failed: %s", self._safe(str(exc)))
            raise ProviderError("The OpenAI request failed.", retryable=False) from None
        try:
            yield from self._events(server_sent_data(response.iter_lines()), request, model)
        finally:
            streaming.__exit__(None, None, None)

    # --- request ------------------------------------------------------------------------

    @staticmethod
    def _params(request: ChatRequest, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if REASONING_MODEL.match(model):
            params["max_completion_tokens"] = request.max_tokens
        else:
            params["max_tokens"] = request.max_tokens
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [tool_param(tool) for tool in request.tools]
            params["tool_choice"] = "auto"
        return params

    # --- response -----------------------------------------------------------------------

    def _events(self, chunks: Iterator[Any], request: ChatRequest, model: str) -> Iterator[ProviderEvent]:
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage: dict[str, Any] | None = None
        try:
            for chunk in chunks:
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):  # an error reported inside the stream
                    raise ValueError("the server reported an error in the stream")
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta")
                    if isinstance(delta, dict):
                        piece = delta.get("content") or delta.get("refusal") or ""
                        if piece and isinstance(piece, str):
                            text.append(piece)
                            yield TextDelta(piece)
                        self._collect(calls, delta.get("tool_calls") or ())
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
        except BROKEN_STREAM as exc:
            logger.warning("OpenAI stream broke off (%s) after %d characters", type(exc).__name__, len("".join(text)))
            where = "after part of the answer" if text else "before the answer"
            raise ProviderError(f"The OpenAI stream broke off {where}.", retryable=True) from None
        if finish is None:
            raise ProviderError("The OpenAI stream ended before the answer was complete.", retryable=True)

        tool_calls = [
            ToolCall(id=slot["id"] or f"call_{index}", name=slot["name"], arguments="".join(slot["arguments"]))
            for index, slot in sorted(calls.items())
        ]
        yield from tool_calls
        if usage is not None and usage.get("prompt_tokens") is not None:
            yield Usage(
                prompt_tokens=int(usage["prompt_tokens"]), completion_tokens=int(usage.get("completion_tokens") or 0)
            )
        else:  # servers that ignore stream_options: count as OpenAI would
            completion = "".join(text) + "".join(call.name + call.arguments for call in tool_calls)
            yield Usage(
                prompt_tokens=tokens.count_message_tokens(request.messages, model, tools=request.tools),
                completion_tokens=tokens.count_tokens(completion, model),
            )
        yield Finish("tool_calls" if finish == "function_call" else finish)

    @staticmethod
    def _collect(calls: dict[int, dict[str, Any]], fragments: Iterable[Any]) -> None:
        """Fold streamed tool-call fragments: the first of an index carries id, type and name;
        the rest carry pieces of the JSON arguments."""
        for fragment in fragments:
            if not isinstance(fragment, dict):
                continue
            slot = calls.setdefault(int(fragment.get("index") or 0), {"id": "", "name": "", "arguments": []})
            if fragment.get("id"):
                slot["id"] = str(fragment["id"])
            function = fragment.get("function")
            if isinstance(function, dict):
                if function.get("name") and not slot["name"]:
                    slot["name"] = str(function["name"])
                if function.get("arguments"):
                    slot["arguments"].append(str(function["arguments"]))

    # --- errors -------------------------------------------------------------------------

    def _safe(self, message: str) -> str:
        if self.api_key and self.api_key != LOCAL_SERVER_KEY:
            message = message.replace(self.api_key, "[key]")
        return KEY_LIKE.sub("[key]", message)[:300]

    def _status_error(self, exc: openai.APIStatusError, model: str, *, attempts: int) -> ProviderError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = self._safe(str(body.get("message") or ""))
        logger.warning("OpenAI answered HTTP %s (%s) for model %s: %s", status, exc.code, model, detail)
        # Only an answer in OpenAI's error format ({"message", "type"/"code"}) is told apart;
        # any other service's answer reads like no answer at all.
        if not (isinstance(body.get("message"), str) and ("type" in body or "code" in body)):
            return ProviderError(UNREACHABLE.format(attempts=attempts), retryable=True)
        if status == 401:
            return ProviderError("The OpenAI API key was refused.", retryable=False)
        if status == 403:
            return ProviderError("OpenAI refused access for this key.", retryable=False)
        if status == 404:
            if exc.code == "model_not_found" or "model" in detail.lower():
                return ProviderError(f"Model {model!r} was not found at the OpenAI endpoint.", retryable=False)
            return ProviderError("The OpenAI endpoint was not found; check the base URL.", retryable=False)
        if status == 429 and exc.code == "insufficient_quota":
            return ProviderError("The OpenAI account has run out of quota.", retryable=False)
        if status == 429:
            return ProviderError(f"OpenAI is rate-limiting requests ({attempts} attempts).", retryable=True)
        if status >= 500 or status in (408, 409):
            return ProviderError(UNREACHABLE.format(attempts=attempts), retryable=True)
        if exc.code == "context_length_exceeded":
            return ProviderError("The conversation is too long for the model's context window.", retryable=False)
        return ProviderError("OpenAI rejected the request.", retryable=False)


STREAM_MAX_CHARS = 4_000_000  # a whole streamed answer on the wire; a real one is a few KB


def server_sent_data(lines: Iterable[str], limit: int = STREAM_MAX_CHARS) -> Iterator[Any]:
    """The JSON of each server-sent event's data (lines joined as the SSE format says), up to
    OpenAI's `[DONE]`; comments and other fields are skipped. Malformed JSON, or a stream past
    `limit` characters (a server that never stops), raises ValueError."""
    data: list[str] = []
    seen = 0
    for line in lines:
        seen += len(line)
        if seen > limit:
            raise ValueError("the stream is larger than any answer")
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if not data:
            continue
        payload, data = "\n".join(data), []
        if payload.startswith("[DONE]"):
            return
        yield json.loads(payload)
    if data and not data[0].startswith("[DONE]"):
        yield json.loads("\n".join(data))


@register("openai")
def openai_provider(credentials: ProviderCredentials) -> OpenAIProvider:
    return OpenAIProvider(credentials)
