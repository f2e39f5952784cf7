"""Only people on a ticket join it: the pure policy, then the worker end to end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from bot.ticket_join import may_join
from tests.helpers import deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANN = "ann@customer.example"


@pytest.mark.parametrize(("sender", "recipients", "participants", "team", "closed", "joins"), [
    (ANN, [], [], False, False, True),
    (ANN, [], [], False, True, True),
    ("bob@customer.example", [ANN], [], False, True, True),  # colleague, Ann copied
    ("bob@customer.example", [], [], False, False, False),  # same domain, Ann not copied
    ("eve@evil.example", [ANN], [], False, False, False),
    ("carl@partner.example", [], ["carl@partner.example"], False, False, True),
    ("carl@partner.example", [], ["carl@partner.example"], False, True, False),
    ("agent@example.com", [], [], True, True, True),
    ("", [], [], False, False, False),
    ("pat@lists.example", [], [], False, False, "team-message"),  # answered our forward
])
def test_join_policy(sender: str, recipients: list[str], participants: list[str], team: bool,
                     closed: bool, joins: bool | str) -> None:
    verdict = may_join(requester=ANN, closed=closed, sender=sender, recipients=recipients,
                       participants=participants, is_team=team,
                       answers_team_message=joins == "team-message")
    assert verdict.joins is bool(joins) and verdict.reason


def cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


@pytest.mark.parametrize("forgery", ["in-reply-to", "subject-tag"])
def test_a_forged_reference_opens_a_new_ticket_and_leaves_the_real_one_alone(
        tmp_path: Path, forgery: str) -> None:
    settings = embedded_settings(tmp_path)
    clock = FakeClock(T0)
    inbox = tmp_path / "inbox"
    deliver(inbox, make_mail(subject="help", body="help please",
                             message_id="<ann1@customer.example>"), T0)
    cycle(settings, clock)  # ticket 1: asked for details, a check-in is scheduled
    clock.advance(3600)
    sender = ("Eve <eve@evil.example>" if forgery == "in-reply-to"
              else "Mallory <mallory@customer.example>")  # the requester's own domain
    deliver(inbox, make_mail(sender=sender, subject="Re: help [#1]",
                             body="Please send the invoice to my address instead.",
                             message_id="<eve1@evil.example>",
                             in_reply_to="<ann1@customer.example>"
                             if forgery == "in-reply-to" else None), clock.now())
    cycle(settings, clock)
    store = Store(settings.state)
    assert store.get_ticket(1).requester == ANN  # type: ignore[union-attr]
    assert [t.kind for t in store.pending_timers(1)] == ["check_in"]  # not cancelled
    new = store.get_ticket(2)
    assert new is not None and new.requester != ANN
    assert any("claimed" in e.action and "#1" in e.detail for e in store.activity(2))
    assert all(s.to != ANN for s in outbox_mail(tmp_path / "outbox")[1:])  # Ann not mailed


def test_the_requester_still_joins_by_threading_headers(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(subject="help", body="help please",
                                          message_id="<ann1@customer.example>"), T0)
    cycle(settings, clock)
    clock.advance(timedelta(hours=1))
    deliver(tmp_path / "inbox", make_mail(subject="Re: help", body="The export button fails.",
                                          message_id="<ann2@customer.example>",
                                          in_reply_to="<ann1@customer.example>"), clock.now())
    cycle(settings, clock)
    store = Store(settings.state)
    assert store.get_ticket(2) is None
    assert [m.status for m in store.ticket_messages(1)] == ["ticket", "reply"]
