"""The store: every fact the bot must not forget, in one SQLite file.

The ledger (`messages`) makes ingestion idempotent, the outbox makes sending exactly-once
per idempotency key, timers make follow-ups survive restarts, and the activity log
answers "what happened to ticket 42, and why?". Callers group writes with
`transaction()`, so a crash leaves either all of a step or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.clock import from_iso, to_iso
from bot.model import TicketView
from bot.store.db import connect


@dataclass(frozen=True)
class Ticket:
    """A ticket row, as the pipeline and lifecycle read it."""

    id: int
    source: str
    state: str
    requester: str
    requester_name: str
    subject: str
    priority: str | None
    topic: str | None
    tags: tuple[str, ...]
    rules: tuple[str, ...]
    owner: str | None
    root_message_id: str | None
    last_message_id: str | None
    refs: tuple[str, ...]
    mailbox_id: int | None
    conversation_id: int | None
    conversation_number: int | None
    customer_id: int | None
    created_at: datetime
    updated_at: datetime
    first_action_at: datetime | None
    last_requester_at: datetime | None
    last_visible_update_at: datetime | None
    closed_at: datetime | None

    def view(self) -> TicketView:
        return TicketView(
            id=self.id, state=self.state, source=self.source,  # type: ignore[arg-type]
            requester=self.requester, priority=self.priority,  # type: ignore[arg-type]
            topic=self.topic, owner=self.owner, created_at=self.created_at,
        )


def _dt(value: str | None) -> datetime | None:
    return from_iso(value) if value else None


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        id=row["id"], source=row["source"], state=row["state"], requester=row["requester"],
        requester_name=row["requester_name"], subject=row["subject"], priority=row["priority"],
        topic=row["topic"], tags=tuple(json.loads(row["tags"])),
        rules=tuple(json.loads(row["rules"])), owner=row["owner"],
        root_message_id=row["root_message_id"], last_message_id=row["last_message_id"],
        refs=tuple(json.loads(row["refs"])), mailbox_id=row["mailbox_id"],
        conversation_id=row["conversation_id"], conversation_number=row["conversation_number"],
        customer_id=row["customer_id"], created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]), first_action_at=_dt(row["first_action_at"]),
        last_requester_at=_dt(row["last_requester_at"]),
        last_visible_update_at=_dt(row["last_visible_update_at"]),
        closed_at=_dt(row["closed_at"]),
    )


def pack_raw(raw: bytes | None) -> bytes | None:
    return None if raw is None else zlib.compress(raw, 6)


def unpack_raw(blob: bytes | None) -> bytes | None:
    return None if blob is None else zlib.decompress(blob)


class Store:
    """Synchronous, single-writer access to the state file (used from the worker's loop)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.conn = connect(path)
        self._depth = 0

    def close(self) -> None:
        self.conn.close()

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Outermost: BEGIN IMMEDIATE .. COMMIT; nested: a savepoint that rolls back alone."""
        if self._depth == 0:
            self.conn.execute("BEGIN IMMEDIATE")
            begin, commit, rollback = None, "COMMIT", "ROLLBACK"
        else:
            name = f"sp{self._depth}"
            begin = f"SAVEPOINT {name}"
            commit, rollback = f"RELEASE {name}", f"ROLLBACK TO {name}; RELEASE {name}"
            self.conn.execute(begin)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            for stmt in rollback.split("; "):
                self.conn.execute(stmt)
            raise
        self._depth -= 1
        self.conn.execute(commit)

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
        return row

    # -- meta, cursors ------------------------------------------------------------------
    def get_cursor(self, key: str) -> str | None:
        row = self._one("SELECT value FROM cursors WHERE key = ?", key)
        return None if row is None else str(row["value"])

    def set_cursor(self, key: str, value: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO cursors(key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, value, to_iso(now)),
        )

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def meta_items(self, prefix: str) -> dict[str, str]:
        rows = self.conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (prefix + "%",))
        return {r["key"]: r["value"] for r in rows}

    # -- ledger -------------------------------------------------------------------------
    def has_ref(self, ref: str) -> bool:
        return self._one("SELECT 1 FROM messages WHERE ref = ?", ref) is not None

    def find_same_message(self, message_id: str | None, content_hash: str) -> sqlite3.Row | None:
        """A message already in the ledger under another ref (copy, UIDVALIDITY change).

        Same Message-ID *and* same content: the same Message-ID with different content is
        a different message (dropping it would lose mail).
        """
        if message_id:
            return self._one(
                "SELECT id, ticket_id, status FROM messages WHERE message_id = ?"
                " AND content_hash = ? AND status != 'duplicate' LIMIT 1", message_id, content_hash)
        return self._one(
            "SELECT id, ticket_id, status FROM messages WHERE content_hash = ?"
            " AND message_id IS NULL AND status != 'duplicate' LIMIT 1", content_hash)

    def record_message(
        self, *, ref: str, source: str, received_at: datetime, now: datetime, status: str,
        content_hash: str, message_id: str | None = None, from_addr: str = "", subject: str = "",
        reason: str | None = None, ticket_id: int | None = None, raw: bytes | None = None,
        summary: dict[str, Any] | None = None, folder: str | None = None,
        uidvalidity: int | None = None, uid: int | None = None,
        conversation_id: int | None = None, thread_id: int | None = None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO messages(ref, source, folder, uidvalidity, uid, conversation_id,"
            " thread_id, message_id, content_hash, from_addr, subject, received_at, recorded_at,"
            " ticket_id, status, reason, raw, summary)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (ref, source, folder, uidvalidity, uid, conversation_id, thread_id, message_id,
             content_hash, from_addr, subject[:500], to_iso(received_at), to_iso(now), ticket_id,
             status, reason, pack_raw(raw), json.dumps(summary) if summary else None),
        )
        return int(cur.lastrowid or 0)

    def messages_since(self, since: datetime) -> list[sqlite3.Row]:
        """Ticket-opening messages since ``since``, with what replay needs to re-decide them."""
        return list(self.conn.execute(
            "SELECT m.*, t.priority AS t_priority, t.topic AS t_topic, t.owner AS t_owner,"
            " t.rules AS t_rules FROM messages m JOIN tickets t ON t.id = m.ticket_id"
            " WHERE m.status = 'ticket' AND m.received_at >= ? ORDER BY m.id", (to_iso(since),)))

    def ticket_messages(self, ticket_id: int) -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT id, ref, message_id, from_addr, subject, received_at, status, reason"
            " FROM messages WHERE ticket_id = ? ORDER BY id", (ticket_id,)))

    def message_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) AS n FROM messages GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    # -- tickets ------------------------------------------------------------------------
    def create_ticket(
        self, *, source: str, requester: str, requester_name: str, subject: str, now: datetime,
        root_message_id: str | None, refs: Sequence[str] = (), mailbox_id: int | None = None,
        conversation_id: int | None = None, conversation_number: int | None = None,
        customer_id: int | None = None, created_at: datetime | None = None,
    ) -> Ticket:
        created = to_iso(created_at or now)
        cur = self.conn.execute(
            "INSERT INTO tickets(source, state, requester, requester_name, subject,"
            " root_message_id, last_message_id, refs, mailbox_id, conversation_id,"
            " conversation_number, customer_id, created_at, updated_at, last_requester_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (source, "new", requester, requester_name, subject[:500], root_message_id,
             root_message_id, json.dumps(list(refs)[-20:]), mailbox_id, conversation_id,
             conversation_number, customer_id, created, to_iso(now), created),
        )
        ticket_id = int(cur.lastrowid or 0)
        if root_message_id:
            self.add_thread_id(root_message_id, ticket_id)
        ticket = self.get_ticket(ticket_id)
        assert ticket is not None
        return ticket

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        row = self._one("SELECT * FROM tickets WHERE id = ?", ticket_id)
        return None if row is None else _ticket(row)

    def find_ticket(self, key: str) -> Ticket | None:
        """By our id (``42``/``#42``) or, failing that, a Help Scout conversation number."""
        text = key.strip().lstrip("#")
        if not text.isdigit():
            return None
        ticket = self.get_ticket(int(text))
        if ticket is not None:
            return ticket
        row = self._one(
            "SELECT * FROM tickets WHERE conversation_number = ? OR conversation_id = ?",
            int(text), int(text))
        return None if row is None else _ticket(row)

    def ticket_by_conversation(self, conversation_id: int) -> Ticket | None:
        row = self._one("SELECT * FROM tickets WHERE conversation_id = ?", conversation_id)
        return None if row is None else _ticket(row)

    def ticket_by_thread(self, message_ids: Sequence[str]) -> Ticket | None:
        """The ticket any of these Message-IDs (In-Reply-To, References) belongs to."""
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        row = self._one(
            f"SELECT t.* FROM thread_ids x JOIN tickets t ON t.id = x.ticket_id"
            f" WHERE x.message_id IN ({marks}) ORDER BY t.id DESC LIMIT 1", *ids)
        return None if row is None else _ticket(row)

    def add_thread_id(self, message_id: str, ticket_id: int) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO thread_ids(message_id, ticket_id) VALUES (?, ?)",
            (message_id, ticket_id))

    def update_ticket(self, ticket_id: int, now: datetime, **fields: Any) -> None:
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if isinstance(value, datetime):
                value = to_iso(value)
            elif isinstance(value, (list, tuple)):
                value = json.dumps(list(value))
            values[key] = value
        values["updated_at"] = to_iso(now)
        assignments = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE tickets SET {assignments} WHERE id = ?",
                          (*values.values(), ticket_id))

    def mark_visible_update(self, ticket_id: int, now: datetime) -> None:
        """The requester saw something from us: the first time is the first action."""
        at = to_iso(now)
        self.conn.execute(
            "UPDATE tickets SET last_visible_update_at = ?, updated_at = ?,"
            " first_action_at = coalesce(first_action_at, ?) WHERE id = ?",
            (at, at, at, ticket_id))

    def tickets_by_state(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) AS n FROM tickets GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def tickets_since(self, since: datetime) -> list[Ticket]:
        rows = self.conn.execute("SELECT * FROM tickets WHERE created_at >= ? ORDER BY created_at",
                                 (to_iso(since),))
        return [_ticket(r) for r in rows]

    # -- outbox -------------------------------------------------------------------------
    def add_outbox(
        self, *, idem_key: str, ticket_id: int | None, kind: str, channel: str, message_id: str,
        envelope_from: str, recipients: Sequence[str], payload: bytes, now: datetime,
        rule: str | None = None, status: str = "pending", error: str | None = None,
    ) -> int | None:
        """Plan a send; None when this idempotency key was planned before (never twice)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO outbox(idem_key, ticket_id, kind, channel, message_id,"
            " envelope_from, recipients, payload, rule, status, last_error, created_at,"
            " next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (idem_key, ticket_id, kind, channel, message_id, envelope_from,
             json.dumps(list(recipients)), payload, rule, status, error, to_iso(now), to_iso(now)),
        )
        if cur.rowcount == 0:
            return None
        outbox_id = int(cur.lastrowid or 0)
        if status != "suppressed":
            self.conn.executemany(
                "INSERT INTO outbox_recipients(outbox_id, address, created_at) VALUES (?,?,?)",
                [(outbox_id, r.lower(), to_iso(now)) for r in recipients])
        return outbox_id

    def outbox_row(self, outbox_id: int) -> sqlite3.Row | None:
        return self._one("SELECT * FROM outbox WHERE id = ?", outbox_id)

    def due_outbox(self, now: datetime, channels: Collection[str],
                   limit: int = 200) -> list[sqlite3.Row]:
        """Pending rows due by `now` for these channels only, oldest first.

        The channel filter belongs in the query: rows for a channel that is not configured
        (the Maildir after a switch to SMTP, an alert webhook removed) stay pending, and
        filtering them out after the LIMIT would let a backlog of them hide every other row.
        """
        names = sorted(set(channels))
        if not names:
            return []
        marks = ",".join("?" * len(names))
        return list(self.conn.execute(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            f" AND channel IN ({marks}) ORDER BY id LIMIT ?", (to_iso(now), *names, limit)))

    def pending_outbox_channels(self) -> dict[str, int]:
        """How many rows are pending per channel (also those no configured channel sends)."""
        rows = self.conn.execute(
            "SELECT channel, count(*) AS n FROM outbox WHERE status = 'pending' GROUP BY channel")
        return {r["channel"]: r["n"] for r in rows}

    def in_doubt_outbox(self) -> list[sqlite3.Row]:
        """Rows a crash left in 'sending': the server may or may not have them."""
        return list(self.conn.execute("SELECT * FROM outbox WHERE status = 'sending' ORDER BY id"))

    def next_outbox_attempt(self) -> datetime | None:
        row = self._one("SELECT min(next_attempt_at) AS t FROM outbox WHERE status = 'pending'")
        return _dt(row["t"]) if row else None

    def set_outbox_status(self, outbox_id: int, status: str, now: datetime, *,
                          error: str | None = None, next_attempt_at: datetime | None = None,
                          bump_attempts: bool = False) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = coalesce(?, last_error),"
            " attempts = attempts + ?, next_attempt_at = coalesce(?, next_attempt_at),"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            (status, error, 1 if bump_attempts else 0,
             to_iso(next_attempt_at) if next_attempt_at else None, status, to_iso(now), outbox_id),
        )

    def recent_sends_to(self, address: str, since: datetime) -> int:
        row = self._one(
            "SELECT count(*) AS n FROM outbox_recipients WHERE address = ? AND created_at >= ?",
            address.lower(), to_iso(since))
        return int(row["n"]) if row else 0

    def outbox_by_message_ids(self, message_ids: Sequence[str]) -> list[sqlite3.Row]:
        ids = [m for m in message_ids if m]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self.conn.execute(
            f"SELECT * FROM outbox WHERE message_id IN ({marks})", ids))

    def outbox_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) AS n FROM outbox GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    def failed_sends(self, limit: int = 20) -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT id, ticket_id, kind, recipients, last_error, created_at FROM outbox"
            " WHERE status IN ('failed', 'suppressed') ORDER BY id DESC LIMIT ?", (limit,)))

    def ticket_outbox(self, ticket_id: int) -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT id, kind, channel, recipients, status, message_id, created_at, sent_at,"
            " last_error FROM outbox WHERE ticket_id = ? ORDER BY id", (ticket_id,)))

    # -- timers -------------------------------------------------------------------------
    def add_timer(self, *, key: str, ticket_id: int, kind: str, due_at: datetime,
                  now: datetime, note: str | None = None) -> int | None:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO timers(key, ticket_id, kind, due_at, status, created_at, note)"
            " VALUES (?,?,?,?,?,?,?)",
            (key, ticket_id, kind, to_iso(due_at), "pending", to_iso(now), note))
        return cur.lastrowid if cur.rowcount else None

    def due_timers(self, now: datetime, limit: int = 200) -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT * FROM timers WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, id"
            " LIMIT ?", (to_iso(now), limit)))

    def next_timer_due(self) -> datetime | None:
        row = self._one("SELECT min(due_at) AS t FROM timers WHERE status = 'pending'")
        return _dt(row["t"]) if row else None

    def pending_timers(self, ticket_id: int | None = None, limit: int = 20) -> list[sqlite3.Row]:
        if ticket_id is None:
            return list(self.conn.execute(
                "SELECT * FROM timers WHERE status = 'pending' ORDER BY due_at LIMIT ?", (limit,)))
        return list(self.conn.execute(
            "SELECT * FROM timers WHERE status = 'pending' AND ticket_id = ? ORDER BY due_at",
            (ticket_id,)))

    def finish_timer(self, timer_id: int, status: str, now: datetime,
                     note: str | None = None) -> bool:
        """Mark fired/cancelled; False when it was not pending (someone got there first)."""
        cur = self.conn.execute(
            "UPDATE timers SET status = ?, done_at = ?, note = coalesce(?, note)"
            " WHERE id = ? AND status = 'pending'", (status, to_iso(now), note, timer_id))
        return cur.rowcount == 1

    def cancel_timers(self, ticket_id: int, kinds: Sequence[str], now: datetime) -> int:
        marks = ",".join("?" * len(kinds))
        cur = self.conn.execute(
            f"UPDATE timers SET status = 'cancelled', done_at = ? WHERE ticket_id = ?"
            f" AND status = 'pending' AND kind IN ({marks})", (to_iso(now), ticket_id, *kinds))
        return cur.rowcount

    # -- activity log -------------------------------------------------------------------
    def log(self, at: datetime, ticket_id: int | None, action: str, detail: str = "", *,
            actor: str = "bot", rule: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO activity(at, ticket_id, actor, action, rule, detail) VALUES (?,?,?,?,?,?)",
            (to_iso(at), ticket_id, actor, action, rule, detail))

    def activity(self, ticket_id: int | None = None, limit: int = 1000) -> list[sqlite3.Row]:
        if ticket_id is None:
            return list(self.conn.execute(
                "SELECT * FROM activity ORDER BY id DESC LIMIT ?", (limit,)))[::-1]
        return list(self.conn.execute(
            "SELECT * FROM activity WHERE ticket_id = ? ORDER BY id", (ticket_id,)))

    # -- quarantine, undeliverable ------------------------------------------------------
    def quarantine(self, *, ref: str, source: str, raw: bytes | None, error: str,
                   now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO quarantine(ref, source, raw, error, at, status) VALUES (?,?,?,?,?,'held')"
            " ON CONFLICT(ref) DO UPDATE SET status = 'held', error = excluded.error,"
            " at = excluded.at", (ref, source, pack_raw(raw), error[:2000], to_iso(now)))

    def quarantined(self, status: str = "held") -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT id, ref, source, error, at, status FROM quarantine WHERE status = ?"
            " ORDER BY id", (status,)))

    def quarantine_row(self, qid: int) -> sqlite3.Row | None:
        return self._one("SELECT * FROM quarantine WHERE id = ?", qid)

    def set_quarantine_status(self, qid: int, status: str) -> None:
        self.conn.execute("UPDATE quarantine SET status = ? WHERE id = ?", (status, qid))

    def forget_ref(self, ref: str) -> None:
        """Let a quarantined item be ingested again (`supportbot quarantine retry`)."""
        self.conn.execute("DELETE FROM messages WHERE ref = ? AND status = 'quarantined'", (ref,))

    def mark_undeliverable(self, address: str, reason: str, now: datetime) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO undeliverable(address, at, reason) VALUES (?,?,?)",
            (address.lower(), to_iso(now), reason[:500]))
        return cur.rowcount == 1

    def is_undeliverable(self, address: str) -> bool:
        return self._one("SELECT 1 FROM undeliverable WHERE address = ?",
                         address.lower()) is not None

    def undeliverable(self) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM undeliverable ORDER BY at"))
