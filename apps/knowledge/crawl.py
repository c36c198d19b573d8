"""Same-site crawling for URL sources: a sitemap, or links followed breadth-first from a
start page, within page, depth and byte limits, honouring robots.txt.

Every fetch goes through `fetch.fetch`, so each URL (and each redirect hop) passes the
private-address check. See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib import robotparser
from urllib.parse import urldefrag, urlsplit, urlunsplit
from xml.etree import ElementTree

from .extractors import ExtractionError, decode_text
from .extractors.html import extract as extract_html
from .fetch import USER_AGENT, Fetched, fetch

SKIP_EXTENSIONS = re.compile(
    r"\.(png|jpe?g|gif|svg|webp|ico|css|js|mjs|json|zip|gz|tar|mp[34]|mov|avi|woff2?|ttf|eot|exe|dmg|iso)$", re.I
)
MAX_SITEMAP_URLS = 50_000


@dataclass
class CrawlLimits:
    max_pages: int
    max_depth: int
    max_bytes: int


def _normalise(url: str) -> str:
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _robots(start: str) -> robotparser.RobotFileParser:
    parts = urlsplit(start)
    parser = robotparser.RobotFileParser()
    try:
        page = fetch(f"{parts.scheme}://{parts.netloc}/robots.txt", max_bytes=512 * 1024)
        parser.parse(decode_text(page.body).splitlines())
    except ExtractionError:
        parser.parse([])  # no robots.txt (or unreachable): everything allowed
    return parser


def _is_sitemap(page: Fetched) -> bool:
    head = page.body[:2048].lstrip()
    return "xml" in page.content_type and (b"<urlset" in head or b"<sitemapindex" in head)


def _sitemap_urls(page: Fetched, limits: CrawlLimits, seen_maps: set[str]) -> list[str]:
    try:
        root = ElementTree.fromstring(page.body)  # noqa: S314 (expat refuses entity amplification; size capped)
    except ElementTree.ParseError as exc:
        raise ExtractionError("The sitemap is not valid XML.") from exc
    locs = [el.text.strip() for el in root.iter() if el.tag.endswith("loc") and el.text]
    if root.tag.endswith("sitemapindex"):
        urls: list[str] = []
        for loc in locs[:50]:
            if loc in seen_maps or len(urls) >= limits.max_pages:
                continue
            seen_maps.add(loc)
            try:
                urls.extend(_sitemap_urls(fetch(loc), limits, seen_maps))
            except ExtractionError:
                continue
        return urls
    return locs[:MAX_SITEMAP_URLS]


def crawl(start_url: str, limits: CrawlLimits, progress: Callable[[float], None] | None = None) -> Iterator[Fetched]:
    """Yield fetched pages of the start URL's site. A sitemap start lists the pages; a page
    start follows same-host links breadth-first up to `max_depth` clicks away."""
    robots = _robots(start_url)
    host = urlsplit(start_url).netloc.lower()
    used = 0
    pages = 0
    first = fetch(start_url)
    queue: deque[tuple[str, int]] = deque()
    seen: set[str] = {_normalise(first.url)}
    if _is_sitemap(first):
        for url in _sitemap_urls(first, limits, {first.url}):
            if urlsplit(url).netloc.lower() == host and _normalise(url) not in seen:
                seen.add(_normalise(url))
                queue.append((url, 0))
        pending: Fetched | None = None
    else:
        pending = first
    while pending is not None or queue:
        if pending is None:
            url, depth = queue.popleft()
            if not robots.can_fetch(USER_AGENT, url):
                continue
            try:
                page = fetch(url, max_bytes=max(1, min(limits.max_bytes - used, 25 * 1024 * 1024)))
            except ExtractionError:
                continue  # one broken page does not fail the crawl
        else:
            page, depth, pending = pending, 0, None
        used += len(page.body)
        pages += 1
        yield page
        if progress:
            progress(min(1.0, pages / limits.max_pages))
        if pages >= limits.max_pages or used >= limits.max_bytes:
            return
        if depth < limits.max_depth and "html" in (page.content_type or "text/html"):
            for link in extract_html(page.body, max_chars=2_000_000, url=page.url).links:
                normal = _normalise(link)
                if (
                    normal in seen
                    or urlsplit(link).netloc.lower() != host
                    or SKIP_EXTENSIONS.search(urlsplit(link).path)
                ):
                    continue
                seen.add(normal)
                queue.append((link, depth + 1))
