"""Raw mail is kept once and pruned after SUPPORTBOT_RETENTION_DAYS: measured in bytes.

A forwarded message used to be stored twice (the ledger's copy and the forward's
attachment: 31 MB became 63 MB); now a large original is kept once however many rows carry
it, and every row still reads back whole. After the retention period the raw bodies go,
while the ledger rows, tickets, outbox rows and activity stay. Both backends.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from bot.clock import FakeClock
from bot.retention import maybe_prune
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MB = 1024 * 1024


def big_billing_mail(size: int) -> bytes:
    """A billing question (the rules forward it) with ``size`` bytes of incompressible PDF."""
    msg = EmailMessage()
    msg["From"] = "Marcus Lee <marcus@leeproperties.example>"
    msg["To"] = "Support <support@example.com>"
    msg["Subject"] = "Charged twice this month"
    msg["Message-ID"] = "<big@leeproperties.example>"
    msg.set_content("I was charged twice for my November subscription; the statement is "
                    "attached. Could you refund one of the charges?")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="pdf",
                       filename="statement.pdf")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def run(settings, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


def test_a_forwarded_original_is_stored_once_and_sent_whole(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    raw = big_billing_mail(3 * MB)
    deliver(tmp_path / "inbox", raw, T0)
    run(settings, FakeClock(T0 + timedelta(minutes=1)))

    files = [f.read_bytes().replace(b"\r\n", b"\n")
             for f in (tmp_path / "outbox" / "new").iterdir()]
    forwards = [f for f in files if b"X-Supportbot-Kind: forward\n" in f]
    assert len(forwards) == 1
    assert raw.replace(b"\r\n", b"\n").rstrip(b"\n") in forwards[0]  # sent whole
    store = Store(settings.state)
    stored = store.raw_bytes()
    store.close()
    encoded = len(raw)  # the attachment travels base64-encoded: random bytes do not compress
    assert stored < 1.2 * encoded, (stored, encoded)  # once, not twice (it was ~2.05x)


def test_raw_mail_older_than_the_retention_period_is_pruned_and_the_facts_stay(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    deliver(tmp_path / "inbox", big_billing_mail(1 * MB), T0)
    run(settings, FakeClock(T0 + timedelta(minutes=1)))
    store = Store(settings.state)
    before = store.raw_bytes()
    tickets, ledger, outbox = (store.tickets_by_state(), store.message_counts(),
                               store.outbox_counts())
    activity = len(store.activity(1))

    assert maybe_prune(store, T0 + timedelta(days=89), 90) == {
        "messages": 0, "outbox": 0, "quarantine": 0, "blobs": 0}
    assert store.raw_bytes() == before
    assert maybe_prune(store, T0 + timedelta(days=89, hours=12), 90) is None  # once a day
    pruned = maybe_prune(store, T0 + timedelta(days=91), 90)
    assert pruned is not None and pruned["messages"] == 1 and pruned["blobs"] == 1
    assert pruned["outbox"] == sum(outbox.values())
    assert store.raw_bytes() < 0.01 * before
    assert (store.tickets_by_state(), store.message_counts(), store.outbox_counts()) == \
        (tickets, ledger, outbox)
    assert len(store.activity(1)) == activity
    assert store.conversation_rows(1)[0].raw is None
    store.close()


def test_zero_keeps_raw_mail_for_ever(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", big_billing_mail(100_000), T0)
    run(settings, FakeClock(T0 + timedelta(minutes=1)))
    store = Store(settings.state)
    assert maybe_prune(store, T0 + timedelta(days=3650), 0) is None
    assert store.conversation_rows(1)[0].raw is not None
    store.close()
