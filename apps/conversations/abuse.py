"""Limits on anonymous visitors, and what they refused, counted for staff (docs/security.md).

A web inbox is open to anyone who has its public widget key, so what one visitor or one
address can make the platform do is bounded:
- new WebSocket connections per address and per inbox (`WIDGET_CONNECT_RATE_PER_IP`,
  `..._PER_INBOX`), and new conversations (a `hello` without a valid token) likewise
  (`WIDGET_SESSION_RATE_PER_IP`, `..._PER_INBOX`);
- visitor messages per address (`WIDGET_RATE_PER_IP`, per minute, every connection and
  workspace together) besides the per-connection bucket in the consumer;
- the AI's answers per conversation and per address each day
  (`AI_DAILY_REQUESTS_PER_CONVERSATION`, `AI_DAILY_REQUESTS_PER_IP`), each a share of the
  workspace's daily AI quota, so one visitor cannot spend it all.

Each refusal is counted per inbox and day (kept `ABUSE_COUNT_DAYS` days), for the inbox page
and the inbox API: staff see "1,940 new chats refused today", not 1,940 empty conversations.
Counters are in Redis; the limits' keys carry the tenant's schema, except the per-address
message limit, which is one allowance across workspaces.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import schema_context

from syntera.limits import hit

logger = logging.getLogger(__name__)

# What is counted, in the order the inbox page shows it.
KINDS = {
    "connections": "connections refused",
    "sessions": "new chats refused",
    "messages": "messages refused",
    "ai_replies": "AI answers withheld",
}


def limits() -> dict[str, str]:
    """The limits in force, as staff and the API show them."""
    return {
        "connections_per_address": settings.WIDGET_CONNECT_RATE_PER_IP,
        "connections_per_inbox": settings.WIDGET_CONNECT_RATE_PER_INBOX,
        "new_chats_per_address": settings.WIDGET_SESSION_RATE_PER_IP,
        "new_chats_per_inbox": settings.WIDGET_SESSION_RATE_PER_INBOX,
        "messages_per_address": f"{settings.WIDGET_RATE_PER_IP}/m",
        "ai_answers_per_conversation": f"{settings.AI_DAILY_REQUESTS_PER_CONVERSATION}/d",
        "ai_answers_per_address": f"{settings.AI_DAILY_REQUESTS_PER_IP}/d",
    }


def _day_key(schema: str, inbox_id: int, kind: str, day: str) -> str:
    return f"abuse:{schema}:{inbox_id}:{kind}:{day}"


def record(schema: str, inbox_id: int, kind: str) -> None:
    """Count one refusal of `kind` for the inbox today."""
    key = _day_key(schema, inbox_id, kind, timezone.now().date().isoformat())
    ttl = int(timedelta(days=settings.ABUSE_COUNT_DAYS + 1).total_seconds())
    try:
        with schema_context("public"):
            if not cache.add(key, 1, ttl):
                cache.incr(key)
    except Exception:
        logger.warning("abuse counter unavailable", exc_info=True)


def counts(schema: str, inbox_id: int, *, days: int | None = None) -> list[dict[str, Any]]:
    """The refusals of the last `days` days (today first): `{"day", "<kind>": n, ..., "total"}`."""
    days = days or settings.ABUSE_COUNT_DAYS
    today = timezone.now().date()
    dates = [(today - timedelta(days=n)).isoformat() for n in range(days)]
    keys = {_day_key(schema, inbox_id, kind, day): (day, kind) for day in dates for kind in KINDS}
    try:
        with schema_context("public"):
            found = cache.get_many(list(keys))
    except Exception:
        logger.warning("abuse counters unavailable", exc_info=True)
        found = {}
    tallies: dict[str, dict[str, int]] = {day: dict.fromkeys(KINDS, 0) for day in dates}
    for key, value in found.items():
        day, kind = keys[key]
        tallies[day][kind] = int(value)
    return [{"day": day, **tally, "total": sum(tally.values())} for day, tally in tallies.items()]


def _per_address_and_inbox(schema: str, inbox_id: int, ip: str, kind: str, per_ip: str, per_inbox: str) -> bool:
    allowed = hit(f"ws-{kind}-ip:{schema}:{ip}", per_ip) and hit(f"ws-{kind}-inbox:{schema}:{inbox_id}", per_inbox)
    if not allowed:
        record(schema, inbox_id, kind)
    return allowed


def connection_allowed(schema: str, inbox_id: int, ip: str) -> bool:
    """One more WebSocket connection to the inbox from `ip`?"""
    return _per_address_and_inbox(
        schema, inbox_id, ip, "connections", settings.WIDGET_CONNECT_RATE_PER_IP, settings.WIDGET_CONNECT_RATE_PER_INBOX
    )


def session_allowed(schema: str, inbox_id: int, ip: str) -> bool:
    """One more new conversation in the inbox for `ip`?"""
    return _per_address_and_inbox(
        schema, inbox_id, ip, "sessions", settings.WIDGET_SESSION_RATE_PER_IP, settings.WIDGET_SESSION_RATE_PER_INBOX
    )


def message_allowed(schema: str, inbox_id: int, ip: str) -> bool:
    """One more visitor message from `ip` this minute, across connections and workspaces?"""
    allowed = hit(f"widget-ip:{ip}", f"{settings.WIDGET_RATE_PER_IP}/m")
    if not allowed:
        record(schema, inbox_id, "messages")
    return allowed


def ai_reply_allowed(schema: str, *, inbox_id: int, conversation_id: int, ip: str | None) -> bool:
    """One more AI answer today for this conversation and its visitor's address?"""
    allowed = hit(f"ai-conv:{schema}:{conversation_id}", f"{settings.AI_DAILY_REQUESTS_PER_CONVERSATION}/d")
    if allowed and ip:
        allowed = hit(f"ai-ip:{schema}:{ip}", f"{settings.AI_DAILY_REQUESTS_PER_IP}/d")
    if not allowed:
        record(schema, inbox_id, "ai_replies")
    return allowed


def first_notice_today(schema: str, conversation_id: int) -> bool:
    """True once a day per conversation: whether to tell the visitor the AI budget ran out."""
    key = f"ai-budget-notice:{schema}:{conversation_id}:{timezone.now().date().isoformat()}"
    try:
        with schema_context("public"):
            return bool(cache.add(key, 1, 86400 + 60))
    except Exception:
        return False
