"""Text that every later step can encode: lone surrogates become U+FFFD.

JSON (`"\\ud800"`) and `surrogateescape` decoding can hand us a str that is not valid
Unicode; the first `.encode()` of it (a hash, the store, SMTP) would raise on every cycle.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def plain_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (linear, no copy when clean)."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
