"""Counted slots in Redis: at most `limit` holders of a named resource at once, across every
worker process and machine (one tenant's concurrent ingestions, for example).

A slot is a member of a sorted set scored by when it lapses, so the slot of a worker that was
killed while holding it frees itself after `ttl` seconds; acquiring first drops lapsed
members, then adds the holder if there is room, in one Lua script (atomic). A holder that
asks again (a task delivered a second time) keeps its slot. Names carry the tenant's schema
(`ingest:<schema>`), and keys the deployment's cache prefix, like every other Redis key.
See docs/subsystems/operations.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.conf import settings

_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
  return 1
end
return 0
"""


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def key(name: str) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'syntera'}:slots:{name}"


def acquire(name: str, *, limit: int, ttl: float, holder: str) -> bool:
    """Take one of `limit` slots of `name` for `holder`, for at most `ttl` seconds."""
    return bool(client().eval(_ACQUIRE, 1, key(name), holder, str(max(1, int(limit))), str(float(ttl))))


def release(name: str, *, holder: str) -> None:
    client().zrem(key(name), holder)


@contextmanager
def slot(name: str, *, limit: int, ttl: float, holder: str) -> Iterator[bool]:
    """`with slot(...) as held:` — held is False when every slot is taken (nothing to release)."""
    held = acquire(name, limit=limit, ttl=ttl, holder=holder)
    try:
        yield held
    finally:
        if held:
            release(name, holder=holder)
