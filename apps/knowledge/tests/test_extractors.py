"""Extraction of every accepted file type, from real files the tests make, and the bounds
that keep hostile files harmless."""

from __future__ import annotations

import time

import pytest

from apps.knowledge.chunking import chunk_sections
from apps.knowledge.extractors import ExtractionError, extract, kind_for

from .samples import docx_bomb_bytes, docx_bytes, encrypted_pdf_bytes, pdf_bytes

LIMIT = 5_000_000


def test_pdf_pages_and_title() -> None:
    result = extract(
        "pdf", pdf_bytes(["Refunds take five days", "Shipping is free over 50 EUR"], title="Policy"), max_chars=LIMIT
    )
    assert result.title == "Policy"
    assert [(s.page, s.text) for s in result.sections] == [
        (1, "Refunds take five days"),
        (2, "Shipping is free over 50 EUR"),
    ]
    assert result.sections[1].anchor == "page=2"


def test_pdf_progress_is_reported_per_page() -> None:
    seen: list[float] = []
    extract("pdf", pdf_bytes([f"Page {i}" for i in range(5)]), max_chars=LIMIT, progress=seen.append)
    assert seen == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_encrypted_and_corrupt_pdfs_fail_with_a_reason() -> None:
    with pytest.raises(ExtractionError, match="password-protected"):
        extract("pdf", encrypted_pdf_bytes(), max_chars=LIMIT)
    with pytest.raises(ExtractionError, match="damaged or not a PDF"):
        extract("pdf", b"%PDF-1.4\n" + b"\x00garbage" * 100, max_chars=LIMIT)


def test_docx_headings_paragraphs_and_tables() -> None:
    data = docx_bytes(
        [
            ("Title", "Acme Handbook"),
            ("Heading1", "Billing"),
            ("", "We bill monthly."),
            ("Heading2", "Refunds"),
            ("", "Refunds take five days."),
        ],
        table=[["Plan", "Price"], ["Pro", "20 EUR"]],
    )
    result = extract("docx", data, max_chars=LIMIT)
    assert result.title == "Acme Handbook"
    assert [(s.heading, s.text) for s in result.sections] == [
        ("Billing", "We bill monthly."),
        ("Billing > Refunds", "Refunds take five days."),
        ("Billing > Refunds", "Plan | Price"),
        ("Billing > Refunds", "Pro | 20 EUR"),
    ]


def test_docx_decompression_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="unreasonable size"):
        extract("docx", docx_bomb_bytes(), max_chars=LIMIT)
    assert time.monotonic() - started < 5
    with pytest.raises(ExtractionError, match="damaged"):
        extract("docx", b"PK\x03\x04 not really a zip", max_chars=LIMIT)


def test_html_keeps_structure_and_drops_scripts_styles_and_chrome() -> None:
    html = b"""<html><head><title>Help - Acme</title><style>.x{color:red}</style>
    <script>var secret = "SCRIPT-TEXT";</script></head><body>
    <nav>Home | Products | NAV-TEXT</nav>
    <h1 id="ship">Shipping</h1><p>We ship <b>worldwide</b>.</p>
    <ul><li>EU: 3 days</li><li>US: 7 days</li></ul>
    <table><tr><th>Zone</th><th>Price</th></tr><tr><td>EU</td><td>5</td></tr></table>
    <script>document.write("MORE-SCRIPT")</script><noscript>NOSCRIPT-TEXT</noscript>
    <footer>FOOTER-TEXT</footer><a href="/returns#x">Returns</a></body></html>"""
    result = extract("html", html, max_chars=LIMIT, url="https://help.acme.example/shipping")
    text = "\n".join(s.text for s in result.sections)
    for junk in ("SCRIPT-TEXT", "MORE-SCRIPT", "NAV-TEXT", "FOOTER-TEXT", "NOSCRIPT-TEXT", "color:red"):
        assert junk not in text
    assert result.title == "Help - Acme"
    assert "We ship worldwide ." in text or "We ship worldwide." in text
    assert "EU: 3 days" in text and "Zone | Price" in text and "EU | 5" in text
    assert {s.heading for s in result.sections} == {"Shipping"}
    assert result.sections[0].anchor == "#ship"
    assert result.links == ["https://help.acme.example/returns"]


