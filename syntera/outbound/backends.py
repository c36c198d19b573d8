"""The network backends under the connection pools: resolve the host once, check every address,
connect to exactly the checked addresses (so DNS rebinding after the check changes nothing).
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore

from .deadlines import _bounded
from .policy import OutboundRefused, resolve_checked


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host: the certificate is verified for the name, not the address.
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, trusted_origins: Iterable[tuple[str, int]]) -> None:
        self._inner = httpcore.SyncBackend()
        self._trusted = tuple(trusted_origins)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        _bounded(timeout, httpcore.ConnectTimeout)
        infos = resolve_checked(host, port, trusted_origins=self._trusted)
        return _Stream(_first_connection(self._inner, infos, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise OutboundRefused("Unix sockets are not reachable from outbound requests.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _addresses(infos: list[tuple[Any, ...]]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _first_connection(
    inner: httpcore.SyncBackend,
    infos: list[tuple[Any, ...]],
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> httpcore.NetworkStream:
    error: Exception | None = None
    for address in _addresses(infos):
        try:
            return inner.connect_tcp(
                address,
                port,
                timeout=_bounded(timeout, httpcore.ConnectTimeout),
                local_address=local_address,
                socket_options=socket_options,
            )
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            error = exc
    assert error is not None
    raise error


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, trusted_origins: Iterable[tuple[str, int]]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._trusted = tuple(trusted_origins)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        limit = _bounded(timeout, httpcore.ConnectTimeout)
        resolve = functools.partial(resolve_checked, host, port, trusted_origins=self._trusted)
        # The system resolver blocks: it runs in a thread, and the deadline bounds the wait.
        with anyio.move_on_after(math.inf if limit is None else limit) as scope:
            infos = await anyio.to_thread.run_sync(resolve, abandon_on_cancel=True)
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout("The host name was not resolved in time.")
        error: Exception | None = None
        for address in _addresses(infos):
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_bounded(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _AsyncStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("Unix sockets are not reachable from outbound requests.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
