"""LLM providers behind one interface (docs/subsystems/agents.md).

The agent runtime (apps/agents/runtime.py) retrieves first, then hands a provider a
`ChatRequest`: the rendered chat messages (system prompt with the delimited reference
material, summary, contact memory and recent turns) and the same material as structured
fields. A provider streams `ProviderEvent`s back: text deltas, tool calls, token usage, and
one `Finish`. Answers cite reference material with `[n]` markers, `n` being
`ContextChunk.index`; the runtime turns markers into citations and decides whether the
answer is grounded. Providers never touch the database: everything they need is in the
request, which keeps them testable and tenant-blind.

Each implementation is one module, named in `PROVIDER_MODULES` and imported on first use;
it registers its factory with `@register(name)`. Agents choose a provider by name. What a
provider can do (call tools, say anything without reference material, summarise, which model
it uses by default, whether it needs credentials) is its `Capabilities`, declared by its class
and read through `capabilities_of`: the runtime and the pages ask what a provider can do,
never which provider it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ContextChunk:
    """One retrieved chunk offered to the model as reference material, cited as `[index]`."""

    index: int
    chunk_id: int
    text: str
    score: float
    similarity: float | None
    source_id: int
    title: str
    url: str
    heading: str = ""


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]  # OpenAI chat format, ready to send
    model: str
    temperature: float = 0.2
    max_tokens: int = 512
    tools: list[ToolSpec] = field(default_factory=list)
    # The same material in structured form, for providers that do not read prose.
    query: str = ""  # the visitor's latest message, rewritten to stand alone when possible
    turns: list[Turn] = field(default_factory=list)
    context: list[ContextChunk] = field(default_factory=list)
    # Words of `query` that nothing in the agent's knowledge bases mentions (not only the
    # retrieved chunks): a strong sign the knowledge does not answer the question.
    unknown_words: tuple[str, ...] = ()
    summary: str = ""
    contact_facts: dict[str, str] = field(default_factory=dict)  # a verified contact's memory
    claims: dict[str, str] = field(default_factory=dict)  # what the visitor says about themselves, unverified
    language: str = "en"
    company_name: str = ""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it; the runtime validates it


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop" | "length" | "tool_calls" | "content_filter" | "smalltalk" | "no_answer"


ProviderEvent = TextDelta | ToolCall | Usage | Finish


class ProviderError(Exception):
    """The provider could not answer (network, timeout, refused). `retryable` says whether a
    later attempt may succeed; the message is safe to show staff (no secrets)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do. The defaults are the least: a provider that declares nothing
    is offered no tools, is not asked to answer without reference material, and has its
    summaries folded extractively."""

    tools: bool = False  # calls the tools it is offered (function calling)
    # Without reference material above the agent's threshold it would have nothing to say, so
    # the runtime abstains without asking it. A model is asked anyway: it may hand over or
    # take a lead (and an uncited answer is still replaced by an abstention).
    abstains_without_context: bool = True
    summaries: bool = False  # writes the running and hand-over summaries (else extractive)
    default_model: str = ""  # the model named in the audit when the agent sets none
    needs_credentials: bool = False  # an API key, the tenant's or the deployment's (credentials.py)
    # Its turns spend their time waiting on a remote model, not on this machine's CPU: they run
    # on the `llm` queue's thread pool, many at once; the others run on processes sized to the
    # cores (`llm_local`). docs/adr/0022-ai-turn-concurrency.md
    waits_on_network: bool = False


class LLMProvider(Protocol):
    """A provider. Its class also declares `capabilities: Capabilities` (see
    `capabilities_of`)."""

    name: str

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        """Stream the answer to `request`. Raises ProviderError when it cannot."""
        ...


@dataclass(frozen=True)
class ProviderCredentials:
    """A tenant's credentials for one provider, decrypted for the duration of a call."""

    api_key: str = ""
    base_url: str = ""
    organization: str = ""


ProviderFactory = Callable[[ProviderCredentials], LLMProvider]

PROVIDERS: dict[str, ProviderFactory] = {}
PROVIDER_MODULES = {"offline": "apps.agents.providers.offline", "openai": "apps.agents.providers.openai"}


def register(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    def decorate(factory: ProviderFactory) -> ProviderFactory:
        PROVIDERS[name] = factory
        return factory

    return decorate


def get_provider(name: str, credentials: ProviderCredentials | None = None) -> LLMProvider:
    if name not in PROVIDER_MODULES:
        raise ProviderError(f"Unknown LLM provider {name!r}.")
    importlib.import_module(PROVIDER_MODULES[name])
    return PROVIDERS[name](credentials or ProviderCredentials())


def capabilities_of(provider: LLMProvider) -> Capabilities:
    """What `provider` can do: its class's declaration, or the least when it declares none."""
    declared = getattr(provider, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else Capabilities()


def capabilities_for(name: str) -> Capabilities:
    """What the provider registered as `name` can do (without credentials, it is not called)."""
    return capabilities_of(get_provider(name))
