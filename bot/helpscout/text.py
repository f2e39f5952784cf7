"""Thread bodies: Help Scout stores HTML; the rules read text; the bot writes both."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

__all__ = ["html_to_text", "text_to_html"]

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
          "pre", "table", "ul", "ol", "hr"}
_SKIP = {"script", "style", "head", "title"}


class _Reducer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _minimal_html_to_text(markup: str) -> str:
    """Block tags become line breaks, everything else its text; blank runs collapsed."""
    reducer = _Reducer()
    reducer.feed(markup)
    reducer.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip()
             for line in "".join(reducer.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


try:  # the mail package's reducer (issue 3) when present, so both sources read alike
    from bot.mail import html2text as _mail

    html_to_text: Callable[[str], str] = _mail.html_to_text
except ImportError:
    html_to_text = _minimal_html_to_text


def text_to_html(text: str) -> str:
    """Plain text as Help Scout HTML: paragraphs on blank lines, <br> inside them."""
    paragraphs = re.split(r"\n\s*\n", text.strip().replace("\r\n", "\n"))
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>"
                   for p in paragraphs if p.strip())
