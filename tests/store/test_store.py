"""The store: migrations, permissions, idempotent ledger/outbox/timers, transactions."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import Store
from bot.store.db import SCHEMA_VERSION, connect

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_fresh_file_is_migrated_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "state.db"
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    for p in path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


def test_migration_is_idempotent_and_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    connect(path).close()
    conn = connect(path)  # second open applies nothing and keeps the data
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        connect(path)


def test_migration_from_version_zero_keeps_going_after_failure(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE tickets (x)")  # a conflicting table: migration 1 must fail whole
    raw.commit()
    raw.close()
    with pytest.raises(sqlite3.OperationalError):
        connect(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    outbox_tables = "SELECT count(*) FROM sqlite_master WHERE name = 'outbox'"
    assert raw.execute(outbox_tables).fetchone()[0] == 0
    raw.close()


def _ticket(store: Store) -> int:
    return store.create_ticket(source="maildir", requester="ann@example.org",
                               requester_name="Ann", subject="Help", now=NOW,
                               root_message_id="<1@x>").id


def test_outbox_key_is_planned_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    tid = _ticket(store)
    args = dict(ticket_id=tid, kind="acknowledge", channel="maildir", message_id="<sb.1@x>",
                envelope_from="s@x", recipients=["ann@example.org"], payload=b"x", now=NOW)
    assert store.add_outbox(idem_key="t1:ack:m1", **args) is not None
    assert store.add_outbox(idem_key="t1:ack:m1", **args) is None
    assert store.outbox_counts() == {"pending": 1}
    assert store.recent_sends_to("ANN@example.org", NOW - timedelta(hours=1)) == 1


def test_nested_transaction_rolls_back_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.transaction():
        tid = _ticket(store)
        with pytest.raises(ValueError), store.transaction():
            store.log(NOW, tid, "inner")
            raise ValueError
        store.log(NOW, tid, "outer")
    assert [a["action"] for a in store.activity(tid)] == ["outer"]


def test_thread_lookup_and_ticket_lookup_by_number(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    tid = _ticket(store)
    store.add_thread_id("<sb.1.ack.ff@example.com>", tid)
    assert store.ticket_by_thread(["<other@x>", "<sb.1.ack.ff@example.com>"]).id == tid
    assert store.ticket_by_thread(["<nothing@x>"]) is None
    assert store.find_ticket(f"#{tid}").id == tid
    hs = store.create_ticket(source="helpscout", requester="b@x", requester_name="", subject="s",
                             now=NOW, root_message_id=None, conversation_id=5551,
                             conversation_number=88)
    assert store.find_ticket("88").id == hs.id


def test_timers_fire_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    tid = _ticket(store)
    assert store.add_timer(key="k", ticket_id=tid, kind="check_in", due_at=NOW, now=NOW)
    assert store.add_timer(key="k", ticket_id=tid, kind="check_in", due_at=NOW, now=NOW) is None
    (timer,) = store.due_timers(NOW)
    assert store.finish_timer(timer["id"], "fired", NOW)
    assert not store.finish_timer(timer["id"], "fired", NOW)
    assert store.due_timers(NOW + timedelta(days=9)) == []


def test_same_message_id_with_other_content_is_another_message(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.record_message(ref="imap:INBOX:1:1", source="imap", received_at=NOW, now=NOW,
                         status="ticket", content_hash="aaa", message_id="<m@x>")
    assert store.find_same_message("<m@x>", "aaa") is not None
    assert store.find_same_message("<m@x>", "bbb") is None
    assert store.find_same_message(None, "aaa") is None


def test_upgrade_from_version_1_keeps_planned_sends(tmp_path: Path) -> None:
    """A state file written by the first release migrates with its pending outbox intact."""
    from bot.store.db import MIGRATIONS, _statements

    path = tmp_path / "v1.db"
    raw = sqlite3.connect(path)
    for statement in _statements(MIGRATIONS[0]):
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO tickets(id, source, state, requester, created_at, updated_at)"
                " VALUES (1, 'maildir', 'new', 'a@x', 'now', 'now')")
    raw.execute("INSERT INTO outbox(idem_key, ticket_id, kind, channel, message_id, payload,"
                " status, created_at, next_attempt_at) VALUES"
                " ('k', 1, 'acknowledge', 'maildir', '<m@x>', x'00', 'pending', 'now', 'now')")
    raw.execute("INSERT INTO outbox_recipients(outbox_id, address, created_at)"
                " VALUES (1, 'a@x', 'now')")
    raw.commit()
    raw.close()
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.outbox_counts() == {"pending": 1}
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # version 2: a send that belongs to no ticket (the scheduled report)
    assert store.add_outbox(idem_key="report:1", ticket_id=None, kind="report",  # type: ignore[arg-type]
                            channel="maildir", message_id="<r@x>", envelope_from="s@x",
                            recipients=["team@x"], payload=b"r", now=NOW) is not None


def test_a_visible_update_keeps_the_first_action_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    tid = _ticket(store)
    store.mark_visible_update(tid, NOW + timedelta(minutes=2))
    store.mark_visible_update(tid, NOW + timedelta(hours=3))
    ticket = store.get_ticket(tid)
    assert ticket is not None
    assert ticket.first_action_at == NOW + timedelta(minutes=2)
    assert ticket.last_visible_update_at == NOW + timedelta(hours=3)
    assert ticket.updated_at == NOW + timedelta(hours=3)
