"""`supportbot migrate-state --to URL`: SQLite -> private PostgreSQL -> SQLite, by counts.

The state of a worker that has answered and scheduled is copied into an empty PostgreSQL
database; a worker on the copy re-answers nothing and keeps the schedule; copied back to a
new SQLite file, every count still matches. A non-empty target and a running worker are
refused.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from bot.store.copy import count_rows
from bot.store.run_lock import sole_worker
from tests.helpers import REPO, deliver, embedded_settings

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEMO = REPO / "bot" / "demo" / "mail"


def cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


def counts(state: Path | str) -> dict[str, int]:
    store = Store(state)
    try:
        return count_rows(store)
    finally:
        store.close()


def migrate(monkeypatch: pytest.MonkeyPatch, settings: Settings, target: Path | str) -> int:
    monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state))
    for key in ("MAILDIR", "OUTBOX_MAILDIR", "RULES", "TEMPLATES", "FROM"):
        monkeypatch.delenv(f"SUPPORTBOT_{key}", raising=False)
    return main(["migrate-state", "--to", str(target)])


@pytest.mark.slow
def test_sqlite_to_postgresql_and_back_verified_by_counts(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = embedded_settings(tmp_path)
    for path in sorted(DEMO.glob("*.eml")):
        deliver(tmp_path / "inbox", path.read_bytes(), T0 - timedelta(minutes=5))
    cycle(settings, FakeClock(T0))
    original = counts(settings.state)
    assert original["tickets"] == 5 and original["outbox"] > 5 and original["timers"] > 0

    assert migrate(monkeypatch, settings, pg_url) == 0
    assert "counts match" in capsys.readouterr().out
    on_pg = settings.with_(state_url=pg_url)
    assert counts(pg_url) == original

    # the worker carries on from the copy: nothing re-answered, the check-ins at their time
    sent = original["outbox"]
    cycle(on_pg, FakeClock(T0 + timedelta(hours=1)))
    assert counts(pg_url)["outbox"] == sent
    cycle(on_pg, FakeClock(T0 + timedelta(hours=24, minutes=1)))
    store = Store(pg_url)
    assert store.failed_sends(100) == []
    assert store.outbox_counts().get("sent", 0) == sent + 2  # the two vague tickets' check-ins
    moved = count_rows(store)
    new_ticket = store.create_ticket(source="email", requester="x@y.example", requester_name="",
                                     subject="ids go on", now=T0, root_message_id=None)
    assert new_ticket.id == 6  # ids continue after the copied ones
    store.close()

    back = tmp_path / "back" / "state.db"
    assert migrate(monkeypatch, on_pg, back) == 0
    assert counts(back) == {**moved, "tickets": moved["tickets"] + 1}


def test_a_non_empty_target_or_a_running_worker_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", (DEMO / "5-training.eml").read_bytes(), T0)
    cycle(settings, FakeClock(T0))
    other = tmp_path / "other.db"
    Store(other).close()
    assert migrate(monkeypatch, settings, other) == 2  # the file exists: not a new store
    assert "already exists" in capsys.readouterr().err
    with sole_worker(settings.state_path):
        assert migrate(monkeypatch, settings, tmp_path / "new.db") == 2
    assert "another supportbot worker" in capsys.readouterr().err
    assert not (tmp_path / "new.db").exists()
