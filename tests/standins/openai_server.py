"""Stand-in for OpenAI's API, for tests of the OpenAI providers through the official `openai`
SDK: `POST /v1/embeddings` (the embedding provider) and `POST /v1/chat/completions` (the LLM
provider). Both check `Authorization: Bearer <key>` (401 with `invalid_api_key` otherwise) and
answer errors in OpenAI's envelope `{"error": {"message", "type", "param", "code"}}`.

Embeddings: body `{"model", "input": str | [str] | [int] | [[int]],
"encoding_format": "float" | "base64", "dimensions"?, "user"?}`; answer
`{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": ...}],
"model", "usage": {"prompt_tokens", "total_tokens"}}`, one item per input in input order,
`embedding` as a JSON array or, for `encoding_format: "base64"` (the SDK's default on the
wire), base64 of little-endian float32. Empty strings or more than 2048 inputs (400), unknown
models (404 `model_not_found`), and a queued `rate_limit()` answers 429 with `retry-after-ms`
so the SDK's retry path runs.

Vectors are deterministic and roughly semantic: feature hashing of the text's lower-cased
words (each word adds ±1 to two dimensions chosen by its SHA-256), then L2-normalised, as
OpenAI's are. Texts that share words have positive cosine similarity; equal texts have
equal vectors. Models: text-embedding-3-small (1536-d, `dimensions` may shorten it),
text-embedding-3-large (3072-d), text-embedding-ada-002 (1536-d).

Chat Completions: body `{"model", "messages", "temperature"?, "max_tokens"? |
"max_completion_tokens"?, "tools"?, "tool_choice"?, "stream"?, "stream_options"?}`, validated
as OpenAI does (unknown model 404 `model_not_found`; `stream_options` without `stream`,
`tool_choice` without `tools`, malformed messages or tools, out-of-range temperature: 400;
reasoning models (o-series, gpt-5) refuse `max_tokens` and a temperature other than 1).
Without `stream` the answer is one `chat.completion` object. With it, server-sent events
(chunked transfer encoding) `data: {chunk}\\n\\n` ... `data: [DONE]\\n\\n`, each chunk a
`chat.completion.chunk`: first the assistant role, then one `delta.content` per word, then
`delta.tool_calls` fragments (index, id, type and name in the first; the JSON arguments split
over several), then a chunk with `finish_reason`, and with `stream_options.include_usage` a
last chunk with empty `choices` and `usage` (every earlier chunk then carries `"usage": null`).
Completion tokens are capped by `max_tokens` (finish reason `length`).

As a benchmark LLM (`Pacing`, and `python -m tests.standins.openai_server`, its own process):
every answer nobody scripted is `answer_tokens` pieces long (the echo, the `[1]` citation after
its first twelve words when grounded, then filler words), its first piece after `first_token` seconds and the others
at `tokens_per_second`: the shape of a hosted model's streamed answer (defaults 0.6 s, 40
tokens/s, 120 tokens: about 3.6 s). `hang(seconds)` (or `POST /v1/standin/hang` with
`{"seconds": s}`, the fault benchmark's switch) makes it a model that hangs: for that long every
chat request is accepted and never answered (no status line, no byte); when the hang ends, the
connections it held are dropped and new requests are answered again.

Tests script the answers: `reply()` queues canned replies (text, tool calls, no usage, a
delay before the response, a pause between streamed events, a connection dropped after N
events), `fail()` queues error statuses (429 with `retry-after-ms`, 500...), and
`chat_requests` holds every request body the server received, so tests assert what the
product sent. With nothing queued the answer is a deterministic echo of the last user
message, ending with a `[1]` citation when a system message holds numbered reference
material (contains "[1]").

Token counts are the stand-in's own (words and punctuation marks, plus 3 per message), not
tiktoken's: deterministic and independent of the product's counting.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import BreakConnection, HTTPError, JSONServer, Request, Route, Streamed

MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS = 2048
WORD = re.compile(r"\w+", re.UNICODE)

CHAT_MODELS = {
    "gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4-turbo", "gpt-4", "gpt-3.5-turbo",
    "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
}  # fmt: skip
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
ROLES = {"system", "developer", "user", "assistant", "tool"}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOKEN = re.compile(r"\w+|[^\w\s]")
PIECE = re.compile(r"\s*\S+|\s+")  # one streamed content delta: a word with its leading space
CHAT_PATH = "/v1/chat/completions"
STREAMS_PATH = "/v1/standin/streams"  # the benchmark's gauge of concurrent answers
HANG_PATH = "/v1/standin/hang"  # the benchmark's switch: accept chat requests and never answer


def count_standin_tokens(text: str) -> int:
    """The stand-in's token count: words and punctuation marks."""
    return len(TOKEN.findall(text))


