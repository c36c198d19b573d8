"""Fetching URLs for URL sources, through the guarded outbound client (syntera/outbound/).

The client connects only to addresses it has checked (private and local ones are refused
unless the operator allow-lists them with OUTBOUND_ALLOWLIST), on every redirect hop, and
holds each fetch to a total deadline (KNOWLEDGE_FETCH_DEADLINE) besides the per-read timeout
(KNOWLEDGE_FETCH_TIMEOUT), so a server trickling bytes cannot hold a worker.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from syntera import outbound

from .extractors import ExtractionError

logger = logging.getLogger(__name__)

USER_AGENT = "SynteraBot/1.0 (+knowledge ingestion)"


@dataclass
class Fetched:
    url: str
    content_type: str
    body: bytes


def check_url(url: str) -> str:
    """Return the URL if it may be fetched now; raise ExtractionError with the reason if not."""
    try:
        return outbound.check_url(url)
    except outbound.OutboundRefused as exc:
        logger.info("URL refused: %s", exc.detail)
        raise ExtractionError(str(exc)) from None


def _seconds(value: float) -> str:
    return f"{value:g} second" + ("" if value == 1 else "s")


def fetch(url: str, *, max_bytes: int | None = None) -> Fetched:
    """GET `url` (following up to outbound.MAX_REDIRECTS redirects) within the deadline."""
    limit = max_bytes or settings.KNOWLEDGE_MAX_FILE_BYTES
    total = float(settings.KNOWLEDGE_FETCH_DEADLINE)
    started = time.monotonic()
    try:
        with (
            outbound.deadline(total),
            outbound.client(
                timeout=settings.KNOWLEDGE_FETCH_TIMEOUT, deadline=total, headers={"User-Agent": USER_AGENT}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise ExtractionError(f"The page answered HTTP {response.status_code}.")
            body = bytearray()
            for part in response.iter_bytes():
                body.extend(part)
                if len(body) > limit:
                    raise ExtractionError(f"The page is larger than {limit // (1024 * 1024)} MB.")
            content_type = response.headers.get("content-type", "")
            return Fetched(url=str(response.url), content_type=content_type, body=bytes(body))
    except outbound.OutboundRefused as exc:
        logger.info("fetch of %s refused: %s", url, exc.detail)
        raise ExtractionError(str(exc)) from None
    except httpx.TooManyRedirects:
        raise ExtractionError("Too many redirects.") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise ExtractionError(outbound.REFUSED_SCHEME) from None
    except httpx.TimeoutException:
        if time.monotonic() - started >= total - 0.05:
            raise ExtractionError(f"The page did not finish loading within {_seconds(total)}.") from None
        raise ExtractionError(
            f"The server did not answer within {_seconds(float(settings.KNOWLEDGE_FETCH_TIMEOUT))}."
        ) from None
    except httpx.HTTPError as exc:
        # The exception's class and text stay in the log: shown to a tenant they would tell a
        # refused port from a filtered one.
        logger.info("fetch of %s failed: %s: %s", url, type(exc).__name__, exc)
        raise ExtractionError("The page could not be fetched: the server could not be reached or broke off.") from None
