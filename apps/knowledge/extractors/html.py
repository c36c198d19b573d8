"""HTML: headings build the heading path; paragraphs, list items, table rows and preformatted
text become blocks. Script, style, template, SVG, navigation and similar never reach text.

Uses the standard library's streaming parser, so nesting depth costs nothing and hostile
markup is bounded by the character cap alone.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin

from . import Extracted, Section, clean, decode_text

SKIP = {
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "math",
    "head",
    "nav",
    "footer",
    "aside",
    "form",
    "iframe",
    "object",
    "button",
    "select",
    "canvas",
}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {
    "p",
    "li",
    "tr",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "div",
    "section",
    "article",
    "main",
    "table",
    "ul",
    "ol",
    "dl",
    "figcaption",
    "caption",
    "br",
    "hr",
    "body",
}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
MAX_LINKS = 5000


class _Parser(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.sections: list[Section] = []
        self.path: list[str] = []
        self.anchor = ""
        self.buffer: list[str] = []
        self.skip_depth = 0
        self.skip_tag: list[str] = []
        self.heading_level = 0
        self.heading_text: list[str] = []
        self.in_title = False
        self.title = ""
        self.links: list[str] = []
        self.cell_sep = False

    def flush(self) -> None:
        text = clean(" ".join(self.buffer))
        if text:
            self.sections.append(Section(text=text, heading=" > ".join(self.path), anchor=self.anchor))
        self.buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_depth:
            if tag == self.skip_tag[-1] and tag not in VOID:
                self.skip_depth += 1
            return
        if tag in SKIP:
            if tag == "head":
                # keep <title>, skip the rest of head by handling title explicitly
                return
            self.skip_depth, self.skip_tag = 1, [tag]
            return
        attr = dict(attrs)
        if tag == "title":
            self.in_title = True
        elif tag in HEADINGS:
            self.flush()
            self.heading_level = HEADINGS[tag]
            self.heading_text = []
            if attr.get("id"):
                self.anchor = f"#{attr['id']}"
        elif tag == "a" and attr.get("href") and len(self.links) < MAX_LINKS:
            href = urldefrag(urljoin(self.base_url, attr["href"] or ""))[0]
            if href.startswith(("http://", "https://")):
                self.links.append(href)
        elif tag in ("td", "th"):
            if self.cell_sep:
                self.buffer.append(" | ")
            self.cell_sep = True
        elif tag in BLOCKS:
            if tag == "tr":
                self.cell_sep = False
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if self.skip_depth:
            if tag == self.skip_tag[-1]:
                self.skip_depth -= 1
            return
        if tag == "title":
            self.in_title = False
        elif tag in HEADINGS and self.heading_level:
            text = clean(" ".join(self.heading_text))
            level = self.heading_level
            self.heading_level = 0
            if text:
                self.path[:] = [*self.path[: level - 1], text[:200]]
        elif tag in BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_title:
            self.title += data
        elif self.heading_level:
            self.heading_text.append(data)
        else:
            self.buffer.append(data)


def extract(data: bytes, *, max_chars: int, url: str = "", **_: Any) -> Extracted:
    markup = decode_text(data)[:max_chars]
    markup = re.sub(r"<!--.*?-->", " ", markup, flags=re.DOTALL)
    parser = _Parser(url)
    parser.feed(markup)
    parser.close()
    parser.flush()
    title = clean(parser.title) or (parser.path[0] if parser.path else "")
    return Extracted(sections=parser.sections, title=title[:300], links=parser.links)
