"""Conditions compiled once at load into small matcher objects that explain themselves.

Each matcher's ``test(facts)`` returns ``(matched, reason)``; the reason is what `explain`
prints ("subject contains 'bounce'"). Reasons for the common outcome (a miss) are built at
load time, so evaluating a rule costs string formatting only when something matches.
`Facts` lower-cases and normalises each field of the message once, on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property

from bot.mail.html2text import html_to_text
from bot.model import Attachment, Message
from bot.rules.ownwords import UUENCODED, OwnWords, read_own_words
from bot.rules.patterns import SafePattern
from bot.rules.prefilter import prefilter
from bot.rules.schema import AttachmentTest, Condition, CountTest, HeaderTest, Test

Result = tuple[bool, str]
ONLY_ASIDE = "only in text they did not write"  # how a miss says quotes or blobs matched
MAX_BODY = 100_000  # characters of body the conditions look at
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u00a0": " ", "\u200b": ""})
# Lines that say nothing about the problem: quoted mail, mobile signatures, reply headers.
_NOISE = re.compile(r"^\s*(>.*|sent from my \S.*|get outlook for \S.*|on .{4,120} wrote:\s*)$",
                    re.IGNORECASE)
_WORD = re.compile(r"\w")


def normalise(text: str) -> str:
    """Typographic quotes straightened so ``aren't`` matches what a phone typed."""
    return text.translate(_QUOTES)


def count_words(body: str) -> int:
    """Words someone actually wrote: quotes, 'Sent from my iPhone' and the signature dropped."""
    count = 0
    for line in body.splitlines():
        if line.rstrip() == "--":
            break
        if _NOISE.match(line):
            continue
        count += sum(1 for token in line.split() if _WORD.search(token))
    return count


class Facts:
    """One message as the conditions see it; each field computed at most once."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self._parts: dict[tuple[str, str, bool], str] = {}

    @cached_property
    def subject(self) -> str:
        return normalise(self.message.subject)

    @cached_property
    def subject_lc(self) -> str:
        return self.subject.lower()

    @cached_property
    def full_body(self) -> str:
        """The text part, or the HTML reduced to text; only the first MAX_BODY characters,
        so a hostile 50 MB mail costs what a long ticket costs."""
        text = self.message.text[:MAX_BODY]
        if not text.strip() and self.message.html:
            text = html_to_text(self.message.html[: MAX_BODY * 4])[:MAX_BODY]
        return normalise(text)

    @cached_property
    def reading(self) -> OwnWords:
        return read_own_words(self.full_body)

    @cached_property
    def body(self) -> str:
        """What body conditions read: the requester's own words and any bounce they pasted."""
        return self.reading.text

    def part(self, label: str, part: str, case_sensitive: bool) -> str:
        """``body`` or ``text`` limited to one part: "own" words alone, or the "aside" text."""
        key = (label, part, case_sensitive)
        cached = self._parts.get(key)
        if cached is None:
            body = self.reading.own if part == "own" else self.reading.set_aside_text
            text = f"{self.subject}\n{body}" if label == "text" else body
            cached = self._parts[key] = text if case_sensitive else text.lower()
        return cached

    @cached_property
    def body_lc(self) -> str:
        return self.body.lower()

    @cached_property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}"

    @cached_property
    def text_lc(self) -> str:
        return f"{self.subject_lc}\n{self.body_lc}"

    @cached_property
    def words_body(self) -> int:
        return count_words(self.body)

    @cached_property
    def words_subject(self) -> int:
        return count_words(self.subject)

    @property
    def words_text(self) -> int:
        return self.words_subject + self.words_body

    @cached_property
    def from_(self) -> tuple[str, ...]:
        return (self.message.from_addr,) if self.message.from_addr else ()

    @cached_property
    def from_domain(self) -> tuple[str, ...]:
        return tuple(a.rpartition("@")[2] for a in self.from_ if "@" in a)

    @cached_property
    def to(self) -> tuple[str, ...]:
        return self.message.to

    @cached_property
    def cc(self) -> tuple[str, ...]:
        return self.message.cc

    @cached_property
    def recipients(self) -> tuple[str, ...]:
        return self.message.to + self.message.cc

    @cached_property
    def source(self) -> tuple[str, ...]:
        return (self.message.source,)

    @cached_property
    def mailbox(self) -> tuple[str, ...]:
        box = self.message.mailbox_id
        return (str(box),) if box is not None else ()

    @cached_property
    def tags(self) -> tuple[str, ...]:
        return self.message.tags

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return self.message.attachments

    def header(self, name: str) -> list[str]:
        return [normalise(v) for v in self.message.headers.get_all(name)]


