"""Mail content printed to an operator's terminal, made harmless.

Subjects, names, ids and raw mail come from strangers; an ESC in them is a terminal
command (retitle the window, rewrite the screen, on some terminals worse). Every command
that prints mail content passes it through `safe()`: control characters other than line
breaks and tabs are shown as ``\\x1b``-style escapes.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``str(text)`` with every control character (but newline and tab) escaped."""
    value = str(text)
    return _CONTROL.sub(_escape, value) if _CONTROL.search(value) else value


def safe_bytes(raw: bytes) -> bytes:
    """Raw mail for a terminal: control bytes (but CR, LF, tab) escaped, the rest as is."""
    return _CONTROL_BYTES.sub(lambda m: b"\\x%02x" % m.group(0)[0], raw)
