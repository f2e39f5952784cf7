"""The store: every fact the bot must not forget, on SQLite or PostgreSQL.

The ledger (`messages`) makes ingestion idempotent, the outbox makes sending exactly-once
per idempotency key, timers make follow-ups survive restarts, and the activity log
answers "what happened to ticket 42, and why?". Callers group writes with
`transaction()`, so a crash leaves either all of a step or none of it.

The SQL is written once for both engines (see `bot.store.database`). Rows come back typed
(`bot.store.rows`). With several workers on one PostgreSQL database, outbox rows and timers
are *claimed* (`SELECT ... FOR UPDATE SKIP LOCKED`) and sources are read under a lease.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from bot.clock import to_iso
from bot.mail.addresses import cap_key
from bot.store.database import Database, Dialect, Row, SqlValue, open_database
from bot.store.rows import (
    ActivityRow,
    Cols,
    LedgerEntry,
    LedgerMessage,
    OutboxRow,
    OutboxSummary,
    QuarantineRow,
    Ticket,
    TimerRow,
    UndeliverableRow,
    pack_raw,
    unpack_raw,
)
from bot.vocab import OutboxStatus, TicketState, TimerStatus

WORKER_LEASE = "worker:"  # + holder: the lease that says a worker is alive
# Raw mail this large is kept once, in `blobs`, however many rows carry it (the ledger, a
# forward, a relay): a forwarded 31 MB message used to add 63 MB to the store.
BLOB_MIN = 64 * 1024
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_RAW = ("coalesce(m.raw, (SELECT b.data FROM blobs b WHERE b.hash = m.raw_hash)) AS raw")


def _crlf(data: bytes) -> bytes:
    return _NEWLINES.sub(b"\r\n", data)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _counts(rows: list[Row], key: str) -> dict[str, int]:
    return {Cols(r).text(key): Cols(r).num("n") for r in rows}


def _stored(value: object) -> SqlValue:
    """A ticket field as stored: times ISO-8601, lists JSON."""
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    assert value is None or isinstance(value, (str, int, float, bytes)), value
    return value


class Store:
    """Synchronous access to the state (used from the worker's loop), whichever engine."""

    def __init__(self, target: Path | str) -> None:
        """``target``: a SQLite file path or a ``postgresql://`` URL."""
        self.target = target
        self.db: Database = open_database(target)
        self._depth = 0

    @property
    def dialect(self) -> Dialect:
        return self.db.dialect

    def describe(self) -> str:
        return self.db.describe()

    def close(self) -> None:
        self.db.close()

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Outermost: a write transaction; nested: a savepoint that rolls back alone."""
        name = f"sp{self._depth}"
        if self._depth == 0:
            self.db.begin()
        else:
            self.db.run(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.rollback()
            else:
                self.db.run(f"ROLLBACK TO SAVEPOINT {name}")
                self.db.run(f"RELEASE SAVEPOINT {name}")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.commit()
        else:
            self.db.run(f"RELEASE SAVEPOINT {name}")

    def follow_ids(self, table: str) -> None:
        """After rows were written with their own ids: the next automatic id comes after them.

        SQLite takes max(id) + 1 by itself; a PostgreSQL identity column keeps counting
        from where it was and would hand out an id already taken.
        """
        if self.dialect == Dialect.POSTGRESQL:
            self.db.one(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")

    def is_empty(self) -> bool:
        """Nothing read, no ticket: a first start, or a store that was lost and replaced."""
        return all(self.db.one(f"SELECT 1 FROM {table} LIMIT 1") is None
                   for table in ("cursors", "messages", "tickets"))

    # -- meta, cursors ------------------------------------------------------------------
    def get_cursor(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM cursors WHERE key = ?", (key,))
        return None if row is None else Cols(row).text("value")

    def set_cursor(self, key: str, value: str, now: datetime) -> None:
        self.db.run(
            "INSERT INTO cursors(key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, value, to_iso(now)),
        )

    def get_meta(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else Cols(row).text("value")

    def set_meta(self, key: str, value: str) -> None:
        self.db.run(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def meta_items(self, prefix: str) -> dict[str, str]:
        rows = self.db.rows("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                            (len(prefix), prefix))
        return {Cols(r).text("key"): Cols(r).text("value") for r in rows}

    # -- ledger -------------------------------------------------------------------------
    def has_ref(self, ref: str) -> bool:
        return self.db.one("SELECT 1 AS x FROM messages WHERE ref = ?", (ref,)) is not None

    def find_same_message(self, message_id: str | None, content_hash: str) -> LedgerEntry | None:
        """A message already in the ledger under another ref (copy, UIDVALIDITY change).

        Same Message-ID *and* same content: the same Message-ID with different content is
        a different message (dropping it would lose mail).
        """
        if message_id:
            row = self.db.one(
                f"SELECT {LedgerEntry.COLUMNS} FROM messages WHERE message_id = ?"
                " AND content_hash = ? AND status != 'duplicate' LIMIT 1",
                (message_id, content_hash))
        else:
            row = self.db.one(
                f"SELECT {LedgerEntry.COLUMNS} FROM messages WHERE content_hash = ?"
                " AND message_id IS NULL AND status != 'duplicate' LIMIT 1", (content_hash,))
        return None if row is None else LedgerEntry.of(row)

    def record_message(
        self, *, ref: str, source: str, received_at: datetime, now: datetime, status: str,
        content_hash: str, message_id: str | None = None, from_addr: str = "", subject: str = "",
        reason: str | None = None, ticket_id: int | None = None, raw: bytes | None = None,
        summary: dict[str, object] | None = None, folder: str | None = None,
        uidvalidity: int | None = None, uid: int | None = None,
        conversation_id: int | None = None, thread_id: int | None = None,
    ) -> int:
        raw_hash = self._put_blob(raw, now) if raw is not None and len(raw) >= BLOB_MIN else None
        row = self.db.one(
            "INSERT INTO messages(ref, source, folder, uidvalidity, uid, conversation_id,"
            " thread_id, message_id, content_hash, from_addr, subject, received_at, recorded_at,"
            " ticket_id, status, reason, raw, raw_hash, summary)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (ref, source, folder, uidvalidity, uid, conversation_id, thread_id, message_id,
             content_hash, from_addr, subject[:500], to_iso(received_at), to_iso(now), ticket_id,
             status, reason, None if raw_hash else pack_raw(raw), raw_hash,
             json.dumps(summary) if summary else None),
        )
        assert row is not None
        return Cols(row).num("id")

    def messages_since(self, since: datetime) -> list[LedgerMessage]:
        """Ticket-opening messages since ``since``, with what replay needs to re-decide them."""
        cols = ", ".join(f"m.{c.strip()}" for c in LedgerEntry.COLUMNS.split(","))
        rows = self.db.rows(
            f"SELECT {cols}, {_RAW}, m.summary FROM messages m JOIN tickets t ON t.id = m.ticket_id"
            " WHERE m.status = 'ticket' AND m.received_at >= ? ORDER BY m.id", (to_iso(since),))
        return [LedgerMessage.of(r) for r in rows]

    def ledger_since(self, since: datetime) -> list[LedgerEntry]:
        """Every message recorded since ``since``, whatever became of it (for `check`)."""
        rows = self.db.rows(f"SELECT {LedgerEntry.COLUMNS} FROM messages WHERE received_at >= ?"
                            " ORDER BY id", (to_iso(since),))
        return [LedgerEntry.of(r) for r in rows]

    def ticket_messages(self, ticket_id: int) -> list[LedgerEntry]:
        return [LedgerEntry.of(r) for r in self.db.rows(
            f"SELECT {LedgerEntry.COLUMNS} FROM messages WHERE ticket_id = ? ORDER BY id",
            (ticket_id,))]

    def messages_with_status(self, status: str) -> list[LedgerEntry]:
        return [LedgerEntry.of(r) for r in self.db.rows(
            f"SELECT {LedgerEntry.COLUMNS} FROM messages WHERE status = ? ORDER BY id",
            (status,))]

    def conversation_rows(self, ticket_id: int) -> list[LedgerMessage]:
        """The ticket's opening message and the replies on it, with their content, in order."""
        cols = ", ".join(f"m.{c.strip()}" for c in LedgerEntry.COLUMNS.split(","))
        return [LedgerMessage.of(r) for r in self.db.rows(
            f"SELECT {cols}, {_RAW}, m.summary FROM messages m WHERE m.ticket_id = ?"
            " AND m.status IN ('ticket', 'reply') ORDER BY m.id", (ticket_id,))]

    def message_counts(self) -> dict[str, int]:
        return _counts(self.db.rows(
            "SELECT status, count(*) AS n FROM messages GROUP BY status"), "status")

    # -- tickets ------------------------------------------------------------------------
    def create_ticket(
        self, *, source: str, requester: str, requester_name: str, subject: str, now: datetime,
        root_message_id: str | None, refs: Sequence[str] = (), mailbox_id: int | None = None,
        conversation_id: int | None = None, conversation_number: int | None = None,
        customer_id: int | None = None, created_at: datetime | None = None,
        ticket_id: int | None = None,
    ) -> Ticket:
        """A new ticket; ``ticket_id`` only when rebuilding one whose number mail already names."""
        created = to_iso(created_at or now)
        values: dict[str, SqlValue] = {
            "source": source, "state": TicketState.NEW, "requester": requester,
            "requester_name": requester_name, "subject": subject[:500],
            "root_message_id": root_message_id, "last_message_id": root_message_id,
            "refs": json.dumps(list(refs)[-20:]), "mailbox_id": mailbox_id,
            "conversation_id": conversation_id, "conversation_number": conversation_number,
            "customer_id": customer_id, "created_at": created, "updated_at": to_iso(now),
            "last_requester_at": created}
        if ticket_id is not None:
            values["id"] = ticket_id
        row = self.db.one(f"INSERT INTO tickets({', '.join(values)})"
                          f" VALUES ({_marks(list(values))}) RETURNING *", tuple(values.values()))
        assert row is not None
        ticket = Ticket.of(row)
        if ticket_id is not None:
            self.follow_ids("tickets")
        if root_message_id:
            self.add_thread_id(root_message_id, ticket.id)
        return ticket

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        row = self.db.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        return None if row is None else Ticket.of(row)

    def find_ticket(self, key: str) -> Ticket | None:
        """By our id (``42``/``#42``) or, failing that, a Help Scout conversation number."""
        text = key.strip().lstrip("#")
        if not (text.isascii() and text.isdigit()) or len(text) > 18:  # SQLite's integers
            return None
        ticket = self.get_ticket(int(text))
        if ticket is not None:
            return ticket
        row = self.db.one(
            "SELECT * FROM tickets WHERE conversation_number = ? OR conversation_id = ?",
            (int(text), int(text)))
        return None if row is None else Ticket.of(row)

    def ticket_by_conversation(self, conversation_id: int) -> Ticket | None:
        row = self.db.one("SELECT * FROM tickets WHERE conversation_id = ?", (conversation_id,))
        return None if row is None else Ticket.of(row)

    def ticket_by_thread(self, message_ids: Sequence[str]) -> Ticket | None:
        """The ticket any of these Message-IDs (In-Reply-To, References) belongs to."""
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        row = self.db.one(
            f"SELECT t.* FROM thread_ids x JOIN tickets t ON t.id = x.ticket_id"
            f" WHERE x.message_id IN ({_marks(ids)}) ORDER BY t.id DESC LIMIT 1", ids)
        return None if row is None else Ticket.of(row)

    def add_thread_id(self, message_id: str, ticket_id: int) -> None:
        self.db.run(
            "INSERT INTO thread_ids(message_id, ticket_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (message_id, ticket_id))

    def update_ticket(self, ticket_id: int, now: datetime, **fields: object) -> None:
        values = {key: _stored(value) for key, value in fields.items()}
        values["updated_at"] = to_iso(now)
        assignments = ", ".join(f"{k} = ?" for k in values)
        self.db.run(f"UPDATE tickets SET {assignments} WHERE id = ?",
                    (*values.values(), ticket_id))

    def mark_visible_update(self, ticket_id: int, now: datetime) -> None:
        """The requester saw something from us: the first time is the first action."""
        at = to_iso(now)
        self.db.run(
            "UPDATE tickets SET last_visible_update_at = ?, updated_at = ?,"
            " first_action_at = coalesce(first_action_at, ?) WHERE id = ?",
            (at, at, at, ticket_id))

    def tickets_by_state(self) -> dict[str, int]:
        return _counts(self.db.rows(
            "SELECT state, count(*) AS n FROM tickets GROUP BY state"), "state")

    def tickets_since(self, since: datetime) -> list[Ticket]:
        return [Ticket.of(r) for r in self.db.rows(
            "SELECT * FROM tickets WHERE created_at >= ? ORDER BY created_at", (to_iso(since),))]

    # -- large mail, kept once; retention ------------------------------------------------
    def _put_blob(self, data: bytes, now: datetime) -> str:
        key = hashlib.sha256(data).hexdigest()
        self.db.run("INSERT INTO blobs(hash, data, size, created_at) VALUES (?,?,?,?)"
                    " ON CONFLICT DO NOTHING", (key, pack_raw(data), len(data), to_iso(now)))
        return key

    def _blob(self, key: str) -> bytes:
        row = self.db.one("SELECT data FROM blobs WHERE hash = ?", (key,))
        data = None if row is None else unpack_raw(Cols(row).opt_blob("data"))
        return data or b""

    def _whole(self, rows: list[Row]) -> list[OutboxRow]:
        """Outbox rows with the original they carry put back where it was cut out."""
        out: list[OutboxRow] = []
        originals: dict[str, bytes] = {}
        for row in rows:
            item = OutboxRow.of(row)
            c = Cols(row)
            key = c.opt_text("original_hash")
            if key is not None:
                original = originals.get(key)
                if original is None:
                    original = originals[key] = self._blob(key)
                if c.opt_num("original_crlf"):
                    original = _crlf(original)
                at, length = c.num("original_at"), c.num("original_len")
                item = replace(item, payload=item.payload[:at] + original[:length]
                               + item.payload[at:])
            out.append(item)
        return out

    def prune_raw(self, before: datetime) -> dict[str, int]:
        """Raw bodies older than ``before`` go; the ledger rows, tickets, outbox rows (their
        status, recipients, Message-ID) and the activity log stay. Mail still to be sent, or
        held in quarantine for an operator, keeps its bytes. Returns what was pruned."""
        cutoff = to_iso(before)
        done = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.SUPPRESSED)
        with self.transaction():
            messages = self.db.run(
                "UPDATE messages SET raw = NULL, raw_hash = NULL WHERE received_at < ?"
                " AND (raw IS NOT NULL OR raw_hash IS NOT NULL)", (cutoff,))
            outbox = self.db.run(
                "UPDATE outbox SET payload = ?, original_hash = NULL, original_at = NULL,"
                " original_len = NULL, original_crlf = NULL WHERE created_at < ?"
                f" AND status IN ({_marks(done)})"
                " AND (length(payload) > 0 OR original_hash IS NOT NULL)",
                (b"", cutoff, *done))
            quarantine = self.db.run(
                "UPDATE quarantine SET raw = NULL WHERE at < ? AND status != 'held'"
                " AND raw IS NOT NULL", (cutoff,))
            blobs = self.db.run(
                "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM messages m"
                " WHERE m.raw_hash = blobs.hash) AND NOT EXISTS (SELECT 1 FROM outbox o"
                " WHERE o.original_hash = blobs.hash)")
        return {"messages": messages, "outbox": outbox, "quarantine": quarantine,
                "blobs": blobs}

    def raw_bytes(self) -> int:
        """The bytes raw mail takes in the store, as stored (compressed where it is)."""
        total = 0
        for sql in ("SELECT coalesce(sum(length(raw)), 0) AS n FROM messages",
                    "SELECT coalesce(sum(length(payload)), 0) AS n FROM outbox",
                    "SELECT coalesce(sum(length(data)), 0) AS n FROM blobs",
                    "SELECT coalesce(sum(length(raw)), 0) AS n FROM quarantine"):
            row = self.db.one(sql)
            total += 0 if row is None else Cols(row).num("n")
        return total

    # -- outbox -------------------------------------------------------------------------
    def add_outbox(
        self, *, idem_key: str, ticket_id: int | None, kind: str, channel: str, message_id: str,
        envelope_from: str, recipients: Sequence[str], payload: bytes, now: datetime,
        rule: str | None = None, status: str = OutboxStatus.PENDING, error: str | None = None,
        original: bytes | None = None,
    ) -> int | None:
        """Plan a send; None when this idempotency key was planned before (never twice).

        ``original``: the requester's message as received, when ``payload`` carries it (a
        forward, a relay). A large one is kept once, as the ledger keeps it, and the payload
        without it; the row reads back whole. It is looked for as received and with its line
        ends as on the wire (CRLF: mail read from a Maildir has bare LFs), each with and
        without its last CRLF, which belongs to the boundary after a MIME part (RFC 2046).
        """
        hash_, at, length, crlf = None, None, None, None
        if original is not None and len(original) >= BLOB_MIN:
            wire = _crlf(original)
            for part, normalised in ((original, 0), (original.removesuffix(b"\r\n"), 0),
                                     (wire, 1), (wire.removesuffix(b"\r\n"), 1)):
                found = payload.find(part)
                if found >= 0:
                    hash_, at, length, crlf = self._put_blob(original, now), found, len(part), \
                        normalised
                    payload = payload[:found] + payload[found + length:]
                    break
        row = self.db.one(
            "INSERT INTO outbox(idem_key, ticket_id, kind, channel, message_id,"
            " envelope_from, recipients, payload, rule, status, last_error, created_at,"
            " next_attempt_at, original_hash, original_at, original_len, original_crlf)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT DO NOTHING RETURNING id",
            (idem_key, ticket_id, kind, channel, message_id, envelope_from,
             json.dumps(list(recipients)), payload, rule, status, error, to_iso(now), to_iso(now),
             hash_, at, length, crlf),
        )
        if row is None:
            return None
        outbox_id = Cols(row).num("id")
        if status != OutboxStatus.SUPPRESSED:
            self.db.run_many(
                "INSERT INTO outbox_recipients(outbox_id, address, cap_key, domain, created_at)"
                " VALUES (?,?,?,?,?)",
                [(outbox_id, r.lower(), cap_key(r), r.rpartition("@")[2].lower(), to_iso(now))
                 for r in recipients])
        return outbox_id

    def outbox_row(self, outbox_id: int) -> OutboxRow | None:
        row = self.db.one("SELECT * FROM outbox WHERE id = ?", (outbox_id,))
        return None if row is None else self._whole([row])[0]

    def due_outbox(self, now: datetime, channels: Collection[str],
                   limit: int = 200) -> list[OutboxRow]:
        """Pending rows due by `now` for these channels only, oldest first.

        The channel filter belongs in the query: rows for a channel that is not configured
        (the Maildir after a switch to SMTP, an alert webhook removed) stay pending, and
        filtering them out after the LIMIT would let a backlog of them hide every other row.
        """
        return self._due_outbox(now, channels, limit, claim="")

    def _due_outbox(self, now: datetime, channels: Collection[str], limit: int,
                    claim: str) -> list[OutboxRow]:
        names = sorted(set(channels))
        if not names:
            return []
        return self._whole(self.db.rows(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            f" AND channel IN ({_marks(names)}) ORDER BY id LIMIT ?{claim}",
            (to_iso(now), *names, limit)))

    def claim_outbox(self, now: datetime, channels: Collection[str], holder: str,
                     limit: int = 200) -> list[OutboxRow]:
        """Take due rows for sending: each marked `sending` by ``holder``, in one commit.

        On PostgreSQL a row another worker is claiming right now is skipped, not waited for,
        so two workers never take the same row and never queue behind each other.
        """
        with self.transaction():
            rows = self._due_outbox(now, channels, limit, claim=self.db.claim_clause)
            ids = [row.id for row in rows]
            if ids:
                self.db.run(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                    f" claimed_by = ? WHERE id IN ({_marks(ids)})", (holder, *ids))
        return rows

    def claim_in_doubt(self, now: datetime, holder: str) -> list[OutboxRow]:
        """Rows left in `sending` by a worker that is gone (its lease ran out), now ours.

        The server may or may not have them; the caller checks and resends or marks them.
        Another live worker's rows in flight are never taken; ``holder``'s own are, because
        the caller asks between its sends (a step that failed after sending left them).
        """
        with self.transaction():
            rows = self._whole(self.db.rows(
                "SELECT * FROM outbox o WHERE status = 'sending' AND (claimed_by IS NULL"
                " OR claimed_by = ? OR NOT EXISTS (SELECT 1 FROM leases l"
                " WHERE l.name = ? || o.claimed_by AND l.expires_at > ?))"
                f" ORDER BY id{self.db.claim_clause}", (holder, WORKER_LEASE, to_iso(now))))
            ids = [row.id for row in rows]
            if ids:
                self.db.run(f"UPDATE outbox SET claimed_by = ? WHERE id IN ({_marks(ids)})",
                            (holder, *ids))
        return rows

    def pending_outbox_channels(self) -> dict[str, int]:
        """How many rows are pending per channel (also those no configured channel sends)."""
        return _counts(self.db.rows(
            "SELECT channel, count(*) AS n FROM outbox WHERE status = 'pending'"
            " GROUP BY channel"), "channel")

    def in_doubt_outbox(self) -> list[OutboxRow]:
        """Rows in 'sending': in flight now, or left by a crash (the server may have them)."""
        return self._whole(self.db.rows(
            "SELECT * FROM outbox WHERE status = 'sending' ORDER BY id"))

    def retry_pending_now(self, now: datetime) -> int:
        """Every row waiting for a retry becomes due now (`supportbot outbox retry`)."""
        with self.transaction():
            return self.db.run(
                "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'"
                " AND next_attempt_at > ?", (to_iso(now), to_iso(now)))

    def next_outbox_attempt(self) -> datetime | None:
        row = self.db.one("SELECT min(next_attempt_at) AS t FROM outbox WHERE status = 'pending'")
        return None if row is None else Cols(row).opt_time("t")

    def set_outbox_status(self, outbox_id: int, status: str, now: datetime, *,
                          error: str | None = None, next_attempt_at: datetime | None = None,
                          bump_attempts: bool = False) -> None:
        self.db.run(
            "UPDATE outbox SET status = ?, last_error = coalesce(?, last_error),"
            " attempts = attempts + ?, next_attempt_at = coalesce(?, next_attempt_at),"
            " sent_at = CASE WHEN ? = 1 THEN ? ELSE sent_at END WHERE id = ?",
            (status, error, 1 if bump_attempts else 0,
             to_iso(next_attempt_at) if next_attempt_at else None,
             1 if status == OutboxStatus.SENT else 0, to_iso(now), outbox_id),
        )

    def recent_sends_to(self, address: str, since: datetime) -> int:
        """Messages planned since ``since`` to the mailbox ``address`` reaches (`cap_key`)."""
        row = self.db.one(
            "SELECT count(*) AS n FROM outbox_recipients WHERE cap_key = ? AND created_at >= ?",
            (cap_key(address), to_iso(since)))
        return 0 if row is None else Cols(row).num("n")

    def recent_sends_to_domain(self, domain: str, since: datetime) -> int:
        row = self.db.one(
            "SELECT count(*) AS n FROM outbox_recipients WHERE domain = ? AND created_at >= ?",
            (domain.lower(), to_iso(since)))
        return 0 if row is None else Cols(row).num("n")

    def outbox_by_message_ids(self, message_ids: Sequence[str]) -> list[OutboxSummary]:
        ids = [m for m in message_ids if m]
        if not ids:
            return []
        return [OutboxSummary.of(r) for r in self.db.rows(
            f"SELECT {OutboxSummary.COLUMNS} FROM outbox WHERE message_id IN ({_marks(ids)})",
            ids)]

    def outbox_counts(self) -> dict[str, int]:
        return _counts(self.db.rows(
            "SELECT status, count(*) AS n FROM outbox GROUP BY status"), "status")

    def failed_sends(self, limit: int = 20) -> list[OutboxSummary]:
        return [OutboxSummary.of(r) for r in self.db.rows(
            f"SELECT {OutboxSummary.COLUMNS} FROM outbox"
            " WHERE status IN ('failed', 'suppressed') ORDER BY id DESC LIMIT ?", (limit,))]

    def ticket_outbox(self, ticket_id: int) -> list[OutboxSummary]:
        return [OutboxSummary.of(r) for r in self.db.rows(
            f"SELECT {OutboxSummary.COLUMNS} FROM outbox WHERE ticket_id = ? ORDER BY id",
            (ticket_id,))]

    def stranded_tickets(self, skip_states: Sequence[str]) -> list[int]:
        """Tickets not in ``skip_states`` with no owner and nothing pending: no unsent
        outbox row and no pending timer (see ``bot.tickets.stranded``)."""
        rows = self.db.rows(
            f"SELECT t.id FROM tickets t WHERE t.state NOT IN ({_marks(skip_states)})"
            " AND (t.owner IS NULL OR t.owner = '')"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.ticket_id = t.id"
            "                 AND o.status IN ('pending', 'sending'))"
            " AND NOT EXISTS (SELECT 1 FROM timers m WHERE m.ticket_id = t.id"
            "                 AND m.status = 'pending')"
            " ORDER BY t.id", tuple(skip_states))
        return [Cols(r).num("id") for r in rows]

    # -- timers -------------------------------------------------------------------------
    def add_timer(self, *, key: str, ticket_id: int, kind: str, due_at: datetime,
                  now: datetime, note: str | None = None) -> int | None:
        row = self.db.one(
            "INSERT INTO timers(key, ticket_id, kind, due_at, status, created_at, note)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
            (key, ticket_id, kind, to_iso(due_at), TimerStatus.PENDING, to_iso(now), note))
        return None if row is None else Cols(row).num("id")

    def due_timers(self, now: datetime, limit: int = 200) -> list[TimerRow]:
        return [TimerRow.of(r) for r in self.db.rows(
            "SELECT * FROM timers WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, id"
            " LIMIT ?", (to_iso(now), limit))]

    def claim_timer(self, timer_id: int) -> TimerRow | None:
        """Inside the transaction that fires it: the timer, if still pending and not being
        fired by another worker right now (which then does it; we skip it)."""
        row = self.db.one(
            f"SELECT * FROM timers WHERE id = ? AND status = 'pending'{self.db.claim_clause}",
            (timer_id,))
        return None if row is None else TimerRow.of(row)

    def next_timer_due(self) -> datetime | None:
        row = self.db.one("SELECT min(due_at) AS t FROM timers WHERE status = 'pending'")
        return None if row is None else Cols(row).opt_time("t")

    def pending_timers(self, ticket_id: int | None = None, limit: int = 20) -> list[TimerRow]:
        if ticket_id is None:
            rows = self.db.rows(
                "SELECT * FROM timers WHERE status = 'pending' ORDER BY due_at LIMIT ?", (limit,))
        else:
            rows = self.db.rows(
                "SELECT * FROM timers WHERE status = 'pending' AND ticket_id = ? ORDER BY due_at",
                (ticket_id,))
        return [TimerRow.of(r) for r in rows]

    def failed_timers(self, limit: int = 20) -> list[TimerRow]:
        """Timers that raised when they fired, newest first, with the reason in ``note``."""
        return [TimerRow.of(r) for r in self.db.rows(
            "SELECT * FROM timers WHERE status = 'failed' ORDER BY done_at DESC, id DESC"
            " LIMIT ?", (limit,))]

    def finish_timer(self, timer_id: int, status: str, now: datetime,
                     note: str | None = None) -> bool:
        """Mark fired/cancelled; False when it was not pending (someone got there first)."""
        return self.db.run(
            "UPDATE timers SET status = ?, done_at = ?, note = coalesce(?, note)"
            " WHERE id = ? AND status = 'pending'", (status, to_iso(now), note, timer_id)) == 1

    def cancel_timers(self, ticket_id: int, kinds: Sequence[str], now: datetime) -> int:
        return self.db.run(
            f"UPDATE timers SET status = 'cancelled', done_at = ? WHERE ticket_id = ?"
            f" AND status = 'pending' AND kind IN ({_marks(kinds)})",
            (to_iso(now), ticket_id, *kinds))

    # -- leases: one worker per source, and who is alive -------------------------------
    def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold ``name`` until ``until``: True if it was free, expired or already ours."""
        return self.db.run(
            "INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at"
            " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
            (name, holder, to_iso(until), to_iso(now))) == 1

    def renew_leases(self, holder: str, until: datetime) -> set[str]:
        """Extend everything ``holder`` holds; returns the names still held."""
        rows = self.db.rows("UPDATE leases SET expires_at = ? WHERE holder = ? RETURNING name",
                            (to_iso(until), holder))
        return {Cols(r).text("name") for r in rows}

    def release_leases(self, holder: str | None = None) -> int:
        """Give up what ``holder`` holds (every lease when None: no one else is alive)."""
        if holder is None:
            return self.db.run("DELETE FROM leases")
        return self.db.run("DELETE FROM leases WHERE holder = ?", (holder,))

    def leases(self) -> dict[str, tuple[str, datetime]]:
        return {Cols(r).text("name"): (Cols(r).text("holder"), Cols(r).time("expires_at"))
                for r in self.db.rows("SELECT name, holder, expires_at FROM leases ORDER BY name")}

    # -- activity log -------------------------------------------------------------------
    def log(self, at: datetime, ticket_id: int | None, action: str, detail: str = "", *,
            actor: str = "bot", rule: str | None = None) -> None:
        self.db.run(
            "INSERT INTO activity(at, ticket_id, actor, action, rule, detail) VALUES (?,?,?,?,?,?)",
            (to_iso(at), ticket_id, actor, action, rule, detail))

    def activity(self, ticket_id: int | None = None, limit: int = 1000) -> list[ActivityRow]:
        if ticket_id is None:
            rows = self.db.rows("SELECT * FROM activity ORDER BY id DESC LIMIT ?", (limit,))[::-1]
        else:
            rows = self.db.rows("SELECT * FROM activity WHERE ticket_id = ? ORDER BY id",
                                (ticket_id,))
        return [ActivityRow.of(r) for r in rows]

    # -- quarantine, undeliverable ------------------------------------------------------
    def quarantine(self, *, ref: str, source: str, raw: bytes | None, error: str,
                   now: datetime) -> None:
        self.db.run(
            "INSERT INTO quarantine(ref, source, raw, error, at, status) VALUES (?,?,?,?,?,'held')"
            " ON CONFLICT(ref) DO UPDATE SET status = 'held', error = excluded.error,"
            " at = excluded.at", (ref, source, pack_raw(raw), error[:2000], to_iso(now)))

    def quarantined(self, status: str = "held") -> list[QuarantineRow]:
        return [QuarantineRow.of(r) for r in self.db.rows(
            "SELECT * FROM quarantine WHERE status = ? ORDER BY id", (status,))]

    def quarantine_row(self, qid: int) -> QuarantineRow | None:
        row = self.db.one("SELECT * FROM quarantine WHERE id = ?", (qid,))
        return None if row is None else QuarantineRow.of(row)

    def set_quarantine_status(self, qid: int, status: str) -> None:
        self.db.run("UPDATE quarantine SET status = ? WHERE id = ?", (status, qid))

    def forget_ref(self, ref: str) -> None:
        """Let a quarantined item be ingested again (`supportbot quarantine retry`)."""
        self.db.run("DELETE FROM messages WHERE ref = ? AND status = 'quarantined'", (ref,))

    def mark_undeliverable(self, address: str, reason: str, now: datetime) -> bool:
        return self.db.run(
            "INSERT INTO undeliverable(address, at, reason) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING", (address.lower(), to_iso(now), reason[:500])) == 1

    def is_undeliverable(self, address: str) -> bool:
        return self.db.one("SELECT 1 AS x FROM undeliverable WHERE address = ?",
                           (address.lower(),)) is not None

    def undeliverable(self) -> list[UndeliverableRow]:
        return [UndeliverableRow.of(r)
                for r in self.db.rows("SELECT * FROM undeliverable ORDER BY at")]
