"""Stand-in for OpenAI's embeddings API (`POST /v1/embeddings`), for tests of the OpenAI
embedding provider through the official `openai` SDK.

Speaks the documented request and response: `Authorization: Bearer <key>` (401 with
`invalid_api_key` otherwise); body `{"model", "input": str | [str] | [int] | [[int]],
"encoding_format": "float" | "base64", "dimensions"?, "user"?}`; answer
`{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": ...}],
"model", "usage": {"prompt_tokens", "total_tokens"}}`, one item per input in input order,
`embedding` as a JSON array or, for `encoding_format: "base64"` (the SDK's default on the
wire), base64 of little-endian float32. Errors use OpenAI's envelope
`{"error": {"message", "type", "param", "code"}}`: empty strings or more than 2048 inputs
(400), unknown models (404 `model_not_found`), and a queued `rate_limit()` answers 429
with `retry-after-ms` so the SDK's retry path runs.

Vectors are deterministic and roughly semantic: feature hashing of the text's lower-cased
words (each word adds ±1 to two dimensions chosen by its SHA-256), then L2-normalised, as
OpenAI's are. Texts that share words have positive cosine similarity; equal texts have
equal vectors. Models: text-embedding-3-small (1536-d, `dimensions` may shorten it),
text-embedding-3-large (3072-d), text-embedding-ada-002 (1536-d).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import numpy as np

from . import HTTPError, JSONServer, Request, Route

MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS = 2048
WORD = re.compile(r"\w+", re.UNICODE)


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


class OpenAIStandIn(JSONServer):
    """`base_url` is `<url>/v1`, what OPENAI_BASE_URL is set to."""

    def __init__(self, *, api_key: str = "sk-standin") -> None:
        super().__init__()
        self.api_key = api_key
        self.batches: list[int] = []  # number of inputs of every answered request

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> OpenAIStandIn:
        super().start()
        return self

    def rate_limit(self, times: int = 1, *, retry_after_ms: int = 20) -> None:
        """Answer the next `times` embedding requests with 429, as OpenAI does when throttling."""
        self.fail_next(
            429,
            {
                "error": {
                    "message": "Rate limit reached for text-embedding-3-small on requests per min (RPM): Limit 3000.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            times=times,
            headers={"retry-after-ms": str(retry_after_ms), "x-ratelimit-remaining-requests": "0"},
            path="/v1/embeddings",
        )

    def reset(self) -> None:
        self.clear_log()
        self.batches.clear()

    def authorize(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise _error(401, "Incorrect API key provided.", code="invalid_api_key")

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", "/v1/embeddings"): self.embeddings}

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
