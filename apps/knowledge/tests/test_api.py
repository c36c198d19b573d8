"""Knowledge through the API as an integrator uses it: knowledge bases, every kind of
source, ingestion status and progress, search, deletion, and the bad inputs."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.knowledge.models import Chunk, Document, Source

from .samples import docx_bytes, encrypted_pdf_bytes, pdf_bytes


@pytest.fixture
def api(alpha: Any, api_for: Any, django_capture_on_commit_callbacks: Any) -> Iterator[Any]:
    """Alpha's API client; ingestion tasks run (eagerly) when each request's transaction commits."""
    client = api_for(alpha.host, alpha.api_key)

    class Committing:
        def __getattr__(self, name: str) -> Any:
            method = getattr(client, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                with django_capture_on_commit_callbacks(execute=True):
                    return method(*args, **kwargs)

            return call

    yield Committing()


def _kb(api: Any, name: str = "Help centre") -> int:
    response = api.post("/api/v1/knowledge-bases/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name
    return int(response.json()["id"])


def _source(api: Any, kb: int, source_id: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/knowledge-bases/{kb}/sources/{source_id}/")
    assert response.status_code == 200
    return dict(response.json())


def _search(api: Any, kb: int, query: str, **extra: Any) -> list[dict[str, Any]]:
    response = api.post("/api/v1/knowledge/search", {"query": query, "knowledge_bases": [kb], **extra}, format="json")
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def test_knowledge_base_crud(api: Any) -> None:
    kb = _kb(api)
    assert (
        api.patch(f"/api/v1/knowledge-bases/{kb}/", {"name": "Renamed", "lexical_weight": 0.5}, format="json").json()[
            "name"
        ]
        == "Renamed"
    )
    listed = api.get("/api/v1/knowledge-bases/").json()
    assert any(item["id"] == kb for item in listed["results"])
    assert api.delete(f"/api/v1/knowledge-bases/{kb}/").status_code == 204
    assert api.get(f"/api/v1/knowledge-bases/{kb}/").status_code == 404


def test_text_source_ingests_and_is_found_with_citation_fields(api: Any) -> None:
    kb = _kb(api)
    created = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {
            "type": "text",
            "title": "Shipping policy",
            "text": "# Shipping\n\nOrders ship within 2 business days. Express delivery costs 9 EUR.\n\n"
            "# Returns\n\nYou may return unused items within 30 days for a full refund.",
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "status", "progress", "error", "chunk_count", "title"}
    source = _source(api, kb, body["id"])
    assert (source["status"], source["progress"], source["error"]) == ("ready", 100, None)
    assert source["chunk_count"] == 2
    results = _search(api, kb, "how long do I have to send something back?")
    top = results[0]
    assert set(top) >= {"chunk_id", "score", "text", "source"}
    assert "30 days" in top["text"] and top["heading"] == "Returns"
    assert top["source"] == {"id": body["id"], "title": "Shipping policy", "url": ""}


def test_a_passage_is_found_by_its_documents_title(api: Any) -> None:
    """Help pages rarely repeat their subject in every paragraph: the page title is embedded
    and indexed with each chunk, so "passport renewal" finds the page's second section, which
    never says "passport"."""
    kb = _kb(api)
    for title, text in (
        ("Passport renewal", "# Online\n\nYou can apply online in ten minutes.\n\n# Timing\n\nIt takes two weeks."),
        ("Driving licence renewal", "# Online\n\nRenew your licence online.\n\n# Timing\n\nIt takes five days."),
    ):
        api.post(
            f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "title": title, "text": text}, format="json"
        )
    for mode in ("lexical", "dense", "hybrid"):
        top = _search(api, kb, "how long does passport renewal take", mode=mode)[0]
        assert (top["source"]["title"], top["text"]) == ("Passport renewal", "Timing\nIt takes two weeks."), mode
    # The title is context, not content: a citation quotes the passage itself.
    assert "Passport" not in top["text"]
    # Renaming the page indexes it again under its new title.
    source = top["source"]["id"]
    renamed = api.patch(f"/api/v1/knowledge-bases/{kb}/sources/{source}/", {"title": "Visa renewal"}, format="json")
    assert renamed.status_code == 200 and _source(api, kb, source)["status"] == "ready"
    assert set(Chunk.objects.filter(source_id=source).values_list("context", flat=True)) == {"Visa renewal"}
    top = _search(api, kb, "how long does visa renewal take", mode="dense")[0]
    assert (top["source"]["title"], top["text"]) == ("Visa renewal", "Timing\nIt takes two weeks.")


def test_greetings_and_asking_words_do_not_steer_full_text_search(api: Any) -> None:
    """A chat message says how it asks ("Hello, I need some help and information about ...");
    the full-text leg searches for what it asks about, so a page that talks about help and
    questions does not outrank the one about the subject."""
    kb = _kb(api)
    for title, text in (
        ("Contact us", "Need help? Ask us any question. We help with information and questions every day. Hello!"),
        ("Refunds", "Refunds are paid to your card within five days."),
    ):
        api.post(
            f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "title": title, "text": text}, format="json"
        )
    results = _search(api, kb, "Hello, I need some help and information about a refund please", mode="lexical")
    assert [r["source"]["title"] for r in results] == ["Refunds"]
    # Nothing but asking words: they are searched for after all.
    assert _search(api, kb, "hello, I need help", mode="lexical")[0]["source"]["title"] == "Contact us"


def test_unknown_words_are_the_ones_no_chunk_mentions(api: Any, alpha: Any) -> None:
    """Compared as full-text lexemes ("renewing" is known from "renewal"), stop words never
    unknown, and only this workspace's chunks count: beta's canary word is unknown to alpha
    even with every one of alpha's knowledge bases searched."""
    from django_tenants.utils import schema_context

    from apps.knowledge.models import KnowledgeBase
    from apps.knowledge.search.fulltext import unknown_words

    kb = _kb(api)
    text = "# Renewal\n\nPassport renewal takes two weeks. Refunds are paid within five days."
    api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "title": "Passports", "text": text}, format="json"
    )
    with schema_context(alpha.schema):
        asked = ["Renewing", "refund", "the", "acupuncture", "passports", ""]
        assert unknown_words(asked, [kb]) == {"acupuncture"}
        assert unknown_words(asked, []) == set()
        # A word too long to be a lexeme is ignored, not an error.
        assert unknown_words(["x" * 5000, "acupuncture"], [kb]) == {"acupuncture"}
        everything = list(KnowledgeBase.objects.values_list("id", flat=True))
        assert unknown_words(["canary-alpha", "canary-beta"], everything) == {"canary-beta"}


