"""Address lists from header values: lower-cased bare addresses, never an exception.

`email.utils.getaddresses` does the RFC 5322 work; when it gives up on a broken list,
anything shaped like `local@domain` is still worth keeping (a bounce with a mangled To:
must still name its sender).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses

_ADDR_LIKE = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_ANGLE = re.compile(r"<\s*([^<>\s]*)\s*>")


def bare_address(value: str) -> str:
    """``Ann <Ann@Example.COM>`` -> ``ann@example.com``; also strips a ``<>`` wrapper."""
    pairs = address_list([value])
    return pairs[0][1] if pairs else ""


def address_list(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name as written, lower-cased address) for every address in the values.

    Names are left encoded: the caller decodes RFC 2047 after splitting, so that a
    decoded comma in a name cannot split one address into two.
    """
    result: list[tuple[str, str]] = []
    for value in values:
        if not value or not value.strip():
            continue
        try:
            pairs = getaddresses([value])
        except (ValueError, IndexError, TypeError, RecursionError):
            pairs = []  # e.g. thousands of nested "(" comments exhaust the stdlib parser
        good = [(name, addr.strip().lower()) for name, addr in pairs if _usable(addr)]
        if not good:
            good = [("", m.lower()) for m in _ADDR_LIKE.findall(value)]
            if not good:
                # a bare token such as "MAILER-DAEMON" or "<postmaster>" still says who sent it
                inner = _ANGLE.search(value)
                token = (inner.group(1) if inner else value).strip().lower()
                if token and not any(c.isspace() for c in token):
                    good = [("", token)]
        result.extend(good)
    return result


def _usable(addr: str) -> bool:
    addr = addr.strip()
    return bool(addr) and not any(c.isspace() for c in addr)
