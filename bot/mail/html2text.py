"""HTML mail bodies reduced to readable text, so rules can match HTML-only tickets.

A tokenizer of our own, linear by construction: every search moves forward through the
document and a search that found nothing is remembered, so no markup (a megabyte of
unclosed ``<!--``, ``<a "``, ``<![CDATA[``) makes it read the same text twice. The stdlib
parser rescans the rest of the document in such cases (a 1 MB mail of unclosed comments
cost 165 s of CPU). No rendering, no CSS: scripts and styles vanish, block elements become
line breaks (paragraphs a blank line), entities are unescaped. Never raises.
"""

from __future__ import annotations

import re
from html import unescape

# Elements whose content is never shown to a reader.
_HIDDEN = frozenset({"script", "style", "head", "title", "template"})
# Elements whose content is not markup: it runs to their end tag, whatever it holds.
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp", "template"})
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
_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9:_-]{0,63})")
_ALT = re.compile(r"""(?:^|\s)alt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
# Numeric references with more digits than any code point: int() of 4,301 digits raises
# (CPython's conversion limit), and nothing that long is a character anyway.
_ENTITY = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{0,31};?)")
_MAX_REF_DIGITS = 8


class _Finder:
    """``text.find`` that remembers its last answer per needle, so asking again from a
    position before that answer costs nothing, and a miss is never searched for twice."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._memo: dict[str, tuple[int, int]] = {}

    def find(self, needle: str, start: int) -> int:
        memo = self._memo.get(needle)
        if memo is not None:
            since, found = memo
            if since <= start and (found == -1 or start <= found):
                return found
        found = self.text.find(needle, start)
        self._memo[needle] = (start, found)
        return found


class _TextCollector:
    def __init__(self) -> None:
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

    def start(self, tag: str, attrs: str) -> None:
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
            found = _ALT.search(attrs)
            alt = next((g for g in found.groups() if g), "") if found else ""
            if alt.strip():
                self._emit(f" {_unescape(alt)} ")

    def end(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPH or tag in _LINE:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._block(2 if tag in _PARAGRAPH else 1)

    def data(self, data: str) -> None:
        if self.hidden or not data:
            return
        data = _unescape(data)
        if self.pre:
            self._emit(data)  # pre keeps its own line breaks
        elif data.strip():
            self._emit(_SPACES.sub(" ", data))
        elif not self.breaks:
            self.chunks.append(" ")


def _reference(match: re.Match[str]) -> str:
    ref = match.group(0)
    if ref.startswith("&#"):
        digits = ref[2:].rstrip(";").lstrip("xX")
        if len(digits.lstrip("0")) > _MAX_REF_DIGITS:
            return "\ufffd"
    return unescape(ref)


def _unescape(text: str) -> str:
    return _ENTITY.sub(_reference, text) if "&" in text else text


def _tag_end(html: str, finder: _Finder, start: int) -> int:
    """Index of the ``>`` that closes a tag whose attributes start at ``start``, honouring
    quoted values; -1 if none. A quote that never closes counts as a character."""
    pos = start
    while True:
        gt = finder.find(">", pos)
        if gt < 0:
            return -1
        quotes = [q for q in (finder.find('"', pos), finder.find("'", pos)) if 0 <= q < gt]
        if not quotes:
            return gt
        quote = min(quotes)
        close = finder.find(html[quote], quote + 1)
        if close < 0:
            return finder.find(">", start)  # an unclosed quote: the first ">" ends the tag
        pos = close + 1


def _tokenize(html: str, out: _TextCollector) -> None:
    finder = _Finder(html)
    lower: _Finder | None = None  # a lower-cased copy, made the first time raw text needs it
    pos, n = 0, len(html)
    while pos < n:
        lt = finder.find("<", pos)
        if lt < 0:
            out.data(html[pos:])
            return
        if lt > pos:
            out.data(html[pos:lt])
        if html.startswith("<!--", lt):
            end = finder.find("-->", lt + 4)
            if end < 0:
                return  # an unclosed comment runs to the end of the document
            pos = end + 3
            continue
        if html.startswith(("<!", "<?"), lt):  # doctype, CDATA, processing instruction
            end = finder.find(">", lt + 2)
            if end < 0:
                return
            pos = end + 1
            continue
        name = _TAG_NAME.match(html, lt)
        if name is None:  # "<" that opens nothing is text
            out.data("<")
            pos = lt + 1
            continue
        end = _tag_end(html, finder, name.end())
        if end < 0:  # no ">" anywhere after: nothing later is a tag either
            out.data(html[lt:])
            return
        tag = name.group(1).lower()
        if html[lt + 1] == "/":
            out.end(tag)
            pos = end + 1
            continue
        out.start(tag, html[name.end():end])
        pos = end + 1
        if tag in _RAW_TEXT and not html[name.end():end].rstrip().endswith("/"):
            if lower is None:
                lower = _Finder(html.lower())
            close = lower.find("</" + tag, pos)
            if close < 0:
                close = n
            if tag not in _HIDDEN:
                out.data(html[pos:close])
            pos = close


def html_to_text(html: str) -> str:
    """Readable text of an HTML document: one line per block, a blank line per paragraph."""
    collector = _TextCollector()
    _tokenize(html, collector)
    text = "".join(collector.chunks)
    lines = (_RUNS.sub(" ", line).strip() for line in text.replace("\xa0", " ").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