def test_file_uploads_of_each_type(api: Any) -> None:
    kb = _kb(api)
    files = {
        "guide.pdf": pdf_bytes(["Our warranty lasts two years", "Batteries are covered for one year"]),
        "handbook.docx": docx_bytes([("Heading1", "Vacation"), ("", "Staff get 28 vacation days a year.")]),
        "page.html": b"<h1>Opening hours</h1><p>We are open Monday to Friday, 9 to 17.</p><script>x()</script>",
        "notes.md": b"# Pricing\n\nThe Pro plan costs 20 EUR per month.",
        "plain.txt": b"Our office is in Lisbon, Portugal.",
        "plans.csv": b"plan,seats\nStarter,3\nScale,50\n",
    }
    ids = {}
    for name, data in files.items():
        response = api.post(
            f"/api/v1/knowledge-bases/{kb}/sources/", {"file": SimpleUploadedFile(name, data)}, format="multipart"
        )
        assert response.status_code == 201, (name, response.content)
        ids[name] = response.json()["id"]
    for name, source_id in ids.items():
        source = _source(api, kb, source_id)
        assert source["status"] == "ready", (name, source)
        assert source["chunk_count"] >= 1
    assert "two years" in _search(api, kb, "warranty period")[0]["text"]
    assert "28 vacation days" in _search(api, kb, "how many holidays do employees get")[0]["text"]
    assert "Lisbon" in _search(api, kb, "where is the office located")[0]["text"]
    pdf_hit = _search(api, kb, "battery coverage")[0]
    assert pdf_hit["page"] == 2 and pdf_hit["anchor"] == "page=2"
    # files live under the tenant's own path
    stored = Source.objects.get(pk=ids["guide.pdf"]).file.name
    assert stored.startswith("tenants/alpha/knowledge/")


