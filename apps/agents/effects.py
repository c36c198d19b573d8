"""What an AI turn wants written, as data (docs/adr/0019-ai-turn-commit.md).

The runtime computes a turn without writing anything: the leads it took (the `capture_lead`
tool, the automatic capture), the facts it learnt about the visitor, the claims the visitor
made, the knowledge gap it found, the usage it spent. `commit.turn_commit` and
`commit.turn_count` write them, inside the transaction that stores the reply once it is known
to still apply; a reply that is discarded leaves nothing behind.

Everything here is checked and cleaned when the turn is computed, so that writing it can
only fail for reasons outside the turn (then the whole commit, reply included, rolls back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LEAD_FIELD = 200
MAX_NEED = 1000


def clean_text(value: object, limit: int) -> str:
    """One line of plain text: control characters (NUL included) and runs of whitespace
    become single spaces; at most `limit` characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or ""))
    return " ".join(text.split())[:limit]


@dataclass(frozen=True)
class LeadWanted:
    """A lead to record under the conversation's contact (or a new unverified one when it has
    none, docs/adr/0011-visitor-identity.md). It has an email address or a phone number."""

    need: str
    name: str = ""
    email: str = ""
    phone: str = ""
    company: str = ""

    @classmethod
    def cleaned(cls, *, need: str, name: str = "", email: str = "", phone: str = "", company: str = "") -> LeadWanted:
        """A lead from untrusted values (a model's tool arguments, a visitor's words); raises
        ValueError without an email address or a phone number."""
        lead = cls(
            need=str(need or "").replace("\x00", "").strip()[:MAX_NEED],
            name=clean_text(name, MAX_LEAD_FIELD),
            email=clean_text(email, 254),
            phone=clean_text(phone, 40),
            company=clean_text(company, MAX_LEAD_FIELD),
        )
        if not (lead.email or lead.phone):
            raise ValueError("A lead needs an email address or a phone number.")
        return lead


@dataclass(frozen=True)
class GapWanted:
    """A question the agent's knowledge could not answer."""

    question: str
    unknown_words: tuple[str, ...]
    channel: str


@dataclass(frozen=True)
class UsageSpent:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class TurnEffects:
    """Everything a turn wants written besides the reply itself. A dry run's effects hold only
    its usage (the quota meters it); a turn whose provider failed holds nothing."""

    leads: tuple[LeadWanted, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()  # contact memory learnt from the visitor's message
    claims: dict[str, str] = field(default_factory=dict)  # what the visitor said about themselves
    gap: GapWanted | None = None
    usage: UsageSpent = UsageSpent()
    counted: bool = False  # counted on the agent's statistics once the reply is stored
