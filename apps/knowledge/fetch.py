"""Fetching URLs for URL sources, refusing private addresses (SSRF) unless allow-listed.

The host is resolved once and every resolved address checked; the connection then goes to
a checked address, and redirects are followed by hand so each hop is checked too.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from .extractors import ExtractionError

MAX_REDIRECTS = 5
USER_AGENT = "SynteraBot/1.0 (+knowledge ingestion)"


@dataclass
class Fetched:
    url: str
    content_type: str
    body: bytes


def _allowed_networks() -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]:
    networks, hosts = [], set()
    for item in settings.KNOWLEDGE_URL_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return networks, hosts


def check_url(url: str) -> str:
    """Return the URL if it may be fetched; raise ExtractionError with the reason if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ExtractionError("Only http and https URLs can be added.")
    if parts.username or parts.password:
        raise ExtractionError("URLs with credentials in them are not accepted.")
    host = parts.hostname.lower()
    networks, hosts = _allowed_networks()
    if host in hosts:
        return url
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise ExtractionError(f"The address {host} could not be resolved.") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if any(address in net for net in networks):
            continue
        if not address.is_global:
            raise ExtractionError(
                f"{host} points to a private or local address ({address}); it is refused to protect internal "
                "services. An operator can allow it with KNOWLEDGE_URL_ALLOWLIST."
            )
    return url


def fetch(url: str, *, max_bytes: int | None = None) -> Fetched:
    limit = max_bytes or settings.KNOWLEDGE_MAX_FILE_BYTES
    current = url
    with httpx.Client(
        timeout=settings.KNOWLEDGE_FETCH_TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(current)
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect and response.headers.get("location"):
                        current = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code >= 400:
                        raise ExtractionError(f"The page answered HTTP {response.status_code}.")
                    body = bytearray()
                    for part in response.iter_bytes():
                        body.extend(part)
                        if len(body) > limit:
                            raise ExtractionError(f"The page is larger than {limit // (1024 * 1024)} MB.")
                    return Fetched(
                        url=str(response.url), content_type=response.headers.get("content-type", ""), body=bytes(body)
                    )
            except httpx.HTTPError as exc:
                raise ExtractionError(f"The page could not be fetched ({type(exc).__name__}).") from exc
    raise ExtractionError("Too many redirects.")
