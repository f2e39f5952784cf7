"""The outbox against a real SQLite store: which rows it sends, retries, fails and recovers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.outbox import BACKOFF, MAX_ATTEMPTS, FlushReport, Outbox
from bot.store import Store

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class ScriptedChannel:
    """Keeps the Channel contract; answers each item from a script (default: sent)."""

    def __init__(self, name: str, *outcomes: SendOutcome,
                 raise_after: int | None = None) -> None:
        self.name = name
        self.script = list(outcomes)
        self.raise_after = raise_after  # raise once this many items have been reported
        self.batches: list[list[OutboxItem]] = []

    @property
    def items(self) -> list[OutboxItem]:
        return [it for batch in self.batches for it in batch]

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        self.batches.append(list(items))
        outcomes: list[SendOutcome] = []
        for item in items:
            if self.raise_after is not None and len(outcomes) >= self.raise_after:
                raise ConnectionResetError("channel bug")
            outcome = self.script.pop(0) if self.script else SendOutcome("sent", "ok")
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(item, outcome)
        return outcomes

    async def aclose(self) -> None:
        return None


class MemorySentFolder:
    def __init__(self, *message_ids: str) -> None:
        self.message_ids = set(message_ids)
        self.appended: list[bytes] = []

    async def append_async(self, raw: bytes, when: datetime) -> None:
        self.appended.append(raw)

    async def contains_async(self, message_id: str) -> bool:
        return message_id in self.message_ids


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def ticket(store: Store) -> int:
    return store.create_ticket(source="imap", requester="ann@example.org", requester_name="Ann",
                               subject="Help", now=NOW, root_message_id="<root@example.org>").id


def plan(store: Store, tid: int, n: int, channel: str, *, kind: str = "acknowledge") -> int:
    outbox_id = store.add_outbox(
        idem_key=f"t{tid}:{kind}:{channel}:{n}", ticket_id=tid, kind=kind, channel=channel,
        message_id=f"<sb.{tid}.{channel}.{n}@example.com>", envelope_from="support@example.com",
        recipients=["ann@example.org"], payload=f"message {n}".encode(), now=NOW)
    assert outbox_id is not None
    return outbox_id


def flush(outbox: Outbox, now: datetime = NOW) -> FlushReport:
    return asyncio.run(outbox.flush(now))


def row_status(store: Store, outbox_id: int) -> tuple[str, int, datetime]:
    row = store.outbox_row(outbox_id)
    assert row is not None
    return row.status, row.attempts, row.next_attempt_at


def test_a_backlog_for_an_unconfigured_channel_does_not_starve_the_others(store: Store) -> None:
    """150 rows left for the outbox Maildir after a switch to SMTP: SMTP mail still goes."""
    tid = ticket(store)
    stuck = [plan(store, tid, n, "maildir") for n in range(150)]
    wanted = plan(store, tid, 0, "smtp")
    smtp = ScriptedChannel("smtp")
    report = flush(Outbox(store, {"smtp": smtp}, batch_size=100))
    assert [it.id for it in smtp.items] == [wanted]
    assert (report.sent, report.retry, report.failed) == (1, 0, 0)
    assert row_status(store, wanted)[0] == "sent"
    # the Maildir rows are neither attempted nor lost: pending, and counted as such
    assert {row_status(store, i)[:2] for i in stuck} == {("pending", 0)}
    assert store.outbox_counts() == {"pending": 150, "sent": 1}
    assert store.pending_outbox_channels() == {"maildir": 150}


def test_rows_of_an_unconfigured_channel_wait_for_it_and_are_reported(store: Store) -> None:
    tid = ticket(store)
    ids = [plan(store, tid, n, "webhook", kind="alert") for n in range(3)]
    with capture_logs() as logs:
        report = flush(Outbox(store, {"smtp": ScriptedChannel("smtp")}))
    assert report.sent == report.retry == report.failed == 0
    assert [e for e in logs if e["log_level"] == "warning"] == [{
        "event": "outbox rows wait for a channel that is not configured",
        "channel": "webhook", "pending": 3, "log_level": "warning"}]
    # configured again (the webhook URL restored): the backlog goes out, in order
    webhook = ScriptedChannel("webhook")
    assert flush(Outbox(store, {"webhook": webhook})).sent == 3
    assert [it.id for it in webhook.items] == ids


def test_a_large_backlog_goes_out_in_batches(store: Store) -> None:
    tid = ticket(store)
    ids = [plan(store, tid, n, "smtp") for n in range(25)]
    smtp = ScriptedChannel("smtp")
    assert flush(Outbox(store, {"smtp": smtp}, batch_size=10)).sent == 25
    assert [len(b) for b in smtp.batches] == [10, 10, 5]
    assert [it.id for it in smtp.items] == ids


def test_a_temporary_failure_backs_off_then_sends(store: Store) -> None:
    tid = ticket(store)
    oid = plan(store, tid, 0, "smtp")
    smtp = ScriptedChannel("smtp", SendOutcome("retry", "451 try later"),
                           SendOutcome("retry", "451 try later"))
    outbox = Outbox(store, {"smtp": smtp})
    assert flush(outbox).retry == 1
    assert row_status(store, oid) == ("pending", 1, NOW + timedelta(seconds=BACKOFF[0]))
    assert store.next_outbox_attempt() == NOW + timedelta(seconds=BACKOFF[0])
    # not before it is due
    assert flush(outbox, NOW + timedelta(seconds=BACKOFF[0] - 1)) == FlushReport()
    later = NOW + timedelta(seconds=BACKOFF[0])
    assert flush(outbox, later).retry == 1
    assert row_status(store, oid) == ("pending", 2, later + timedelta(seconds=BACKOFF[1]))
    last = later + timedelta(seconds=BACKOFF[1])
    assert flush(outbox, last).sent == 1
    assert row_status(store, oid)[:2] == ("sent", 3)
    assert [it.attempts for it in smtp.items] == [0, 1, 2]
    actions = [a.action for a in store.activity(tid)]
    assert actions.count("send retry") == 2 and actions.count("sent") == 1


def test_retries_end_as_failed_after_the_last_attempt(store: Store) -> None:
    tid = ticket(store)
    oid = plan(store, tid, 0, "smtp")
    store.db.run("UPDATE outbox SET attempts = ? WHERE id = ?", (MAX_ATTEMPTS - 1, oid))
    report = flush(Outbox(store, {"smtp": ScriptedChannel("smtp", SendOutcome("retry", "451"))}))
    assert (report.retry, report.failed) == (0, 1)
    assert row_status(store, oid)[:2] == ("failed", MAX_ATTEMPTS)


def test_a_permanent_failure_is_final_and_listed(store: Store) -> None:
    tid = ticket(store)
    bad, good = plan(store, tid, 0, "smtp"), plan(store, tid, 1, "smtp")
    smtp = ScriptedChannel("smtp", SendOutcome("failed", "550 5.1.1 no such user"))
    outbox = Outbox(store, {"smtp": smtp})
    report = flush(outbox)
    assert (report.sent, report.failed, report.retry) == (1, 1, 0)
    assert row_status(store, bad)[0] == "failed"
    assert row_status(store, good)[0] == "sent"
    (listed,) = store.failed_sends()
    assert (listed.id, listed.last_error) == (bad, "550 5.1.1 no such user")
    assert "send failed" in [a.action for a in store.activity(tid)]
    # never attempted again
    assert flush(outbox, NOW + timedelta(days=1)) == FlushReport()
    assert len(smtp.items) == 2


def test_a_channel_that_raises_keeps_its_rows_for_a_retry(store: Store) -> None:
    tid = ticket(store)
    first, second, third = (plan(store, tid, n, "smtp") for n in range(3))
    smtp = ScriptedChannel("smtp", raise_after=1)
    outbox = Outbox(store, {"smtp": smtp})
    report = flush(outbox)
    # what the channel reported before it raised is recorded; the rest waits for a retry
    assert (report.sent, report.retry, report.failed) == (1, 2, 0)
    assert row_status(store, first)[0] == "sent"
    due = NOW + timedelta(seconds=BACKOFF[0])
    assert row_status(store, second) == row_status(store, third) == ("pending", 1, due)
    smtp.raise_after = None
    assert flush(outbox, due).sent == 2
    assert [it.id for it in smtp.items] == [first, second, third, second, third]
    assert store.outbox_counts() == {"sent": 3}


def test_a_row_left_in_sending_is_sent_again_with_the_same_message(store: Store) -> None:
    tid = ticket(store)
    oid = plan(store, tid, 0, "smtp")
    store.set_outbox_status(oid, "sending", NOW, bump_attempts=True)  # the crash
    smtp = ScriptedChannel("smtp")
    outbox = Outbox(store, {"smtp": smtp})
    later = NOW + timedelta(minutes=5)
    assert asyncio.run(outbox.recover(later)) == 1
    assert row_status(store, oid) == ("pending", 1, later)
    assert "send in doubt" in [a.action for a in store.activity(tid)]
    assert flush(outbox, later).sent == 1
    (again,) = smtp.items
    assert (again.id, again.attempts) == (oid, 1)
    assert (again.message_id, again.payload) == (f"<sb.{tid}.smtp.0@example.com>", b"message 0")
    assert asyncio.run(outbox.recover(later)) == 0


def test_a_row_in_doubt_found_in_the_sent_folder_is_not_sent_again(store: Store) -> None:
    tid = ticket(store)
    found, missing = plan(store, tid, 0, "smtp"), plan(store, tid, 1, "smtp")
    for oid in (found, missing):
        store.set_outbox_status(oid, "sending", NOW, bump_attempts=True)
    sent: list[tuple[int, str]] = []
    smtp = ScriptedChannel("smtp")
    outbox = Outbox(store, {"smtp": smtp}, on_sent=lambda t, kind, at: sent.append((t, kind)),
                    sent_folder=MemorySentFolder(f"<sb.{tid}.smtp.0@example.com>"))
    assert asyncio.run(outbox.recover(NOW)) == 2
    assert row_status(store, found)[0] == "sent"
    assert row_status(store, missing)[0] == "pending"
    assert sent == [(tid, "acknowledge")]
    assert flush(outbox).sent == 1
    assert [it.id for it in smtp.items] == [missing]