def _quote(values: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(f"'{_short(v)}'" for v in values[:limit])
    more = len(values) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compile(pattern: str, case_sensitive: bool) -> SafePattern:
    """Case-insensitive patterns run on lower-cased text, so IGNORECASE (slower) is only
    needed when the pattern itself has upper-case letters (escapes like \\S aside).
    Every search is bounded in time (`bot.rules.patterns`)."""
    upper = any(c.isupper() for c in re.sub(r"\\.", "", pattern))
    return SafePattern(pattern, re.IGNORECASE if upper and not case_sensitive else 0)


class Matcher:
    """A compiled condition."""

    label = ""

    def test(self, facts: Facts) -> Result:
        raise NotImplementedError


class Always(Matcher):
    def test(self, facts: Facts) -> Result:
        return True, "matches every ticket (no 'when')"


class StringTest:
    """One operator over strings; ``check`` returns a hit description or None."""

    def __init__(self, test: Test) -> None:
        self.case_sensitive = test.case_sensitive
        fold: Callable[[str], str] = (lambda s: s) if test.case_sensitive else str.lower
        self.check: Callable[[str], str | None]
        if test.contains is not None:
            needles = [(fold(n), f"contains '{n}'") for n in test.contains]
            self.miss = (f"does not contain {_quote(test.contains)}" if len(needles) == 1
                         else f"contains none of {_quote(test.contains)}")

            def contains(value: str) -> str | None:
                for needle, hit in needles:
                    if needle in value:
                        return hit
                return None

            self.check = contains
        elif test.equals is not None:
            wanted, shown = fold(test.equals), test.equals
            self.miss = f"is not '{shown}'"
            self.check = lambda value: f"is '{shown}'" if value == wanted else None
        elif test.one_of is not None:
            options = {fold(v) for v in test.one_of}
            self.miss = f"is not one of {_quote(test.one_of)}"
            self.check = lambda value: f"is '{value}'" if value in options else None
        else:
            patterns = [(_compile(p, test.case_sensitive), _short(p),
                         prefilter(p, lowered_text=not test.case_sensitive))
                        for p in test.matches or []]
            self.miss = (f"does not match {_quote(test.matches or [])}" if len(patterns) == 1
                         else f"matches none of {_quote(test.matches or [])}")

            def matches(value: str) -> str | None:
                for pattern, shown, possible in patterns:
                    if possible is not None and not possible(value):
                        continue
                    found = pattern.search(value)
                    if found is not None:
                        return f"matches '{shown}' (found \"{_short(found.group(0), 40)}\")"
                return None

            self.check = matches


class TextMatcher(Matcher):
    """subject / body / text: one string, lower-cased once per message. Body text is the
    requester's own words (`bot.rules.ownwords`); the reason says where a hit was, and a
    miss says when only text they did not write would have matched."""

    def __init__(self, label: str, test: Test) -> None:
        self.label = label
        self.op = StringTest(test)
        self.case_sensitive = test.case_sensitive
        self.attr = label if test.case_sensitive else f"{label}_lc"
        self.miss = f"{label} {self.op.miss}"

    def test(self, facts: Facts) -> Result:
        hit = self.op.check(getattr(facts, self.attr))
        if self.label == "subject":
            return (True, f"subject {hit}") if hit else (False, self.miss)
        reading = facts.reading
        if hit:
            where = "the requester's own words"
            if reading.pasted and not self.op.check(facts.part(self.label, "own",
                                                               self.case_sensitive)):
                where = "a bounce the requester pasted or forwarded"
            return True, f"{self.label} {hit} (in {where})"
        if reading.set_aside:
            aside = self.op.check(facts.part(self.label, "aside", self.case_sensitive))
            if aside:
                kinds = ", ".join(dict.fromkeys(UUENCODED if k.startswith(UUENCODED) else k
                                                for k, _ in reading.set_aside))
                return False, (f"{self.miss} in the requester's own words (it {aside} "
                               f"{ONLY_ASIDE}: {kinds})")
        return False, self.miss


class ValuesMatcher(Matcher):
    """from / to / cc / recipients / from_domain / source / mailbox / tags: any item may match."""

    def __init__(self, label: str, attr: str, test: Test) -> None:
        self.label = label
        self.attr = attr
        self.op = StringTest(test)
        self.miss = f"{label} {self.op.miss}"

    def test(self, facts: Facts) -> Result:
        values: tuple[str, ...] = getattr(facts, self.attr)
        for value in values:
            hit = self.op.check(value if self.op.case_sensitive else value.lower())
            if hit:
                return True, f"{self.label} {hit}"
        return False, self.miss if values else f"{self.label} is empty"


class HeaderMatcher(Matcher):
    def __init__(self, test: HeaderTest) -> None:
        self.name = test.name
        self.label = f"header {test.name}"
        self.want_exists = test.exists if test.exists is not None else True
        self.op = StringTest(test) if test.operators() else None

    def test(self, facts: Facts) -> Result:
        values = facts.header(self.name)
        if self.op is None:
            if bool(values) == self.want_exists:
                return True, f"{self.label} {'is present' if values else 'is absent'}"
            return False, f"{self.label} {'is present' if values else 'is absent'}"
        for value in values:
            hit = self.op.check(value if self.op.case_sensitive else value.lower())
            if hit:
                return True, f"{self.label} {hit}"
        return False, f"{self.label} {self.op.miss}" if values else f"{self.label} is absent"


class WordsMatcher(Matcher):
    label = "words"

    def __init__(self, test: CountTest) -> None:
        self.less_than = test.less_than
        self.more_than = test.more_than
        self.attr = f"words_{test.in_}"
        self.where = {"body": "body", "subject": "subject", "text": "subject and body"}[test.in_]

    def test(self, facts: Facts) -> Result:
        n: int = getattr(facts, self.attr)
        if self.less_than is not None and not n < self.less_than:
            return False, f"{self.where}: {n} words, not fewer than {self.less_than}"
        if self.more_than is not None and not n > self.more_than:
            return False, f"{self.where}: {n} words, not more than {self.more_than}"
        bounds = " and ".join(b for b in (
            f"fewer than {self.less_than}" if self.less_than is not None else "",
            f"more than {self.more_than}" if self.more_than is not None else "") if b)
        return True, f"{self.where}: {n} words ({bounds})"


class AttachmentsMatcher(Matcher):
    label = "attachments"

    def __init__(self, test: AttachmentTest) -> None:
        self.has = test.has
        self.filename = StringTest(test.filename) if test.filename else None
        self.content_type = StringTest(test.content_type) if test.content_type else None

    def _one(self, attachment: Attachment) -> str | None:
        hits = []
        for op, value in ((self.filename, attachment.filename or ""),
                          (self.content_type, attachment.content_type)):
            if op is None:
                continue
            hit = op.check(value if op.case_sensitive else value.lower())
            if hit is None:
                return None
            hits.append(hit)
        return " and ".join(hits)

    def test(self, facts: Facts) -> Result:
        attachments = facts.attachments
        if self.has is not None and bool(attachments) != self.has:
            return False, f"the message has {len(attachments) or 'no'} attachment(s)"
        if self.filename is None and self.content_type is None:
            return True, f"the message has {len(attachments) or 'no'} attachment(s)"
        for attachment in attachments:
            hit = self._one(attachment)
            if hit is not None:
                return True, f"an attachment ({attachment.filename or 'unnamed'}) {hit}"
        return False, "no attachment fits"


class AllOf(Matcher):
    def __init__(self, parts: list[Matcher]) -> None:
        self.parts = parts
        self.label = ", ".join(dict.fromkeys(p.label for p in parts))

    def test(self, facts: Facts) -> Result:
        reasons = []
        for part in self.parts:
            ok, reason = part.test(facts)
            if not ok:
                return False, reason
            reasons.append(reason)
        return True, " and ".join(reasons)


class AnyOf(Matcher):
    def __init__(self, parts: list[Matcher]) -> None:
        self.parts = parts
        self.label = ", ".join(dict.fromkeys(p.label for p in parts))
        self.miss = (f"none of its {len(parts)} conditions matched ({self.label})"
                     if len(parts) > 1 else "")

    def test(self, facts: Facts) -> Result:
        last = ""
        aside = ""
        for part in self.parts:
            ok, reason = part.test(facts)
            if ok:
                return True, reason
            last = reason
            if not aside and ONLY_ASIDE in reason:
                aside = reason  # the miss worth showing: it matched what they did not write
        return False, aside or self.miss or last


class Not(Matcher):
    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.label = f"not {inner.label}"

    def test(self, facts: Facts) -> Result:
        ok, reason = self.inner.test(facts)
        return (False, f"excluded: {reason}") if ok else (True, "nothing excluded it")


_VALUE_FIELDS = {"from": "from_", "from_domain": "from_domain", "to": "to", "cc": "cc",
                 "recipients": "recipients", "source": "source", "mailbox": "mailbox",
                 "tags": "tags"}


def compile_condition(condition: Condition | None) -> Matcher:
    """The matcher for a rule's ``when`` (a rule without one matches everything)."""
    if condition is None:
        return Always()
    parts: list[Matcher] = []
    # Cheap fields first, so a mapping mixing them with regexes short-circuits early.
    for alias, attr in _VALUE_FIELDS.items():
        test = getattr(condition, "from_" if alias == "from" else alias)
        if test is not None:
            parts.append(ValuesMatcher(alias, attr, test))
    if condition.words is not None:
        parts.append(WordsMatcher(condition.words))
    if condition.attachments is not None:
        parts.append(AttachmentsMatcher(condition.attachments))
    if condition.header is not None:
        parts.append(HeaderMatcher(condition.header))
    for label in ("subject", "body", "text"):
        test = getattr(condition, label)
        if test is not None:
            parts.append(TextMatcher(label, test))
    if condition.all_ is not None:
        parts.append(AllOf([compile_condition(c) for c in condition.all_]))
    if condition.any_ is not None:
        parts.append(AnyOf([compile_condition(c) for c in condition.any_]))
    if condition.not_ is not None:
        parts.append(Not(compile_condition(condition.not_)))
    return parts[0] if len(parts) == 1 else AllOf(parts)