def test_pathological_html_is_bounded() -> None:
    deep = b"<div>" * 200_000 + b"deep text" + b"</div>" * 200_000
    started = time.monotonic()
    result = extract("html", deep, max_chars=LIMIT)
    assert "deep text" in result.sections[0].text
    unclosed = b"<p>" + b"<b><i><span>" * 100_000 + b"tail"
    extract("html", unclosed, max_chars=LIMIT)
    assert time.monotonic() - started < 20
    huge = b"<p>" + b"word " * 2_000_000
    assert sum(len(s.text) for s in extract("html", huge, max_chars=100_000).sections) <= 100_000


def test_markdown_headings_lists_tables_and_code() -> None:
    md = b"# Guide\n\nIntro [link](http://x).\n\n## Setup\n\n- step **one**\n- step two\n\n| A | B |\n|---|---|\n| 1 | 2 |\n\n```\ncode here\n```\n"
    result = extract("markdown", md, max_chars=LIMIT)
    assert [(s.heading, s.text) for s in result.sections] == [
        ("Guide", "Intro link."),
        ("Guide > Setup", "- step one\n- step two"),
        ("Guide > Setup", "A | B\n1 | 2"),
        ("Guide > Setup", "code here"),
    ]


def test_csv_faq_and_generic_tables() -> None:
    faq = extract("csv", b"question,answer\nDo you ship?,Yes worldwide.\nRefunds?,Within 30 days.\n", max_chars=LIMIT)
    assert [s.text for s in faq.sections] == ["Q: Do you ship?\nA: Yes worldwide.", "Q: Refunds?\nA: Within 30 days."]
    assert all(s.keep_whole for s in faq.sections)
    table = extract("csv", b"plan;price\nPro;20\nTeam;50\n", max_chars=LIMIT)
    assert [s.text for s in table.sections] == ["plan: Pro; price: 20", "plan: Team; price: 50"]


def test_text_encodings_and_empty_files() -> None:
    assert extract("text", "Caf\u00e9 ouvert".encode("latin-1"), max_chars=LIMIT).sections[0].text == "Caf\u00e9 ouvert"
    assert extract("text", "\ufeffBOM text".encode(), max_chars=LIMIT).sections[0].text == "BOM text"
    with pytest.raises(ExtractionError, match="No readable text"):
        extract("text", b"   \n\n  ", max_chars=LIMIT)


@pytest.mark.parametrize(
    ("name", "content_type", "kind"),
    [
        ("a.PDF", "", "pdf"),
        ("b.docx", "", "docx"),
        ("c.htm", "", "html"),
        ("d.md", "", "markdown"),
        ("e.txt", "", "text"),
        ("f.csv", "", "csv"),
        ("noext", "text/html; charset=utf-8", "html"),
        ("evil.exe", "application/octet-stream", None),
        ("x.pdf.exe", "", None),
    ],
)
def test_kind_detection(name: str, content_type: str, kind: str | None) -> None:
    assert kind_for(name, content_type) == kind


def test_chunks_are_token_bounded_overlapping_and_faq_pairs_stay_whole() -> None:
    from apps.knowledge.embeddings import count_tokens
    from apps.knowledge.extractors import Section

    long = " ".join(f"Sentence number {i} talks about refunds and returns." for i in range(200))
    sections = [
        Section(text=long, heading="Returns"),
        Section(text="Q: Gift cards?\nA: " + "Yes. " * 300, heading="Gift cards?", keep_whole=True),
    ]
    chunks = chunk_sections(sections, max_tokens=120, overlap=30)
    body = [c for c in chunks if c.heading == "Returns"]
    assert len(body) > 5
    assert all(count_tokens(c.text) <= 130 for c in body)
    assert all(c.text.startswith("Returns\n") for c in body)
    # consecutive pieces share their boundary sentence(s)
    first_tail = body[0].text.split(". ")[-1]
    assert first_tail.rstrip(".") in body[1].text
    faq = [c for c in chunks if c.heading == "Gift cards?"]
    assert len(faq) == 1 and faq[0].text.startswith("Q: Gift cards?")
