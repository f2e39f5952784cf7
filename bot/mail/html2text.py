"""HTML mail bodies reduced to readable text, so rules can match HTML-only tickets.

Only the stdlib parser: no rendering, no CSS. Scripts and styles vanish, block elements
become line breaks (paragraphs a blank line), entities are unescaped. Never raises on
broken markup, and stays linear on hostile markup.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

# Elements whose content is never shown to a reader.
_HIDDEN = frozenset({"script", "style", "head", "title", "template"})
# Elements a browser lays out as their own paragraph (blank line around) or line.
_PARAGRAPH = frozenset({
    "blockquote", "dl", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p", "pre",
    "table", "ul",
})
_LINE = frozenset({
    "address", "article", "aside", "center", "dd", "div", "dt", "fieldset", "figcaption",
    "footer", "form", "header", "li", "main", "nav", "section", "tbody", "tfoot", "thead",
    "tr",
})
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_RUNS = re.compile(r" {2,}")
_TAG = re.compile(r"<[^>]*>")
# A "<" that reaches another "<" (or the end) before any ">" cannot open a tag, and
# html.parser rescans the rest of the document for each such "<" (quadratic: 30 kB of
# "<a " took 12 s). Escaping them first keeps parsing linear.
_UNCLOSED = re.compile(r"<(?![^<>]*>)")
_HIDDEN_OPEN = re.compile(r"<(script|style|head|title|template)\b")
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:br|" + "|".join(sorted(_PARAGRAPH | _LINE)) + r")\b[^>]*>", re.IGNORECASE)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.breaks = 0  # line breaks owed before the next visible text

    def _block(self, breaks: int) -> None:
        if self.chunks:
            self.breaks = max(self.breaks, breaks)

    def _emit(self, text: str) -> None:
        if self.breaks:
            self.chunks.append("\n" * self.breaks)
            self.breaks = 0
        self.chunks.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _PARAGRAPH or tag in _LINE:
            self._block(2 if tag in _PARAGRAPH else 1)
            if tag == "li":
                self._emit("- ")
            elif tag == "pre":
                self.pre += 1
        elif tag in ("td", "th"):
            self.chunks.append(" ")
        elif tag == "img" and not self.hidden:
            alt = dict(attrs).get("alt")
            if alt:
                self._emit(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPH or tag in _LINE:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._block(2 if tag in _PARAGRAPH else 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and <img/> carry no end tag; hidden elements are never self-closed in practice
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self._emit(data)  # pre keeps its own line breaks
        elif data.strip():
            self._emit(_SPACES.sub(" ", data))
        elif data and not self.breaks:
            self.chunks.append(" ")


def html_to_text(html: str) -> str:
    """Readable text of an HTML document: one line per block, a blank line per paragraph."""
    collector = _TextCollector()
    try:
        collector.feed(_UNCLOSED.sub("&lt;", html))
        collector.close()
        text = "".join(collector.chunks)
    except AssertionError:
        # html.parser still asserts on some malformed declarations (`<![bogus ...`)
        text = _regex_text(html)
    lines = (_RUNS.sub(" ", line).strip() for line in text.replace("\xa0", " ").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _regex_text(html: str) -> str:
    """The crude fallback: hidden elements dropped, block tags as line breaks, tags removed."""
    html = _BLOCK_TAG.sub("\n", _drop_hidden(html))
    lines = (_SPACES.sub(" ", unescape(_TAG.sub(" ", line))) for line in html.split("\n"))
    return "\n".join(lines)


def _drop_hidden(html: str) -> str:
    """Cut script/style/head elements with plain searches: linear even on hostile input."""
    lower = html.lower()
    kept: list[str] = []
    pos = 0
    while (match := _HIDDEN_OPEN.search(lower, pos)) is not None:
        kept.append(html[pos:match.start()])
        end = lower.find("</" + match.group(1), match.end())
        close = lower.find(">", end) if end >= 0 else -1
        pos = close + 1 if close >= 0 else len(html)
    kept.append(html[pos:])
    return " ".join(kept)
