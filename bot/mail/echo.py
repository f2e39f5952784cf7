"""What of a stranger's words the bot repeats back: short, plain, and only if harmless.

Anyone can make the support address write to anyone (a forged From or Reply-To), so what
the bot echoes must carry no message of theirs: a subject is shortened to
`MAX_ECHOED_SUBJECT` characters with links removed, and the greeting uses the sender's
first name only when the display name looks like a person's name ("Hi Visit," from
"Visit cheap-pills.example now" is how spam rides on a help desk).
"""

from __future__ import annotations

import re

MAX_ECHOED_SUBJECT = 80
_LINK = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)\S*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
# Letters (any script), with inner apostrophes or hyphens: Ann, O'Brien, Jean-Luc, Zoë.
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*\.?")
MAX_NAME_WORDS = 4
MAX_FIRST_NAME = 24


def plain(text: str) -> str:
    """One line: control and invisible characters gone, whitespace collapsed."""
    return " ".join(_CONTROL.sub(" ", text).split())


def echo_subject(subject: str, limit: int = MAX_ECHOED_SUBJECT) -> str:
    """The subject as the bot may repeat it: plain, links removed, at most ``limit``."""
    text = plain(_LINK.sub("", plain(subject)))
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "\u2026"
    return text


def greeting_name(display_name: str) -> str | None:
    """The first name to greet, or None when the display name does not look like a name."""
    words = plain(display_name).strip("\"' ").split()
    if not words or len(words) > MAX_NAME_WORDS:
        return None
    if not all(_NAME_WORD.fullmatch(w) for w in words):
        return None
    first = words[0].rstrip(".")
    if len(first) > MAX_FIRST_NAME or len(first) < 2:
        return None
    return first
