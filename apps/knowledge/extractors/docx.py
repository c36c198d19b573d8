"""DOCX: paragraphs with Heading styles build the heading path; tables become row blocks.

A DOCX is a zip: member sizes and compression ratios are checked before anything is
inflated, and inflation itself is capped, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any
from xml.etree import ElementTree

from . import Extracted, ExtractionError, Section, clean

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MAX_XML_BYTES = 50 * 1024 * 1024
MAX_RATIO = 100


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > MAX_XML_BYTES or (info.compress_size and info.file_size / info.compress_size > MAX_RATIO):
        raise ExtractionError("This DOCX expands to an unreasonable size and was not opened.")
    with archive.open(info) as member:
        data = member.read(MAX_XML_BYTES + 1)
    if len(data) > MAX_XML_BYTES:
        raise ExtractionError("This DOCX expands to an unreasonable size and was not opened.")
    return data


def _text(element: ElementTree.Element) -> str:
    parts = []
    for node in element.iter():
        if node.tag == f"{W}t" and node.text:
            parts.append(node.text)
        elif node.tag in (f"{W}tab",):
            parts.append(" ")
        elif node.tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
    return "".join(parts)


def extract(data: bytes, *, max_chars: int, **_: Any) -> Extracted:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        xml = _read_member(archive, "word/document.xml")
        root = ElementTree.fromstring(xml)  # noqa: S314 (expat refuses entity amplification; size capped above)
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError, RuntimeError) as exc:
        raise ExtractionError("This DOCX is damaged or not a Word document, so its text cannot be read.") from exc
    body = root.find(f"{W}body")
    if body is None:
        return Extracted()
    sections: list[Section] = []
    path: list[str] = []
    title = ""
    used = 0
    for element in body:
        if used >= max_chars:
            break
        if element.tag == f"{W}p":
            style = element.find(f"{W}pPr/{W}pStyle")
            style_name = (style.get(f"{W}val") or "") if style is not None else ""
            text = clean(_text(element))
            if not text:
                continue
            if style_name.lower() == "title":
                title = text
                continue
            if style_name.lower().startswith("heading"):
                digits = "".join(ch for ch in style_name if ch.isdigit())
                level = int(digits) if digits else 1
                path[:] = [*path[: level - 1], text[:200]]
                title = title or text
                continue
            used += len(text)
            sections.append(Section(text=text, heading=" > ".join(path)))
        elif element.tag == f"{W}tbl":
            for row in element.iter(f"{W}tr"):
                cells = [clean(_text(cell)) for cell in row.iter(f"{W}tc")]
                text = " | ".join(c for c in cells if c)
                if text:
                    used += len(text)
                    sections.append(Section(text=text, heading=" > ".join(path)))
    return Extracted(sections=sections, title=title[:300])
