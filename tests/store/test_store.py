"""The store on both backends: idempotent ledger/outbox/timers, transactions, claims, leases;
and what is SQLite's own (file permissions, WAL, upgrades of old files)."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.store import Store
from bot.store.database import Dialect
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION, postgres_sql, sqlite_sql, statements
from bot.store.sqlite import connect
from bot.store.store import WORKER_LEASE
from tests.servers.postgres import PostgresServer

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(state: Path | str) -> Iterator[Store]:
    s = Store(state)
    yield s
    s.close()


def _ticket(store: Store) -> int:
    return store.create_ticket(source="maildir", requester="ann@example.org",
                               requester_name="Ann", subject="Help", now=NOW,
                               root_message_id="<1@x>").id


def _outbox(store: Store, tid: int, key: str, channel: str = "maildir") -> int | None:
    return store.add_outbox(idem_key=key, ticket_id=tid, kind="acknowledge", channel=channel,
                            message_id=f"<sb.{key}@x>", envelope_from="s@x",
                            recipients=["Ann@example.org"], payload=b"bytes\x00\xff", now=NOW)


# -- both backends ---------------------------------------------------------------------------
def test_outbox_key_is_planned_once(store: Store) -> None:
    tid = _ticket(store)
    assert _outbox(store, tid, "t1:ack:m1") is not None
    assert _outbox(store, tid, "t1:ack:m1") is None
    assert store.outbox_counts() == {"pending": 1}
    assert store.recent_sends_to("ANN@example.org", NOW - timedelta(hours=1)) == 1
    (row,) = store.due_outbox(NOW, ["maildir"])
    assert row.payload == b"bytes\x00\xff"
    assert row.recipients == ("Ann@example.org",)
    assert row.created_at == NOW


def test_nested_transaction_rolls_back_alone(store: Store) -> None:
    with store.transaction():
        tid = _ticket(store)
        with pytest.raises(ValueError), store.transaction():
            store.log(NOW, tid, "inner")
            raise ValueError
        store.log(NOW, tid, "outer")
    assert [a.action for a in store.activity(tid)] == ["outer"]


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        _ticket(store)
        raise RuntimeError
    assert store.tickets_by_state() == {}
    _ticket(store)  # and the store is usable afterwards
    assert store.tickets_by_state() == {"new": 1}


def test_thread_lookup_and_ticket_lookup_by_number(store: Store) -> None:
    tid = _ticket(store)
    store.add_thread_id("<sb.1.ack.ff@example.com>", tid)
    store.add_thread_id("<sb.1.ack.ff@example.com>", tid)  # twice is harmless
    assert store.ticket_by_thread(["<other@x>", "<sb.1.ack.ff@example.com>"]).id == tid
    assert store.ticket_by_thread(["<nothing@x>"]) is None
    assert store.find_ticket(f"#{tid}").id == tid
    hs = store.create_ticket(source="helpscout", requester="b@x", requester_name="", subject="s",
                             now=NOW, root_message_id=None, conversation_id=3_000_000_001,
                             conversation_number=88)
    assert store.find_ticket("88").id == hs.id
    assert store.ticket_by_conversation(3_000_000_001).id == hs.id  # beyond 32 bits


def test_ticket_updates_round_trip(store: Store) -> None:
    tid = _ticket(store)
    store.update_ticket(tid, NOW + timedelta(minutes=1), state="waiting", priority="high",
                        tags=["billing", "vip"], closed_at=NOW + timedelta(days=1))
    ticket = store.get_ticket(tid)
    assert ticket is not None
    assert (ticket.state, ticket.priority, ticket.tags) == ("waiting", "high", ("billing", "vip"))
    assert ticket.closed_at == NOW + timedelta(days=1)
    assert store.tickets_by_state() == {"waiting": 1}
    assert [t.id for t in store.tickets_since(NOW - timedelta(hours=1))] == [tid]


def test_timers_fire_once(store: Store) -> None:
    tid = _ticket(store)
    assert store.add_timer(key="k", ticket_id=tid, kind="check_in", due_at=NOW, now=NOW)
    assert store.add_timer(key="k", ticket_id=tid, kind="check_in", due_at=NOW, now=NOW) is None
    (timer,) = store.due_timers(NOW)
    assert timer.kind == "check_in" and timer.due_at == NOW
    assert store.next_timer_due() == NOW
    with store.transaction():
        assert store.claim_timer(timer.id) is not None
        assert store.finish_timer(timer.id, "fired", NOW)
    assert not store.finish_timer(timer.id, "fired", NOW)
    assert store.claim_timer(timer.id) is None
    assert store.due_timers(NOW + timedelta(days=9)) == []


def test_cancelling_timers_by_kind(store: Store) -> None:
    tid = _ticket(store)
    for kind in ("check_in", "close", "first_response"):
        store.add_timer(key=kind, ticket_id=tid, kind=kind, due_at=NOW, now=NOW)
    assert store.cancel_timers(tid, ["check_in", "close"], NOW) == 2
    assert [t.kind for t in store.pending_timers(tid)] == ["first_response"]


def test_same_message_id_with_other_content_is_another_message(store: Store) -> None:
    store.record_message(ref="imap:INBOX:1:1", source="imap", received_at=NOW, now=NOW,
                         status="ticket", content_hash="aaa", message_id="<m@x>", raw=b"raw mail")
    same = store.find_same_message("<m@x>", "aaa")
    assert same is not None and same.ref == "imap:INBOX:1:1"
    assert store.find_same_message("<m@x>", "bbb") is None
    assert store.find_same_message(None, "aaa") is None
    assert store.has_ref("imap:INBOX:1:1")
    assert store.message_counts() == {"ticket": 1}


def test_a_visible_update_keeps_the_first_action_time(store: Store) -> None:
    tid = _ticket(store)
    store.mark_visible_update(tid, NOW + timedelta(minutes=2))
    store.mark_visible_update(tid, NOW + timedelta(hours=3))
    ticket = store.get_ticket(tid)
    assert ticket is not None
    assert ticket.first_action_at == NOW + timedelta(minutes=2)
    assert ticket.last_visible_update_at == NOW + timedelta(hours=3)
    assert ticket.updated_at == NOW + timedelta(hours=3)


def test_meta_cursors_quarantine_undeliverable(store: Store) -> None:
    store.set_meta("source:imap:last_read", "a")
    store.set_meta("source:imap:last_read", "b")
    store.set_meta("sourcex", "no")
    assert store.meta_items("source:") == {"source:imap:last_read": "b"}
    store.set_cursor("imap:h:u:INBOX", "1:2", NOW)
    assert store.get_cursor("imap:h:u:INBOX") == "1:2"
    store.quarantine(ref="maildir:q1", source="maildir", raw=b"\x00broken", error="bad",
                     now=NOW)
    (q,) = store.quarantined()
    assert (q.raw, q.error, q.at) == (b"\x00broken", "bad", NOW)
    assert store.mark_undeliverable("Ann@X", "5.1.1", NOW)
    assert not store.mark_undeliverable("ann@x", "5.1.1", NOW)
    assert store.is_undeliverable("ANN@x")
    assert [u.address for u in store.undeliverable()] == ["ann@x"]


def test_a_report_send_belongs_to_no_ticket(store: Store) -> None:
    assert store.add_outbox(idem_key="report:1", ticket_id=None, kind="report",
                            channel="maildir", message_id="<r@x>", envelope_from="s@x",
                            recipients=["team@x"], payload=b"r", now=NOW) is not None


def test_claimed_rows_are_sending_and_not_claimed_again(store: Store) -> None:
    tid = _ticket(store)
    for n in range(3):
        _outbox(store, tid, f"k{n}")
    _outbox(store, tid, "other", channel="webhook")
    first = store.claim_outbox(NOW, ["maildir"], "w1", limit=2)
    assert [r.idem_key for r in first] == ["k0", "k1"]
    assert [r.idem_key for r in store.claim_outbox(NOW, ["maildir"], "w2")] == ["k2"]
    assert store.claim_outbox(NOW, ["maildir"], "w2") == []
    assert {r.claimed_by for r in store.in_doubt_outbox()} == {"w1", "w2"}
    assert store.outbox_row(first[0].id).attempts == 1
    assert store.pending_outbox_channels() == {"webhook": 1}


def test_rows_in_flight_are_in_doubt_only_once_their_worker_is_gone(store: Store) -> None:
    tid = _ticket(store)
    _outbox(store, tid, "a")
    _outbox(store, tid, "b")
    for live in ("alive", "rescuer"):
        store.take_lease(WORKER_LEASE + live, live, NOW, NOW + timedelta(seconds=30))
    store.take_lease(WORKER_LEASE + "dead", "dead", NOW - timedelta(minutes=5), NOW)
    store.claim_outbox(NOW, ["maildir"], "alive", limit=1)
    store.claim_outbox(NOW, ["maildir"], "dead", limit=1)
    (doubt,) = store.claim_in_doubt(NOW, "rescuer")
    assert doubt.idem_key == "b"
    assert [r.idem_key for r in store.claim_in_doubt(NOW, "alive")] == ["a"]  # its own
    assert store.outbox_row(doubt.id).claimed_by == "rescuer"
    assert store.claim_in_doubt(NOW + timedelta(seconds=31), "rescuer")[0].idem_key == "a"


def test_a_lease_is_one_holders_until_it_runs_out(store: Store) -> None:
    soon = NOW + timedelta(seconds=30)
    assert store.take_lease("source:imap", "w1", NOW, soon)
    assert store.take_lease("source:imap", "w1", NOW, soon)  # keeping it
    assert not store.take_lease("source:imap", "w2", NOW + timedelta(seconds=29), soon)
    assert store.renew_leases("w1", soon + timedelta(seconds=30)) == {"source:imap"}
    assert not store.take_lease("source:imap", "w2", soon, soon + timedelta(seconds=30))
    later = soon + timedelta(seconds=31)
    assert store.take_lease("source:imap", "w2", later, later + timedelta(seconds=30))
    assert store.renew_leases("w1", later) == set()
    assert store.leases()["source:imap"][0] == "w2"
    assert store.release_leases("w2") == 1
    assert store.leases() == {}


def test_activity_listing_keeps_order(store: Store) -> None:
    tid = _ticket(store)
    for n in range(5):
        store.log(NOW + timedelta(seconds=n), tid, f"a{n}", actor="bot", rule="r")
    assert [a.action for a in store.activity(limit=3)] == ["a2", "a3", "a4"]
    assert store.activity(tid)[0].at == NOW


# -- SQLite's own ----------------------------------------------------------------------------
def test_fresh_file_is_migrated_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "state.db"
    store = Store(path)
    assert store.dialect == Dialect.SQLITE
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
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


def test_upgrade_from_version_1_keeps_planned_sends(tmp_path: Path) -> None:
    """A state file written by the first release migrates with its pending outbox intact."""
    path = tmp_path / "v1.db"
    raw = sqlite3.connect(path)
    for statement in statements(sqlite_sql(MIGRATIONS[0])):
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
    assert store.outbox_counts() == {"pending": 1}
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    raw.close()


# -- PostgreSQL's own ------------------------------------------------------------------------
def test_the_postgres_schema_is_the_same_history(pg_url: str) -> None:
    """Every migration has its PostgreSQL form, and the same tables and columns result."""
    import psycopg

    store = Store(pg_url)
    assert store.dialect == Dialect.POSTGRESQL
    assert "unused-pw" not in store.describe()
    store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        pg_cols = set(conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'schema_version'").fetchall())
    lite = connect(":memory:")
    tables = [r["name"] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")]
    lite_cols = {(t, c["name"]) for t in tables
                 for c in lite.execute(f"PRAGMA table_info({t})").fetchall()}
    assert pg_cols == lite_cols
    assert all(postgres_sql(m) for m in MIGRATIONS)


def test_workers_migrating_at_once_apply_each_step_once(postgres: PostgresServer) -> None:
    url = postgres.new_database(migrated=False)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Store(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_state_copies_between_engines_and_back(tmp_path: Path, pg_url: str) -> None:
    """SQLite -> PostgreSQL -> SQLite: every row of every table, and new ids follow."""
    from bot.store.copy import CHUNK, copy_state, count_rows

    lite = Store(tmp_path / "a.db")
    for n in range(CHUNK + 7):  # more than one chunk
        tid = lite.create_ticket(source="imap", requester=f"r{n}@x", requester_name="R",
                                 subject="s", now=NOW, root_message_id=f"<{n}@x>").id
        lite.record_message(ref=f"imap:INBOX:1:{n}", source="imap", received_at=NOW, now=NOW,
                            status="ticket", content_hash=str(n), ticket_id=tid,
                            raw=b"\x00raw" * 50)
        _outbox(lite, tid, f"k{n}")
        lite.log(NOW, tid, "classified")
    lite.add_timer(key="t", ticket_id=1, kind="check_in", due_at=NOW, now=NOW)
    lite.set_cursor("imap:h:u:INBOX", "1:9", NOW)
    pg = Store(pg_url)
    assert copy_state(lite, pg) == count_rows(lite) == count_rows(pg)
    assert pg.create_ticket(source="maildir", requester="new@x", requester_name="", subject="s",
                            now=NOW, root_message_id=None).id == CHUNK + 8
    back = Store(tmp_path / "b.db")
    copy_state(pg, back)
    assert count_rows(back) == count_rows(pg)
    assert back.quarantined() == [] and back.get_cursor("imap:h:u:INBOX") == "1:9"
    (row,) = back.due_outbox(NOW, ["maildir"], limit=1)
    assert row.payload == b"bytes\x00\xff"


def test_a_lost_postgres_connection_fails_one_step_then_reconnects(pg_url: str) -> None:
    """The database restarted (here: our backend terminated): the step in hand fails and
    rolls back; the next one connects again and finds everything committed before."""
    import psycopg

    store = Store(pg_url)
    tid = _ticket(store)

    def cut() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid != pg_backend_pid()")

    cut()
    with pytest.raises(StoreError), store.transaction():
        store.log(NOW, tid, "lost")
    assert [a.action for a in store.activity(tid)] == []  # reconnected; nothing half-done
    cut()
    with pytest.raises(StoreError):
        store.get_ticket(tid)
    assert store.get_ticket(tid) is not None


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    from tests.servers.postgres import free_port

    url = f"postgresql://bot:s3cret-pw@127.0.0.1:{free_port()}/support"
    with pytest.raises(StoreError, match=r"cannot connect to postgresql://bot@127\.0\.0\.1") as e:
        Store(url)
    assert "s3cret-pw" not in str(e.value) and "\n" not in str(e.value)
