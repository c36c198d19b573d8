"""Plain text: paragraphs separated by blank lines."""

from __future__ import annotations

from typing import Any

from . import Extracted, Section, clean, decode_text


def extract(data: bytes, *, max_chars: int, **_: Any) -> Extracted:
    body = clean(decode_text(data)[:max_chars])
    sections = [Section(text=p.strip()) for p in body.split("\n\n") if p.strip()]
    first = sections[0].text.splitlines()[0][:120] if sections else ""
    return Extracted(sections=sections, title=first)