def test_faq_entries_json_csv_import_and_editing(api: Any) -> None:
    kb = _kb(api)
    faq = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {
            "type": "faq",
            "entries": [
                {"question": "Do you sell gift cards?", "answer": "Yes, from 10 to 500 EUR."},
                {"question": "Can I pay by invoice?", "answer": "Only business customers can."},
            ],
        },
        format="json",
    ).json()
    assert _source(api, kb, faq["id"])["chunk_count"] == 2
    hit = _search(api, kb, "gift card")[0]
    assert hit["text"] == "Q: Do you sell gift cards?\nA: Yes, from 10 to 500 EUR."
    edited = api.patch(
        f"/api/v1/knowledge-bases/{kb}/sources/{faq['id']}/",
        {
            "entries": [
                {"question": "Do you sell gift cards?", "answer": "No, not any more."},
            ]
        },
        format="json",
    )
    assert edited.status_code == 200
    assert edited.json()["entries"] == [{"question": "Do you sell gift cards?", "answer": "No, not any more."}]
    assert _source(api, kb, faq["id"])["chunk_count"] == 1
    assert "not any more" in _search(api, kb, "gift card")[0]["text"]
    csv = SimpleUploadedFile("faq.csv", b"Question,Answer\nIs there a student discount?,Yes: 20 percent.\n")
    imported = api.post(f"/api/v1/knowledge-bases/{kb}/sources/", {"file": csv, "type": "faq"}, format="multipart")
    assert imported.status_code == 201 and _source(api, kb, imported.json()["id"])["chunk_count"] == 1
    bad_csv = SimpleUploadedFile("faq.csv", b"name,price\nx,1\n")
    refused = api.post(f"/api/v1/knowledge-bases/{kb}/sources/", {"file": bad_csv, "type": "faq"}, format="multipart")
    assert refused.status_code == 400 and "question" in refused.json()["error"]["detail"]


def test_broken_files_fail_with_a_reason_and_others_are_unaffected(api: Any) -> None:
    kb = _kb(api)
    good = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Good content here."}, format="json"
    ).json()
    locked = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {"file": SimpleUploadedFile("locked.pdf", encrypted_pdf_bytes())},
        format="multipart",
    ).json()
    corrupt = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {"file": SimpleUploadedFile("bad.pdf", b"%PDF-1.7 garbage")},
        format="multipart",
    ).json()
    assert _source(api, kb, locked["id"])["status"] == "failed"
    assert "password-protected" in _source(api, kb, locked["id"])["error"]
    assert "damaged" in _source(api, kb, corrupt["id"])["error"]
    assert _source(api, kb, good["id"])["status"] == "ready"


def test_unsupported_and_oversized_uploads(api: Any, settings: Any) -> None:
    kb = _kb(api)
    exe = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {"file": SimpleUploadedFile("tool.exe", b"MZ\x90\x00")},
        format="multipart",
    )
    assert exe.status_code == 415
    assert ".pdf" in exe.json()["error"]["detail"] and exe.json()["error"]["code"] == "unsupported_media_type"
    settings.KNOWLEDGE_MAX_FILE_BYTES = 1000
    big = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/",
        {"file": SimpleUploadedFile("big.txt", b"x" * 5000)},
        format="multipart",
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    assert not Source.objects.filter(knowledge_base_id=kb).exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin",
        "http://localhost:6379/",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://example.com/x",
        "http://user:pw@example.com/",
    ],
)
def test_private_and_odd_urls_are_refused(api: Any, url: str) -> None:
    kb = _kb(api)
    response = api.post(f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "url", "url": url}, format="json")
    assert response.status_code == 400, response.content
    assert not Source.objects.filter(knowledge_base_id=kb).exists()


class _Site(http.server.BaseHTTPRequestHandler):
    pages = {
        "/help": b"<html><head><title>Help</title></head><body><h1 id='hours'>Hours</h1>"
        b"<p>Support answers from 8 to 20 every day.</p></body></html>",
    }

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body or b"not found")

    def log_message(self, *args: Any) -> None:
        pass


