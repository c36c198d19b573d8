"""PDF via pypdf: one section per page block, with the page number; encrypted or corrupt
files fail with a reason a person can act on."""

from __future__ import annotations

import io
from typing import Any

from . import Extracted, ExtractionError, Progress, Section, clean

MAX_PAGES = 2000


def extract(data: bytes, *, max_chars: int, progress: Progress | None = None, **_: Any) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                unlocked = bool(reader.decrypt(""))
            except Exception:  # unsupported encryption: same answer for the admin
                unlocked = False
            if not unlocked:
                raise ExtractionError("This PDF is password-protected. Upload a copy without a password.")
        pages = reader.pages
        total = min(len(pages), MAX_PAGES)
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError("This PDF is damaged or not a PDF, so its text cannot be read.") from exc
    sections: list[Section] = []
    used = 0
    title = ""
    try:
        meta_title = reader.metadata.title if reader.metadata else None
        title = str(meta_title or "")[:300]
    except Exception:  # broken metadata never fails a readable document
        title = ""
    for number in range(total):
        try:
            text = pages[number].extract_text() or ""
        except Exception as exc:  # a single broken page: say which
            raise ExtractionError(f"Page {number + 1} of this PDF is damaged and cannot be read.") from exc
        text = clean(text)[: max(0, max_chars - used)]
        used += len(text)
        for block in (b for b in text.split("\n\n") if b.strip()):
            sections.append(Section(text=block, page=number + 1, anchor=f"page={number + 1}"))
        if progress:
            progress((number + 1) / total)
        if used >= max_chars:
            break
    return Extracted(sections=sections, title=title)
