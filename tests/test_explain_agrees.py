"""`explain` and the worker share one expansion: on every shipped sample they agree.

Each sample goes once through what `explain` runs (parse, decide, previews) and once through
a real worker on the embedded Maildir set-up; every message the worker writes must be one
that `explain` showed, with the same kind, recipient and text, and nothing else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.expand import previews
from bot.mail.parse import parse_message
from bot.rules.decide import decide
from bot.rules.reload import load_set
from bot.runtime import open_worker
from tests.conftest import CORPUS
from tests.helpers import REPO, deliver, embedded_settings, outbox_mail, plain_text

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning
SAMPLES = sorted((REPO / "bot" / "demo" / "mail").glob("*.eml")) + sorted(
    (CORPUS / "tickets").glob("*.eml"))


def explained(raw: bytes, settings: Settings) -> list[tuple[str, tuple[str, ...], str]]:
    ruleset, templates = load_set(settings.rules_path, settings.templates_path)
    message = parse_message(raw, received_at=T0)
    decision = decide(message, None, T0, ruleset, own_addresses=frozenset({settings.from_addr}),
                      own_domain=settings.from_domain)
    shown = previews(message, decision, ruleset, templates)
    assert not [p.error for p in shown if p.error]
    return [(p.kind.value, p.to, p.text.replace("[#new]", "[#1]")) for p in shown]


def worked(raw: bytes, tmp: Path, settings: Settings) -> list[tuple[str, tuple[str, ...], str]]:
    deliver(tmp / "inbox", raw, T0)

    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0)) as worker:
            await worker.cycle()
    asyncio.run(go())
    out = []
    for sent in outbox_mail(tmp / "outbox"):
        to = tuple(a.strip() for a in sent.to.split(","))
        out.append((sent.kind, to, plain_text(sent.message)))
    return out


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_explain_shows_exactly_what_the_worker_sends(sample: Path, tmp_path: Path) -> None:
    raw = sample.read_bytes()
    settings = embedded_settings(tmp_path)
    expected = explained(raw, settings)
    sent = worked(raw, tmp_path, settings)

    def norm(items: list[tuple[str, tuple[str, ...], str]]) -> list[tuple[str, tuple[str, ...],
                                                                          str]]:
        return sorted((k, tuple(sorted(to)), text.rstrip()) for k, to, text in items)
    assert norm(sent) == norm(expected)


def test_the_samples_are_there() -> None:
    assert len(SAMPLES) >= 6  # the demo's own mail at least, with or without ../shared
