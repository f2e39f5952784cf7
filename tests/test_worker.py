"""The worker end to end on the embedded Maildir set-up: real store, rules, templates, outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


def cycle(settings, clock):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with open_worker(settings, clock=clock) as worker:
            return await worker.cycle()
    return asyncio.run(go())


def test_new_ticket_is_acknowledged_once_across_restarts(tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(subject="Question about exporting contacts",
                                          body="How do I export my contacts to a CSV file? "
                                          "I looked in settings but could not find it."), T0)
    report = cycle(settings, clock)
    assert [o.status for o in report.outcomes] == ["ticket"]
    sent = outbox_mail(tmp_path / "outbox")
    assert len(sent) == 1
    assert sent[0].to == "ann@customer.example"
    assert sent[0].subject.startswith("Re: Question about exporting contacts [#1]")
    assert sent[0].message["In-Reply-To"] == "<m1@customer.example>"
    assert sent[0].message["Auto-Submitted"] == "auto-replied"
    clock.advance(60)
    report = cycle(settings, clock)  # a restart and another cycle: nothing new, nothing twice
    assert [o.status for o in report.outcomes] == []
    assert len(outbox_mail(tmp_path / "outbox")) == 1


def test_auto_reply_is_recorded_but_never_answered(tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    deliver(tmp_path / "inbox", make_mail(subject="Out of Office: back Monday",
                                          headers={"Auto-Submitted": "auto-replied"}), T0)
    report = cycle(settings, FakeClock(T0))
    assert [o.status for o in report.outcomes] == ["ignored"]
    assert "Auto-Submitted" in (report.outcomes[0].decision.reason or "")
    assert outbox_mail(tmp_path / "outbox") == []
    store = Store(settings.state)
    assert store.message_counts() == {"ignored": 1}
    assert store.tickets_by_state() == {}


def test_deliverability_is_critical_forwarded_and_requester_told(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    deliver(tmp_path / "inbox", make_mail(
        subject="My emails aren't sending", body="Since this morning none of my emails to "
        "clients are going out, they bounce back with 550 errors."), T0)
    cycle(settings, FakeClock(T0))
    kinds = sorted(s.kind for s in outbox_mail(tmp_path / "outbox"))
    assert kinds == ["alert", "forward", "forwarded"]
    by_kind = {s.kind: s for s in outbox_mail(tmp_path / "outbox")}
    assert by_kind["forwarded"].to == "ann@customer.example"
    assert by_kind["forward"].to != "ann@customer.example"
    store = Store(settings.state)
    ticket = store.get_ticket(1)
    assert ticket is not None and ticket.priority == "critical" and ticket.state == "forwarded"


def test_first_start_backfill_records_old_mail_without_answering(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    deliver(tmp_path / "inbox", make_mail(message_id="<old@x>"), T0 - timedelta(days=3))
    deliver(tmp_path / "inbox", make_mail(message_id="<new@x>", subject="Fresh question"),
            T0 - timedelta(hours=2))
    report = cycle(settings, FakeClock(T0))
    assert sorted(o.status for o in report.outcomes) == ["backfill", "ticket"]
    assert len(outbox_mail(tmp_path / "outbox")) == 1
    # after the first start, late mail is answered whatever its age (the bot was down)
    deliver(tmp_path / "inbox", make_mail(message_id="<late@x>", subject="Another"),
            T0 - timedelta(days=2))
    report = cycle(settings, FakeClock(T0 + timedelta(minutes=5)))
    assert [o.status for o in report.outcomes] == ["ticket"]


def test_crash_between_planned_and_sent_sends_exactly_once(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(), T0)

    async def plan_then_crash() -> None:
        async with open_worker(settings, clock=clock) as worker:
            source = worker.sources[0]
            async for batch in source.batches():
                worker.pipeline.ingest_batch(source.cursor_key, batch, clock.now())
            # the process dies here: rows are planned, nothing sent yet
    asyncio.run(plan_then_crash())
    store = Store(settings.state)
    assert store.outbox_counts() == {"pending": 1}
    store.close()
    assert outbox_mail(tmp_path / "outbox") == []
    cycle(settings, clock)
    cycle(settings, clock)
    assert len(outbox_mail(tmp_path / "outbox")) == 1


def test_row_left_sending_by_a_crash_is_resent_with_the_same_message_id(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(), T0)
    cycle(settings, clock)
    store = Store(settings.state)
    row = store.outbox_row(1)
    assert row is not None and store.outbox_counts() == {"sent": 1}
    store.db.run("UPDATE outbox SET status = 'sending' WHERE id = ?", (row.id,))
    store.close()
    cycle(settings, clock)
    sent = outbox_mail(tmp_path / "outbox")
    # the Maildir channel knows the Message-ID already: it is not written twice
    assert [s.message["Message-ID"] for s in sent] == [row.message_id]
    store = Store(settings.state)
    assert store.outbox_counts() == {"sent": 1}
    assert any(a.action == "send in doubt" for a in store.activity(1))


def test_dry_run_sends_nothing_and_changes_nothing(
        tmp_path: Path, state: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    """On PostgreSQL too: the dry run works on a private SQLite copy of the database."""
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state), SUPPORTBOT_DRY_RUN="1")
    deliver(tmp_path / "inbox", make_mail(subject="Where is the export button?"), T0)
    report = cycle(settings, FakeClock(T0))
    assert [o.status for o in report.outcomes] == ["ticket"]
    assert "would send acknowledge" in capsys.readouterr().out
    assert outbox_mail(tmp_path / "outbox") == []
    store = Store(settings.state)
    assert store.message_counts() == {} and store.outbox_counts() == {}
    store.close()
    real = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    report = cycle(real, FakeClock(T0))
    assert [o.status for o in report.outcomes] == ["ticket"]
    assert len(outbox_mail(tmp_path / "outbox")) == 1


def test_malformed_mail_is_quarantined_and_the_rest_goes_on(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    deliver(tmp_path / "inbox", b"\x00\x01\x02 not an email at all", T0 - timedelta(minutes=1))
    deliver(tmp_path / "inbox", make_mail(), T0)
    report = cycle(settings, FakeClock(T0))
    assert sorted(o.status for o in report.outcomes) == ["quarantined", "ticket"]
    store = Store(settings.state)
    (q,) = store.quarantined()
    assert q.source == "maildir" and q.error
    assert len(outbox_mail(tmp_path / "outbox")) == 1


def test_a_backlog_report_keeps_counts_for_all_and_bounded_slim_outcomes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle over a big backlog must not hold every message: memory stays flat."""
    from bot import metrics, worker

    monkeypatch.setattr(worker, "OUTCOMES_KEPT", 3)
    settings = embedded_settings(tmp_path)
    for n in range(5):
        deliver(tmp_path / "inbox", make_mail(subject=f"Question about exporting {n}",
                                              message_id=f"<b{n}@customer.example>"), T0)
    deliver(tmp_path / "inbox", make_mail(subject="Out of Office", message_id="<ooo@x.example>",
                                          headers={"Auto-Submitted": "auto-replied"}), T0)
    before = metrics.MESSAGES.labels("ticket")._value.get()
    report = cycle(settings, FakeClock(T0))
    assert report.counts == {"ticket": 5, "ignored": 1}
    assert len(report.outcomes) == 3 and report.outcomes_dropped == 3
    for o in report.outcomes:
        assert o.message is not None and o.message.raw is None and o.message.text == ""
        assert o.message.message_id  # who and what stay
        assert o.decision is not None and o.decision.trace == ()
    assert metrics.MESSAGES.labels("ticket")._value.get() - before == 5
    assert len(outbox_mail(tmp_path / "outbox")) == 5
