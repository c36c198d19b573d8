"""What a turn takes (`TurnInput`) and gives (`Delta`s, then one `TurnResult` with its `Citation`s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..effects import TurnEffects
from ..providers import Turn

Decision = Literal["answered", "abstained", "escalate"]


@dataclass
class TurnInput:
    """A conversation as the runtime sees it. `turns` are the turns not yet folded into
    `summary`, oldest first, ending with the visitor's message. `abstentions` counts the AI's
    consecutive abstentions before this turn. `dry_run` (the test chat, drafts, batch tests,
    evaluations): a turn nobody will store, so it wants nothing written but its usage, and
    tools tell the model nothing was saved. `for_staff`: a draft for a person already in the
    conversation, so no hand-over trigger applies (a topic a guidance rule declines is still
    declined).

    Only a verified contact's memory is what the AI "knows" about the visitor; an unverified
    contact holds this visitor's own words, which the AI reads, with `claims`, as claims
    (docs/adr/0011-visitor-identity.md)."""

    turns: list[Turn]
    summary: str = ""
    contact: Any = None
    # What the visitor said about themselves (the conversation's claims): unverified.
    claims: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    abstentions: int = 0
    visitor_turns: int = 0  # the visitor's messages in the whole conversation (0: count `turns`)
    channel: str = "test"
    dry_run: bool = False
    for_staff: bool = False


@dataclass(frozen=True)
class Citation:
    index: int
    source_id: int
    title: str
    url: str
    chunk_id: int

    def as_dict(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "title": self.title, "url": self.url, "chunk_id": self.chunk_id}


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass
class TurnResult:
    """A computed turn. Nothing of it is written yet: the caller stores the reply and
    `effects` together (apps.agents.commit), or discards both."""

    text: str
    decision: Decision
    citations: list[Citation]
    tool_calls: list[dict[str, Any]]
    audit: dict[str, Any]
    summary: str
    folded_turns: int
    attributes: dict[str, str]
    escalation_reason: str = ""
    handoff_summary: str = ""
    unanswered: bool = False  # abstained for want of knowledge (a knowledge gap)
    effects: TurnEffects = field(default_factory=TurnEffects)
