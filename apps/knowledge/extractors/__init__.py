"""Text extraction with structure: every extractor turns bytes into `Section`s.

A section is one block (paragraph, list, table, FAQ pair) with the heading path above it,
and where known the page and an anchor. Scripts, styles and markup never reach a section.
Each extractor bounds its own work; failures raise `ExtractionError` with a reason a person
can read. See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class ExtractionError(Exception):
    """The file cannot be read; the message is shown to the admin as the failure reason."""


@dataclass
class Section:
    text: str
    heading: str = ""
    page: int | None = None
    anchor: str = ""
    keep_whole: bool = False  # FAQ pairs: never split


@dataclass
class Extracted:
    sections: list[Section] = field(default_factory=list)
    title: str = ""
    links: list[str] = field(default_factory=list)  # for crawling HTML


Progress = Callable[[float], None]

# file extension -> (kind, mime types that may announce it)
FILE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    ".pdf": ("pdf", ("application/pdf",)),
    ".docx": ("docx", ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)),
    ".html": ("html", ("text/html",)),
    ".htm": ("html", ("text/html",)),
    ".md": ("markdown", ("text/markdown", "text/x-markdown")),
    ".markdown": ("markdown", ("text/markdown",)),
    ".txt": ("text", ("text/plain",)),
    ".csv": ("csv", ("text/csv", "application/csv")),
}
ACCEPTED_EXTENSIONS = sorted(FILE_TYPES)


def kind_for(filename: str, content_type: str = "") -> str | None:
    """The extractor kind for an upload, from its extension (content type as a fallback)."""
    lower = filename.lower().rsplit("/", 1)[-1]
    for ext, (kind, _mimes) in FILE_TYPES.items():
        if lower.endswith(ext):
            return kind
    if "." in lower:
        return None  # an extension we do not read, whatever the client claims it is
    base = content_type.split(";")[0].strip().lower()
    for kind, mimes in FILE_TYPES.values():
        if base in mimes:
            return kind
    return None


def extract(kind: str, data: bytes, *, max_chars: int, progress: Progress | None = None, url: str = "") -> Extracted:
    from . import csvfile, docx, html, markdown, pdf, text

    extractors: dict[str, Callable[..., Extracted]] = {
        "pdf": pdf.extract,
        "docx": docx.extract,
        "html": html.extract,
        "markdown": markdown.extract,
        "text": text.extract,
        "csv": csvfile.extract,
    }
    if kind not in extractors:
        raise ExtractionError(f"Unsupported file type ({kind}).")
    result = extractors[kind](data, max_chars=max_chars, progress=progress, url=url)
    if not any(section.text.strip() for section in result.sections):
        raise ExtractionError("No readable text was found in this file.")
    return result


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM), else Latin-1 so nothing is lost."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def clean(text: str) -> str:
    """Collapse whitespace runs, drop control characters, keep paragraph-level newlines."""
    import re

    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