def test_allow_listed_url_is_fetched_and_cited(api: Any, settings: Any) -> None:
    """A real local HTTP server; loopback is allowed only because the operator listed it."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.KNOWLEDGE_URL_ALLOWLIST = ["127.0.0.1/32"]
    try:
        kb = _kb(api)
        url = f"http://127.0.0.1:{server.server_port}/help"
        created = api.post(f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "url", "url": url}, format="json").json()
        missing = api.post(
            f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "url", "url": url + "-gone"}, format="json"
        ).json()
    finally:
        server.shutdown()
    assert _source(api, kb, created["id"])["status"] == "ready"
    hit = _search(api, kb, "when is support available")[0]
    assert hit["source"]["url"] == url + "#hours"
    assert "HTTP 404" in _source(api, kb, missing["id"])["error"]


def test_resync_skips_unchanged_documents_and_delete_removes_chunks(api: Any) -> None:
    kb = _kb(api)
    source = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Stable text."}, format="json"
    ).json()
    chunk_ids = set(Chunk.objects.filter(source_id=source["id"]).values_list("id", flat=True))
    resynced = api.post(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/resync")
    assert resynced.status_code == 202
    assert _source(api, kb, source["id"])["status"] == "ready"
    # unchanged content: the very same chunks, nothing re-embedded or duplicated
    assert set(Chunk.objects.filter(source_id=source["id"]).values_list("id", flat=True)) == chunk_ids
    assert api.delete(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/").status_code == 204
    assert not Chunk.objects.filter(pk__in=chunk_ids).exists()
    assert not Document.objects.filter(source_id=source["id"]).exists()
    assert _search(api, kb, "stable") == []


def test_a_superseded_run_changes_nothing(api: Any) -> None:
    from apps.knowledge.services.ingestion import ingest_source

    kb = _kb(api)
    source = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Version one."}, format="json"
    ).json()
    stale_run = Source.objects.get(pk=source["id"]).run
    api.post(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/resync")
    assert ingest_source(source_id=source["id"], run=stale_run) == "superseded"
    assert Chunk.objects.filter(source_id=source["id"]).count() == 1


def test_search_validation(api: Any) -> None:
    kb = _kb(api)
    for body in (
        {"query": "", "knowledge_bases": [kb]},
        {"query": "x", "knowledge_bases": []},
        {"query": "x", "knowledge_bases": [kb], "top_k": 0},
        {"query": "x" * 3000, "knowledge_bases": [kb]},
        {"query": "x", "knowledge_bases": ["a"]},
        {"query": "x", "knowledge_bases": [kb], "mode": "magic"},
    ):
        response = api.post("/api/v1/knowledge/search", body, format="json")
        assert response.status_code == 400, body
    unknown = api.post("/api/v1/knowledge/search", {"query": "x", "knowledge_bases": [999999]}, format="json")
    assert unknown.status_code == 400 and "999999" in unknown.json()["error"]["detail"]


def test_min_similarity_lets_callers_abstain(api: Any) -> None:
    kb = _kb(api)
    api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Our cafe serves espresso."}, format="json"
    )
    assert _search(api, kb, "espresso coffee", min_similarity=0.3)
    assert _search(api, kb, "quantum chromodynamics lattice", min_similarity=0.5) == []


def test_roles_and_scopes(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> None:
    viewer, _ = make_member(alpha, "viewer")
    token = jwt_for(alpha, viewer.email)
    client = api_for(alpha.host, token)
    assert client.get("/api/v1/knowledge-bases/").status_code == 200
    assert client.post("/api/v1/knowledge-bases/", {"name": "x"}, format="json").status_code == 403
    kb_id = client.get("/api/v1/knowledge-bases/").json()["results"][0]["id"]
    searched = client.post("/api/v1/knowledge/search", {"query": "canary", "knowledge_bases": [kb_id]}, format="json")
    assert searched.status_code == 200, searched.content
    owner = api_for(alpha.host, alpha.api_key)
    read_key = owner.post("/api/v1/api-keys/", {"name": "ro", "scopes": ["knowledge:read"]}, format="json").json()[
        "key"
    ]
    reader = api_for(alpha.host, read_key)
    assert (
        reader.post(
            "/api/v1/knowledge/search", {"query": "canary", "knowledge_bases": [kb_id]}, format="json"
        ).status_code
        == 200
    )
    assert reader.post("/api/v1/knowledge-bases/", {"name": "x"}, format="json").status_code == 403


def test_scheduled_resync_and_stalled_runs_are_requeued(api: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.knowledge.services.ingestion import sources_due

    kb = _kb(api)
    scheduled = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Scheduled."}, format="json"
    ).json()
    stalled = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Stalled."}, format="json"
    ).json()
    fresh = api.post(f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "text": "Fresh."}, format="json").json()
    past = timezone.now() - timedelta(hours=1)
    Source.objects.filter(pk=scheduled["id"]).update(next_sync_at=past, sync_interval_hours=1)
    Source.objects.filter(pk=stalled["id"]).update(status="processing", updated_at=past)
    runs = {s.pk: s.run for s in Source.objects.filter(knowledge_base_id=kb)}
    due = dict(sources_due())
    assert set(due) == {scheduled["id"], stalled["id"]}
    assert due[scheduled["id"]] == runs[scheduled["id"]] + 1 and fresh["id"] not in due
    patched = api.patch(
        f"/api/v1/knowledge-bases/{kb}/sources/{fresh['id']}/", {"sync_interval_hours": 24}, format="json"
    ).json()
    assert patched["sync_interval_hours"] == 24 and patched["next_sync_at"]
