"""CSV: a question/answer table becomes whole FAQ pairs; any other table, one block per row
with its column names ("Plan: Pro; Price: 20 EUR")."""

from __future__ import annotations

import csv
import io
from typing import Any

from . import Extracted, ExtractionError, Section, clean, decode_text

QUESTION_COLUMNS = {"question", "q", "frage", "pregunta"}
ANSWER_COLUMNS = {"answer", "a", "antwort", "respuesta"}
MAX_ROWS = 100_000


def faq_pairs(data: bytes, *, max_chars: int) -> list[tuple[str, str]]:
    """(question, answer) rows of a CSV with question/answer columns; raises if it has none."""
    rows = _rows(data, max_chars)
    header = [h.strip().lower() for h in rows[0]] if rows else []
    q = next((i for i, h in enumerate(header) if h in QUESTION_COLUMNS), None)
    a = next((i for i, h in enumerate(header) if h in ANSWER_COLUMNS), None)
    if q is None or a is None:
        raise ExtractionError("The CSV needs a header row with 'question' and 'answer' columns.")
    pairs = []
    for row in rows[1:]:
        if len(row) > max(q, a) and row[q].strip() and row[a].strip():
            pairs.append((clean(row[q])[:1000], clean(row[a])[:20000]))
    return pairs


def _rows(data: bytes, max_chars: int) -> list[list[str]]:
    text = decode_text(data)[:max_chars]
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    csv.field_size_limit(1_000_000)
    try:
        rows = [row for _, row in zip(range(MAX_ROWS), csv.reader(io.StringIO(text), dialect), strict=False)]
    except csv.Error as exc:
        raise ExtractionError(f"The CSV could not be parsed: {exc}.") from exc
    return [r for r in rows if any(cell.strip() for cell in r)]


def extract(data: bytes, *, max_chars: int, **_: Any) -> Extracted:
    try:
        pairs = faq_pairs(data, max_chars=max_chars)
    except ExtractionError:
        pairs = []
    if pairs:
        return Extracted(sections=[Section(text=f"Q: {q}\nA: {a}", heading=q, keep_whole=True) for q, a in pairs])
    rows = _rows(data, max_chars)
    if not rows:
        return Extracted()
    header = [h.strip() for h in rows[0]]
    sections = []
    for number, row in enumerate(rows[1:], start=2):
        parts = [
            f"{header[i] if i < len(header) and header[i] else f'Column {i + 1}'}: {cell.strip()}"
            for i, cell in enumerate(row)
            if cell.strip()
        ]
        if parts:
            sections.append(Section(text=clean("; ".join(parts)), anchor=f"row={number}"))
    return Extracted(sections=sections)
