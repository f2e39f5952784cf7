"""Rule patterns that cannot freeze the worker: refused at `check`, bounded at run time.

Two layers, because no static check catches every exponential pattern and no timeout is
free. `check` refuses a quantifier over something that is itself repeated without bound
(``(a+)+``, ``(\\w+\\s?)*``, ``(a*){2,}``; possessive and atomic parts excepted): the
shape behind nearly every catastrophic backtrack, and never needed to match words in a
ticket. Patterns then run on the `regex` module (the syntax of `re`), whose searches take
a timeout: a pattern that still explodes on one message (``(a|aa)+$``) raises
`BudgetExceeded` for that message, which is quarantined with the reason, and the worker
moves on. (RE2 would be linear, but it has no lookarounds, which the default rules use.)
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import regex

from bot.errors import BudgetExceeded

if sys.version_info < (3, 11) or TYPE_CHECKING:  # pragma: no cover - the 3.11+ names below
    import sre_constants as C
    import sre_parse as _parser
else:
    from re import _constants as C
    from re import _parser

# One search of one pattern over one message's text (at most 100,000 characters): the
# default rules take well under a millisecond; a pattern past this is broken for this input.
MATCH_TIMEOUT = 0.25
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT}
_ATOMIC = {C.POSSESSIVE_REPEAT, C.ATOMIC_GROUP}


def _unbounded(hi: int) -> bool:
    return hi == C.MAXREPEAT


def _repeats_inside(items: Any, *, unbounded_only: bool) -> bool:
    """Whether the parsed elements contain a repeat of more than one (unbounded only if
    asked)."""
    for op, av in items:
        if op in _ATOMIC:
            continue  # gives back nothing once matched: cannot backtrack into itself
        if op in _REPEATS:
            _lo, hi, body = av
            if (hi > 1 and not unbounded_only) or _unbounded(hi):
                return True
            if _repeats_inside(body, unbounded_only=unbounded_only):
                return True
        elif op == C.SUBPATTERN:
            if _repeats_inside(av[-1], unbounded_only=unbounded_only):
                return True
        elif op == C.BRANCH:
            if any(_repeats_inside(b, unbounded_only=unbounded_only) for b in av[1]):
                return True
        elif op in (C.ASSERT, C.ASSERT_NOT) and _repeats_inside(
                av[1], unbounded_only=unbounded_only):
            return True
    return False


def _nested(items: Any) -> bool:
    for op, av in items:
        if op in _REPEATS:
            _lo, hi, body = av
            if hi > 1 and _repeats_inside(body, unbounded_only=not _unbounded(hi)):
                return True
            if _nested(body):
                return True
        elif op == C.SUBPATTERN:
            if _nested(av[-1]):
                return True
        elif op == C.BRANCH:
            if any(_nested(b) for b in av[1]):
                return True
        elif op in (C.ASSERT, C.ASSERT_NOT) and _nested(av[1]):
            return True
    return False


def backtracking_risk(pattern: str) -> str | None:
    """Why ``pattern`` may backtrack catastrophically, or None when its shape is safe."""
    try:
        parsed = _parser.parse(pattern, 0)
        nested = _nested(parsed.data)
    except (re.error, RecursionError, TypeError, ValueError, IndexError):
        return None  # the syntax check reports what is wrong with it
    if nested:
        return ("a repeated group that itself repeats without bound (like '(a+)+') can take "
                "forever on some text; repeat the inner part once ('(ab)+'), or make it "
                "possessive ('(a++b)+') or atomic ('(?>a+b)+')")
    return None


class SafePattern:
    """A compiled rule pattern whose `search` is bounded by `MATCH_TIMEOUT`."""

    def __init__(self, pattern: str, flags: int = 0, *, timeout: float = MATCH_TIMEOUT) -> None:
        self.pattern = pattern
        self.timeout = timeout
        self._compiled = regex.compile(pattern, regex.IGNORECASE if flags & re.IGNORECASE
                                       else 0)

    def search(self, text: str) -> regex.Match[str] | None:
        try:
            found: regex.Match[str] | None = self._compiled.search(text, timeout=self.timeout)
        except TimeoutError:
            raise BudgetExceeded(
                f"rule pattern {self.pattern[:60]!r} took more than {self.timeout:g} s on "
                "this message") from None
        return found
