"""Literal prefilters for regexes: a cheap "can this pattern possibly match?" check.

Python's `re` scans fast only when a pattern starts with a literal or a character set; a
leading ``\\b`` (how nearly every rules.yaml pattern starts) makes it try every position,
which costs ~6 us per pattern per ticket. From the parsed pattern we derive a small set of
literal strings of which every match must contain one (as RE2 and Hyperscan do); when
none is in the text, the pattern is skipped without running it. Exact, never a guess: any
construct the analysis does not understand yields no prefilter and the regex just runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # typeshed describes the stdlib's own regex parser (stable since 3.11) only under its
    # old names, which at run time are the same modules but warn when imported.
    import sre_constants as C
    import sre_parse as _parser
    from sre_constants import _NamedIntConstant as Op
else:
    from re import _constants as C
    from re import _parser

# An element of a parsed pattern: an opcode and its operand, whose shape depends on the
# opcode (a code point, a list of elements, a (group, flags, flags, body) tuple...), so
# typeshed's union for it cannot be narrowed by testing the opcode: it stays Any here.
Element = tuple["Op", Any]

MAX_SET = 64  # literal alternatives kept per set before the analysis gives up on it
MIN_LENGTH = 3  # shorter literals are in nearly every text: no use as a filter
_ZERO_WIDTH = {C.AT, C.ASSERT, C.ASSERT_NOT}
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT}

Strings = frozenset[str]


def _product(left: Strings, right: Strings) -> Strings | None:
    if len(left) * len(right) > MAX_SET:
        return None
    return frozenset(a + b for a in left for b in right)


def _minimal(strings: Strings) -> Strings:
    """Drop strings that contain another member: 'emails' is implied by 'mail'."""
    return frozenset(s for s in strings
                     if not any(o != s and o in s for o in strings))


def _exact(op: Op, av: Any) -> Strings | None:
    """All strings one element can match, when that is a small finite set."""
    if op is C.LITERAL:
        return frozenset({chr(av)})
    if op in _ZERO_WIDTH:
        return frozenset({""})
    if op is C.IN:
        chars = set()
        for kind, value in av:
            if kind is C.LITERAL:
                chars.add(chr(value))
            elif kind is C.RANGE and value[1] - value[0] < 10:
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            else:
                return None
        return frozenset(chars) if len(chars) <= 10 else None
    if op is C.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        return None if add_flags or del_flags else _exact_seq(body)
    if op is C.BRANCH:
        out: set[str] = set()
        for branch in av[1]:
            strings = _exact_seq(branch)
            if strings is None:
                return None
            out |= strings
        return frozenset(out) if len(out) <= MAX_SET else None
    if op in _REPEATS:
        low, high, body = av
        strings = _exact_seq(body)
        if strings is None or high is C.MAXREPEAT or high > 3:
            return None
        options: set[str] = set()
        power: Strings | None = frozenset({""})
        for count in range(high + 1):
            if power is None:
                return None
            if count >= low:
                options |= power
            power = _product(power, strings)
        return frozenset(options) if len(options) <= MAX_SET else None
    return None


def _exact_seq(seq: Iterable[Element]) -> Strings | None:
    out: Strings = frozenset({""})
    for op, av in seq:
        strings = _exact(op, av)
        if strings is None:
            return None
        joined = _product(out, strings)
        if joined is None:
            return None
        out = joined
    return out


def _score(strings: Strings | None) -> int:
    return min((len(s) for s in strings), default=0) if strings else 0


def _necessary(seq: Iterable[Element]) -> Strings | None:
    """A set of literals one of which every match of ``seq`` contains, the most selective
    found: runs of exact elements, or what a group that must match requires."""
    best: Strings | None = None
    run: Strings = frozenset({""})

    def consider(candidate: Strings | None) -> None:
        nonlocal best
        if candidate is not None and _score(candidate) > _score(best):
            best = _minimal(candidate)

    for op, av in seq:
        strings = _exact(op, av)
        if strings is not None:
            joined = _product(run, strings)
            if joined is not None:
                run = joined
                continue
            consider(run)
            run = strings
            continue
        consider(run)
        run = frozenset({""})
        consider(_necessary_element(op, av))
    consider(run)
    return best


def _necessary_element(op: Op, av: Any) -> Strings | None:
    if op is C.SUBPATTERN and not av[1] and not av[2]:
        return _necessary(av[3])
    if op is C.BRANCH:
        out: set[str] = set()
        for branch in av[1]:
            strings = _necessary(branch)
            if strings is None:
                return None
            out |= strings
        return frozenset(out)
    if op in _REPEATS and av[0] >= 1:
        return _necessary(av[2])
    return None


def literals(pattern: str, flags: int = 0, *, lowered_text: bool) -> Strings | None:
    """Literals one of which every match contains, or None when unknown. ``lowered_text``:
    the pattern runs on lower-cased text (case-insensitive conditions)."""
    try:
        parsed = _parser.parse(pattern, flags)
        strings = _necessary(parsed.data)
    except (re.error, RecursionError, TypeError, ValueError, IndexError):
        return None
    if strings is None or _score(strings) < MIN_LENGTH:
        return None
    if lowered_text:
        return frozenset(s.lower() for s in strings)
    if (flags | parsed.state.flags) & re.IGNORECASE:
        return None  # case-insensitive pattern on original-case text: literals do not apply
    return strings


def prefilter(pattern: str, flags: int = 0, *,
              lowered_text: bool) -> Callable[[str], bool] | None:
    """A fast test that is False only when ``pattern`` cannot match the text."""
    strings = literals(pattern, flags, lowered_text=lowered_text)
    if strings is None:
        return None
    if len(strings) <= 3:
        needles = tuple(strings)

        def contains_one(text: str) -> bool:
            # A plain loop: any() over a generator takes twice as long, on every ticket.
            for needle in needles:  # noqa: SIM110
                if needle in text:
                    return True
            return False

        return contains_one
    # A plain alternation of literals starts with a character set, which `re` scans fast.
    quick = re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))
    return lambda text: quick.search(text) is not None
