"""Recognising the bot's own threads in Help Scout, which has no idempotency keys.

Each thread the bot writes carries an invisible fingerprint of its outbox key: a fixed
run of zero-width characters followed by a 48-bit hash of the key, spelled in four
zero-width characters (2 bits each), appended as plain text at the end of the body.

Why this carrier: HTML sanitisers drop comments, `display:none` styles and data
attributes (leaving visible garbage or nothing), but they keep text; zero-width
characters are text that no mail client shows. The fingerprint lets the client ask
"is this exact reply already there?" before repeating a write whose outcome is unknown,
and lets the source classify threads as the bot's own. Customer threads are never
classified by it: a customer quoting our reply quotes the fingerprint too.
"""

from __future__ import annotations

import hashlib
import html
import re

_SYMBOLS = ("\u200b", "\u200c", "\u200d", "\u2060")  # ZWSP, ZWNJ, ZWJ, WORD JOINER
_MAGIC = "\u2060\u200d\u2060\u200b\u2060"
_HASH_BYTES = 6
_FINGERPRINT = re.compile(_MAGIC + "[" + "".join(_SYMBOLS) + f"]{{{_HASH_BYTES * 4}}}")


def fingerprint(key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=_HASH_BYTES).digest()
    symbols = []
    for byte in digest:
        for shift in (6, 4, 2, 0):
            symbols.append(_SYMBOLS[(byte >> shift) & 3])
    return _MAGIC + "".join(symbols)


def embed(body: str, key: str) -> str:
    """The body with the key's fingerprint appended (once)."""
    mark = fingerprint(key)
    return body if mark in body else body + mark


def has_marker(body: str | None, key: str) -> bool:
    """True when ``body`` carries this key's fingerprint (entities decoded first)."""
    return bool(body) and fingerprint(key) in html.unescape(body or "")


def is_ours(body: str | None) -> bool:
    """True when ``body`` carries any supportbot fingerprint."""
    return bool(body) and _FINGERPRINT.search(html.unescape(body or "")) is not None


def strip(text: str) -> str:
    """Text without fingerprints, for the rules and the activity log."""
    return _FINGERPRINT.sub("", text)
