"""The newest visitor message of each conversation, kept in Redis once it commits: an AI turn
that a newer message superseded (the AI answers the newest, for both) ends before it reads
anything, which is most of an overloaded queue's turns. Only a hint: when Redis does not know
(expired, flushed, unreachable) the transcript decides (`ai._overtaken`)."""

from __future__ import annotations

import logging
from typing import cast

import redis

from syntera import slots

logger = logging.getLogger(__name__)

_NOTE_NEWER = """
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > known then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 0
"""
HINT_SECONDS = 86400


def _key(schema: str, conversation_id: int) -> str:
    # Named with the schema, so a workspace's purge deletes it (apps/workspaces/purge.py).
    return slots.key(f"visitor-seq:{schema}:{conversation_id}")


def note_visitor_message(schema: str, conversation_id: int, seq: int) -> None:
    """Record (after commit) that the conversation's newest visitor message is at least `seq`."""
    try:
        slots.client().eval(_NOTE_NEWER, 1, _key(schema, conversation_id), str(seq), str(HINT_SECONDS))
    except redis.RedisError:
        logger.warning("newest visitor message not noted", exc_info=True)


def newest_visitor_seq(schema: str, conversation_id: int) -> int:
    """The newest visitor message's seq as noted, or 0 when Redis does not know."""
    try:
        return int(cast(bytes | None, slots.client().get(_key(schema, conversation_id))) or 0)
    except redis.RedisError:
        return 0
