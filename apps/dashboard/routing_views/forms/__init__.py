"""Forms of the routing pages, one module per page: teams.py (a team: members with capacity,
strategy, business hours, SLA targets), intents.py (an intent, and a message to test it on),
rules.py (a routing rule), queue.py (the queue's and the SLA page's filters, manual
assignment, presence)."""

from __future__ import annotations


def lines(value: str) -> list[str]:
    """The non-empty lines of a text area, each with its whitespace collapsed."""
    return [" ".join(line.split()) for line in (value or "").splitlines() if line.strip()]
