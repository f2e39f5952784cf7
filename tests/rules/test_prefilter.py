"""The literal prefilter may only say "cannot match" when the regex really cannot match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.prefilter import literals, prefilter
from bot.rules.schema import Condition
from tests.rules.helpers import REPO


def shipped_patterns() -> list[str]:
    found: list[str] = []

    def walk(c: Condition | None) -> None:
        if c is None:
            return
        for test in (c.subject, c.body, c.text):
            if test is not None and test.matches:
                found.extend(test.matches)
        for child in [*(c.all_ or []), *(c.any_ or []), *([c.not_] if c.not_ else [])]:
            walk(child)

    import yaml

    from bot.rules.schema import RulesFile

    parsed = RulesFile.model_validate(yaml.safe_load((REPO / "rules.yaml").read_text()))
    for rule in parsed.rules:
        walk(rule.when)
    return found


PATTERNS = shipped_patterns()
TEXTS = [
    "my emails aren't sending", "550 5.7.1 rejected", "none of the 240 contacts received it",
    "status still says 'sending'", "stuck in the outbox", "smtp error", "spamhaus listed us",
    "email signature", "the reset link expired", "forgot my password", "error 500 on save",
    "it would be great to have dark mode", "please add zapier", "nothing here at all",
]


def test_the_shipped_patterns_mostly_get_a_prefilter() -> None:
    with_filter = [p for p in PATTERNS if literals(p, lowered_text=True) is not None]
    assert len(with_filter) >= len(PATTERNS) - 2


@pytest.mark.parametrize("pattern", PATTERNS)
def test_prefilter_never_hides_a_match_in_the_shipped_rules(pattern: str) -> None:
    check = prefilter(pattern, lowered_text=True)
    compiled = re.compile(pattern)
    for text in TEXTS:
        if compiled.search(text):
            assert check is None or check(text), (pattern, text)


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"\bsmtp\b", {"smtp"}),
    (r"\b(e-?mails?|mails?)\b", {"mail"}),                # 'emails' is implied by 'mail'
    (r"\bbounc(e|ed)\b|\bundeliverable", {"bounce", "undeliverable"}),
    (r"(?:spf|dkim) record", {"spf record", "dkim record"}),
    (r"\w+ing", {"ing"}),
    (r"\w+in", None),                                      # too short to filter anything
    (r"[a-z]+", None),                                     # nothing literal at all
    (r"(?!not )sending", {"sending"}),                     # negative lookahead is not required
    (r"(?i:SPF)x", None),                                  # local flags: no guess
])
def test_literals(pattern: str, expected: set[str] | None) -> None:
    got = literals(pattern, lowered_text=True)
    assert (set(got) if got is not None else None) == expected


def test_case_sensitive_and_inline_ignorecase() -> None:
    assert literals("SPF", lowered_text=True) == {"spf"}
    assert literals("SPF", lowered_text=False) == {"SPF"}
    assert literals("(?i)SPF", lowered_text=False) is None


ATOMS = st.sampled_from(["a", "b", "ab", "ba", "abc", r"\b", r"\w", ".", "[ab]", "[^a]", " ",
                         r"\d", "x", "cab"])


def regexes() -> st.SearchStrategy[str]:
    return st.recursive(
        ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}|{t[1]})"),
            inner.map(lambda s: f"(?:{s})?"),
            inner.map(lambda s: f"(?:{s}){{1,2}}"),
            inner.map(lambda s: f"(?:{s})*"),
            inner.map(lambda s: f"(?:{s})+"),
            inner.map(lambda s: f"(?!{s})"),
            inner.map(lambda s: f"(?={s})"),
        ),
        max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(pattern=regexes(), texts=st.lists(st.text(alphabet="abcx 1.", max_size=30), max_size=8))
def test_prefilter_is_sound(pattern: str, texts: list[str]) -> None:
    check = prefilter(pattern, lowered_text=False)
    compiled = re.compile(pattern)
    for text in texts:
        if compiled.search(text):
            assert check is None or check(text), (pattern, text)
