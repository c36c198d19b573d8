"""Markdown: ATX/setext headings set the heading path; lists, tables and code stay blocks."""

from __future__ import annotations

import re
from typing import Any

from . import Extracted, Section, clean, decode_text

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPH = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def _inline(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _EMPH.sub(r"\2", text)
    return re.sub(r"<[^>]{0,200}>", "", text)  # inline HTML tags


def extract(data: bytes, *, max_chars: int, **_: Any) -> Extracted:
    lines = decode_text(data)[:max_chars].replace("\r\n", "\n").split("\n")
    sections: list[Section] = []
    path: list[str] = []
    block: list[str] = []
    title = ""
    in_code = False

    def flush() -> None:
        text = clean("\n".join(block))
        if text:
            sections.append(Section(text=text, heading=" > ".join(path)))
        block.clear()

    previous = ""
    for raw in lines:
        line = raw.rstrip()
        if line.strip().startswith("```"):
            in_code = not in_code
            if not in_code:
                flush()
            continue
        if in_code:
            block.append(line)
            continue
        match = _HEADING.match(line)
        setext = re.fullmatch(r"(=+|-+)", line.strip()) and previous.strip() and block
        if match or setext:
            if setext:
                heading_text, level = block.pop(), 1 if line.strip()[0] == "=" else 2
            else:
                heading_text, level = match.group(2), len(match.group(1))  # type: ignore[union-attr]
            flush()
            heading_text = _inline(heading_text).strip()
            path[:] = [*path[: level - 1], heading_text]
            title = title or heading_text
        elif not line.strip():
            flush()
        elif re.fullmatch(r"\|?\s*:?-{3,}.*", line.strip()):
            continue  # table separator row
        else:
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
            block.append(" | ".join(_inline(c) for c in cells) if cells else _inline(line))
        previous = line
    flush()
    return Extracted(sections=sections, title=title)