@dataclass
class ChatReply:
    """One scripted answer to a chat completion request."""

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, JSON arguments)
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    usage: bool = True  # False: no usage chunk even when asked, as some compatible servers do
    delay: float = 0.0  # seconds before the response starts
    break_after: int | None = None  # streamed: drop the connection after this many events
    pace: float = 0.0  # streamed: seconds between events (a server trickling its answer)


@dataclass(frozen=True)
class Pacing:
    """How a benchmark LLM answers what nobody scripted (see the module's docstring)."""

    first_token: float = 0.6  # seconds before the answer starts
    tokens_per_second: float = 40.0
    answer_tokens: int = 120

    def reply(self, messages: list[dict[str, Any]]) -> ChatReply:
        echo = echo_reply(messages)
        cite = echo.endswith(" [1]")
        words = PIECE.findall(echo.removesuffix(" [1]"))
        filler = PIECE.findall(" and here is more of the answer, worded the way a model would put it")
        needed = max(1, self.answer_tokens - (1 if cite else 0))
        while len(words) < needed:
            words.extend(filler[: needed - len(words)])
        # Cited after its first sentence, as a model does: the rest streams once grounded.
        head = min(12, needed)
        text = "".join(words[:head]) + (" [1]." if cite else "") + "".join(words[head:needed])
        return ChatReply(text, delay=self.first_token, pace=1.0 / self.tokens_per_second)


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> HTTPError:
    return HTTPError(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def embed_text(text: str, dimensions: int = 1536) -> np.ndarray:
    """The stand-in's vector for `text` (also usable by tests to predict results)."""
    vector = np.zeros(dimensions, dtype=np.float64)
    words = WORD.findall(text.lower()) or [text]
    for word in words:
        digest = hashlib.sha256(word.encode()).digest()
        for k in range(2):
            position = int.from_bytes(digest[4 * k : 4 * k + 4], "little") % dimensions
            vector[position] += 1.0 if digest[16 + k] & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # words that cancelled out: fall back to the whole text's hash
        digest = hashlib.sha256(text.encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] = 1.0
        norm = 1.0
    return vector / norm


def _counted(events: Iterator[bytes], server: OpenAIStandIn) -> Iterator[bytes]:
    """The events of one stream, counted among the streams open while they are sent."""
    with server._lock:
        server.streams_open += 1
        server.most_streams_open = max(server.most_streams_open, server.streams_open)
    try:
        yield from events
    finally:
        with server._lock:
            server.streams_open -= 1


def _paced(events: Iterator[bytes], pace: float, closing: Any) -> Iterator[bytes]:
    for event in events:
        if closing.wait(pace):
            return
        yield event


class OpenAIStandIn(JSONServer):
    """`base_url` is `<url>/v1`, what OPENAI_BASE_URL is set to."""

    def __init__(
        self, *, api_key: str = "sk-standin", chat_models: set[str] | None = None, pacing: Pacing | None = None
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.pacing = pacing
        self.keep_log = pacing is None  # a benchmark's thousands of requests are not kept
        self._sequence = itertools.count(1)
        self.chat_models = set(chat_models or CHAT_MODELS)
        self.batches: list[int] = []  # number of inputs of every answered request
        self.replies: list[ChatReply] = []
        self.streams_open = 0  # streamed answers being sent now
        self.most_streams_open = 0  # the most at once since the start (or `reset`)
        self.hang_until = 0.0  # time.monotonic() until which chat requests are held unanswered
        self.hung = 0  # chat requests held unanswered so far

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> OpenAIStandIn:
        super().start()
        return self

    def rate_limit(self, times: int = 1, *, retry_after_ms: int = 20, path: str = "/v1/embeddings") -> None:
        """Answer the next `times` requests to `path` with 429, as OpenAI does when throttling."""
        self.fail_next(
            429,
            {
                "error": {
                    "message": "Rate limit reached on requests per min (RPM): Limit 3000.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            times=times,
            headers={"retry-after-ms": str(retry_after_ms), "x-ratelimit-remaining-requests": "0"},
            path=path,
        )

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        message: str = "The server had an error while processing your request.",
        code: str | None = None,
        type_: str = "server_error",
        retry_after_ms: int | None = None,
        path: str = CHAT_PATH,
    ) -> None:
        """Answer the next `times` requests to `path` with `status` in OpenAI's error envelope."""
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        self.fail_next(status, body, times=times, headers=headers, path=path)

    def hang(self, seconds: float) -> None:
        """For `seconds` from now, hold every chat request unanswered (0: answer again now)."""
        with self._lock:
            self.hang_until = time.monotonic() + max(0.0, seconds)

    def reply(
        self,
        text: str = "",
        *,
        tool_calls: list[tuple[str, Any]] | None = None,
        finish_reason: str | None = None,
        usage: bool = True,
        delay: float = 0.0,
        break_after: int | None = None,
        pace: float = 0.0,
        times: int = 1,
    ) -> None:
        """Queue the answer to the next `times` chat requests. Tool arguments may be a dict
        (sent as JSON) or a string (sent as is, even if it is not valid JSON)."""
        calls = [(name, args if isinstance(args, str) else json.dumps(args)) for name, args in tool_calls or []]
        with self._lock:
            for _ in range(times):
                self.replies.append(ChatReply(text, calls, finish_reason, usage, delay, break_after, pace))

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of every request to /v1/chat/completions, failed ones and retries included."""
        return [r.body for r in self.requests_to(CHAT_PATH)]

    def reset(self) -> None:
        self.clear_log()
        self.batches.clear()
        with self._lock:
            self.replies.clear()
            self.most_streams_open = self.streams_open

    def authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if header != f"Bearer {self.api_key}":
            given = header.removeprefix("Bearer ")
            masked = f"{given[:3]}{'*' * max(0, len(given) - 7)}{given[-4:]}" if len(given) > 7 else "***"
            raise _error(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")

    def routes(self) -> dict[tuple[str, str], Route]:
        return {
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", CHAT_PATH): self.chat_completions,
            ("GET", STREAMS_PATH): self.streams,
            ("POST", HANG_PATH): self.hang_route,
        }

    def streams(self, request: Request) -> Any:
        """Not OpenAI's: how many streamed answers are being sent now, and the most at once."""
        with self._lock:
            return {"open": self.streams_open, "most": self.most_streams_open}

    def hang_route(self, request: Request) -> Any:
        """Not OpenAI's: `{"seconds": s}` starts (or, with 0, ends) a hang; answers how many
        requests were held so far."""
        seconds = request.body.get("seconds") if isinstance(request.body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= 3600:
            raise _error(400, "seconds: a number from 0 to 3600", param="seconds")
        self.hang(float(seconds))
        return {"hanging_seconds": float(seconds), "held": self.hung}

    def embeddings(self, request: Request) -> Any:
        body = request.body
        if not isinstance(body, dict):
            raise _error(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _error(400, "you must provide a model parameter", param="model")
        if model not in MODELS:
            raise _error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        dimensions = MODELS[model]
        if "dimensions" in body and body["dimensions"] is not None:
            wanted = body["dimensions"]
            if model == "text-embedding-ada-002" or not isinstance(wanted, int) or not 1 <= wanted <= dimensions:
                raise _error(400, f"Invalid value for 'dimensions' = {wanted}.", param="dimensions")
            dimensions = wanted
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _error(400, f"Invalid value for 'encoding_format' = {encoding}.", param="encoding_format")
        texts = self._inputs(body.get("input"))
        data = []
        tokens = 0
        for position, text in enumerate(texts):
            vector = embed_text(text, dimensions)
            tokens += max(1, len(WORD.findall(text)))
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else [float(v) for v in vector.astype(np.float32)]
            )
            data.append({"object": "embedding", "index": position, "embedding": embedding})
        self.batches.append(len(texts))
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def chat_completions(self, request: Request) -> Any:
        body = request.body
        _check_chat_body(body, self.chat_models)
        with self._lock:
            hanging = self.hang_until - time.monotonic()
            if hanging > 0:
                self.hung += 1
        if hanging > 0:
            # Accepted, never answered: held for the rest of the hang, then dropped.
            return Streamed([], delay=hanging, drop=True)
        with self._lock:
            scripted = self.replies.pop(0) if self.replies else None
        if scripted is not None:
            reply = scripted
        elif self.pacing is not None:
            reply = self.pacing.reply(body["messages"])
        else:
            reply = ChatReply(echo_reply(body["messages"]))
        completion = ChatCompletion(body, reply, next(self._sequence))
        headers = {"x-request-id": f"req_{completion.id}", "openai-processing-ms": "1"}
        if body.get("stream"):
            events = _paced(completion.events(), reply.pace, self._closing) if reply.pace else completion.events()
            return Streamed(_counted(events, self), headers=headers, delay=reply.delay)
        return Streamed([json.dumps(completion.response()).encode()], content_type="application/json",
                        headers=headers, delay=reply.delay)  # fmt: skip

    @staticmethod
    def _inputs(value: Any) -> list[str]:
        """Strings, or token arrays (read back as their numbers, which is enough for hashing)."""
        single_tokens = isinstance(value, list) and value and all(isinstance(v, int) for v in value)
        if isinstance(value, str) or single_tokens:
            value = [value]
        if not isinstance(value, list) or not value:
            raise _error(400, "'$.input' is invalid. Please check the API reference.", param="input")
        if len(value) > MAX_INPUTS:
            raise _error(400, f"'$.input' is invalid: at most {MAX_INPUTS} inputs per request.", param="input")
        texts = []
        for item in value:
            if isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                texts.append(" ".join(str(t) for t in item))
            elif isinstance(item, str) and item:
                texts.append(item)
            else:
                raise _error(400, "'$.input' is invalid. Please check the API reference.", param="input")
        return texts


# --- chat completions ------------------------------------------------------------------------


def _check_chat_body(body: Any, models: set[str]) -> None:
    """OpenAI's validation of a chat completion request, the parts the product can get wrong."""
    if not isinstance(body, dict):
        raise _error(400, "We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _error(400, "you must provide a model parameter", param="model")
    if model not in models:
        raise _error(
            404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _error(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.", param="messages")
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _error(400, f"Invalid value for '{where}.role'.", param=f"{where}.role")
        content = message.get("content")
        if content is None and not (message["role"] == "assistant" and message.get("tool_calls")):
            raise _error(400, f"Invalid value for '{where}.content': expected a string or array.", param=where)
        if content is not None and not isinstance(content, str | list):
            raise _error(400, f"Invalid type for '{where}.content'.", param=f"{where}.content")
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _error(400, f"Missing required parameter: '{where}.tool_call_id'.", param=f"{where}.tool_call_id")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _error(400, "Invalid type for 'tools': expected an array.", param="tools")
        for position, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise _error(400, f"Invalid value for 'tools[{position}]'.", param=f"tools[{position}]")
            if not TOOL_NAME.match(str(function.get("name", ""))):
                raise _error(
                    400, f"Invalid 'tools[{position}].function.name'.", param=f"tools[{position}].function.name"
                )
            if "parameters" in function and not isinstance(function["parameters"], dict):
                raise _error(400, f"Invalid 'tools[{position}].function.parameters'.", param="tools")
    if body.get("tool_choice") is not None and not tools:
        raise _error(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise _error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 2):
        raise _error(400, f"Invalid 'temperature': {temperature}. Expected a value between 0 and 2.")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise _error(400, f"Invalid '{name}': {value}. Expected an integer of at least 1.", param=name)
    if REASONING_MODEL.match(model):
        if body.get("max_tokens") is not None:
            raise _error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        if temperature not in (None, 1):
            raise _error(400, "Unsupported value: 'temperature' does not support this value.", param="temperature")


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def echo_reply(messages: list[dict[str, Any]]) -> str:
    """The default answer: the last user message echoed, citing [1] when there is reference material."""
    last_user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    grounded = any(m.get("role") in ("system", "developer") and "[1]" in _text_of(m.get("content")) for m in messages)
    return f"Echo: {last_user.strip()}" + (" [1]" if grounded else "")


class ChatCompletion:
    """One answer being produced, in either wire form."""

    def __init__(self, body: dict[str, Any], reply: ChatReply, sequence: int) -> None:
        self.body = body
        self.reply = reply
        self.id = f"chatcmpl-standin{sequence:06d}"
        self.created = int(time.time())
        self.model = body["model"]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        self.pieces = PIECE.findall(reply.text)
        self.finish_reason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        if limit is not None and len(self.pieces) > limit:
            self.pieces = self.pieces[:limit]
            self.finish_reason = "length"
        self.text = "".join(self.pieces)
        self.calls = [
            {
                "id": "call_" + hashlib.sha256(f"{sequence}:{i}:{name}:{args}".encode()).hexdigest()[:24],
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, (name, args) in enumerate(reply.tool_calls)
        ]

    def usage(self) -> dict[str, Any]:
        prompt = sum(3 + count_standin_tokens(_text_of(m.get("content"))) for m in self.body["messages"]) + 3
        completion = len(self.pieces) + sum(
            count_standin_tokens(c["function"]["name"] + c["function"]["arguments"]) for c in self.calls
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.calls:
            message["tool_calls"] = self.calls
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_standin",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        }

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_standin",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if (self.body.get("stream_options") or {}).get("include_usage"):
            chunk["usage"] = self.usage() if delta is None else None
        return chunk

    def chunks(self) -> Iterator[dict[str, Any]]:
        """The `chat.completion.chunk` objects of the streamed answer, in order."""
        yield self._chunk({"role": "assistant", "content": "" if self.pieces else None, "refusal": None})
        for piece in self.pieces:
            yield self._chunk({"content": piece})
        for index, call in enumerate(self.calls):
            function = call["function"]
            yield self._chunk(
                {
                    "tool_calls": [
                        {"index": index, "id": call["id"], "type": "function",
                         "function": {"name": function["name"], "arguments": ""}}
                    ]
                }
            )  # fmt: skip
            arguments = function["arguments"]
            for start in range(0, len(arguments), 7):
                fragment = {"index": index, "function": {"arguments": arguments[start : start + 7]}}
                yield self._chunk({"tool_calls": [fragment]})
        yield self._chunk({}, self.finish_reason)
        if self.reply.usage and (self.body.get("stream_options") or {}).get("include_usage"):
            yield self._chunk(None)

    def events(self) -> Iterator[bytes]:
        """The server-sent events on the wire, broken off after `break_after` if scripted."""
        for sent, chunk in enumerate(self.chunks()):
            if self.reply.break_after is not None and sent >= self.reply.break_after:
                raise BreakConnection
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


def main(argv: list[str] | None = None) -> None:
    """Serve a benchmark LLM until terminated; prints its base URL (OPENAI_BASE_URL) first."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--first-token-ms", type=float, default=600.0)
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    parser.add_argument("--answer-tokens", type=int, default=120)
    parser.add_argument("--api-key", default="sk-bench")
    args = parser.parse_args(argv)
    pacing = Pacing(args.first_token_ms / 1000, args.tokens_per_second, args.answer_tokens)
    server = OpenAIStandIn(api_key=args.api_key, pacing=pacing).start()
    print(server.base_url, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
