"""Django's Redis cache, with one connection pool per process for each server
(docs/deployment.md, "Sockets per box").

Django keeps one cache object per thread and per asyncio context, and its Redis backend gives
each object a connection pool of its own. In the ASGI server every WebSocket runs in a context
of its own, so each open socket that touched the cache (the widget's limit checks do, on
connect) kept a pool, and with it a Redis connection, for as long as it stayed open: 10,000
sockets were Redis's 10,000 clients (its default `maxclients`), and every connection after
them failed. Here the objects stay per context, as Django wants, but share the process's pool:
the connections then follow the threads using the cache at once, not the sockets. redis-py's
pools are thread-safe and start afresh in a forked child (a Celery prefork worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_pools: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    """Django's client, taking its connection pools from the process's."""

    # Django's own (private, so not in its type stubs).
    _servers: list[str]
    _pools: dict[int, Any]
    _pool_class: Any
    _pool_options: dict[str, Any]
    _get_connection_pool_index: Callable[[bool], int]

    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)
        pool = self._pools.get(index)
        if pool is None:
            options = tuple(sorted((name, repr(value)) for name, value in self._pool_options.items()))
            key = (self._pool_class, self._servers[index], options)
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            self._pools[index] = pool
        return pool


class RedisCache(DjangoRedisCache):
    """`django.core.cache.backends.redis.RedisCache` on the process's shared pools."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient
