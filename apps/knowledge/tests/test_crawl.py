"""Crawling a real local web site (stdlib HTTP server on loopback, allow-listed for the
test): same-site links, depth and page limits, robots.txt, sitemaps, and ingestion of
every crawled page as its own document."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.knowledge.crawl import CrawlLimits, crawl
from apps.knowledge.models import Document


class _Site(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def pages(self) -> dict[str, tuple[str, bytes]]:
        base = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
        html = "text/html; charset=utf-8"
        return {
            "/": (
                html,
                b'<h1>Home</h1><p>Welcome home page.</p><a href="/a">A</a> <a href="/b#frag">B</a> '
                b'<a href="/private/x">P</a> <a href="http://elsewhere.example/">ext</a> <a href="/logo.png">i</a>',
            ),
            "/a": (html, b'<h1>Alpha page</h1><p>Alpha content about refunds.</p><a href="/c">C</a>'),
            "/b": (html, b"<h1>Beta page</h1><p>Beta content about shipping.</p>"),
            "/c": (html, b"<h1>Gamma page</h1><p>Deep content, two clicks away.</p>"),
            "/private/x": (html, b"<p>Forbidden by robots.</p>"),
            "/robots.txt": ("text/plain", b"User-agent: *\nDisallow: /private/\n"),
            "/sitemap.xml": (
                "application/xml",
                (
                    '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                    f"<url><loc>{base}/b</loc></url><url><loc>{base}/c</loc></url>"
                    "<url><loc>http://elsewhere.example/x</loc></url></urlset>"
                ).encode(),
            ),
        }

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        content_type, body = self.pages().get(self.path, ("text/plain", b""))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site(settings: Any) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.KNOWLEDGE_URL_ALLOWLIST = ["127.0.0.1/32"]
    _Site.hits = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _urls(start: str, **limits: int) -> list[str]:
    defaults = {"max_pages": 50, "max_depth": 3, "max_bytes": 10_000_000}
    return [page.url for page in crawl(start, CrawlLimits(**{**defaults, **limits}))]


def test_same_site_breadth_first_with_robots(site: str) -> None:
    urls = _urls(site + "/")
    assert urls == [f"{site}/", f"{site}/a", f"{site}/b", f"{site}/c"]
    assert "/private/x" not in _Site.hits and "/logo.png" not in _Site.hits


def test_depth_page_and_byte_limits(site: str) -> None:
    assert _urls(site + "/", max_depth=1) == [f"{site}/", f"{site}/a", f"{site}/b"]
    assert len(_urls(site + "/", max_pages=2)) == 2
    assert len(_urls(site + "/", max_bytes=10)) == 1


def test_sitemap_lists_the_pages(site: str) -> None:
    assert _urls(site + "/sitemap.xml") == [f"{site}/b", f"{site}/c"]


def test_crawled_site_ingests_one_document_per_page(
    site: str, alpha: Any, api_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = api_for(alpha.host, alpha.api_key)
    kb = client.post("/api/v1/knowledge-bases/", {"name": "Site"}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            f"/api/v1/knowledge-bases/{kb}/sources/",
            {"type": "url", "url": site + "/", "crawl": True, "max_pages": 3},
            format="json",
        )
    assert created.status_code == 201
    source = client.get(f"/api/v1/knowledge-bases/{kb}/sources/{created.json()['id']}/").json()
    assert source["status"] == "ready"
    refs = sorted(Document.objects.filter(source_id=source["id"]).values_list("ref", flat=True))
    assert refs == [f"{site}/", f"{site}/a", f"{site}/b"]
    hit = client.post("/api/v1/knowledge/search", {"query": "shipping", "knowledge_bases": [kb]}, format="json")
    assert hit.json()["results"][0]["source"]["url"] == f"{site}/b"
