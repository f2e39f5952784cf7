"""Opening the SQLite file and migrating its schema.

WAL so readers (`status`, `log`) never block the worker; the file is created owner-only
because it holds customers' mail. Migrations are numbered SQL scripts applied in order and
recorded in `PRAGMA user_version`, each in its own transaction.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE cursors (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        state TEXT NOT NULL,
        requester TEXT NOT NULL,
        requester_name TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        priority TEXT,
        topic TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        rules TEXT NOT NULL DEFAULT '[]',
        owner TEXT,
        root_message_id TEXT,
        last_message_id TEXT,
        refs TEXT NOT NULL DEFAULT '[]',
        mailbox_id INTEGER,
        conversation_id INTEGER UNIQUE,
        conversation_number INTEGER,
        customer_id INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        first_action_at TEXT,
        last_requester_at TEXT,
        last_visible_update_at TEXT,
        closed_at TEXT
    );
    CREATE INDEX tickets_state ON tickets(state);
    CREATE INDEX tickets_number ON tickets(conversation_number);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        folder TEXT,
        uidvalidity INTEGER,
        uid INTEGER,
        conversation_id INTEGER,
        thread_id INTEGER,
        message_id TEXT,
        content_hash TEXT NOT NULL,
        from_addr TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        ticket_id INTEGER REFERENCES tickets(id),
        status TEXT NOT NULL,
        reason TEXT,
        raw BLOB,
        summary TEXT
    );
    CREATE INDEX messages_mid ON messages(message_id);
    CREATE INDEX messages_hash ON messages(content_hash);
    CREATE INDEX messages_ticket ON messages(ticket_id);
    CREATE INDEX messages_received ON messages(received_at);
    CREATE TABLE thread_ids (
        message_id TEXT PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        idem_key TEXT NOT NULL UNIQUE,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        message_id TEXT NOT NULL,
        envelope_from TEXT NOT NULL DEFAULT '',
        recipients TEXT NOT NULL DEFAULT '[]',
        payload BLOB NOT NULL,
        rule TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_mid ON outbox(message_id);
    CREATE TABLE outbox_recipients (
        outbox_id INTEGER NOT NULL REFERENCES outbox(id),
        address TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX outbox_recipients_addr ON outbox_recipients(address, created_at);
    CREATE TABLE timers (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        kind TEXT NOT NULL,
        due_at TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        done_at TEXT,
        note TEXT
    );
    CREATE INDEX timers_due ON timers(status, due_at);
    CREATE TABLE activity (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        ticket_id INTEGER,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        rule TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX activity_ticket ON activity(ticket_id, id);
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        raw BLOB,
        error TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE TABLE undeliverable (
        address TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: outbox rows need not belong to a ticket (the scheduled report, team notices)
    """
    CREATE TABLE outbox_v2 (
        id INTEGER PRIMARY KEY,
        idem_key TEXT NOT NULL UNIQUE,
        ticket_id INTEGER REFERENCES tickets(id),
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        message_id TEXT NOT NULL,
        envelope_from TEXT NOT NULL DEFAULT '',
        recipients TEXT NOT NULL DEFAULT '[]',
        payload BLOB NOT NULL,
        rule TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT
    );
    INSERT INTO outbox_v2 SELECT * FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v2 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_mid ON outbox(message_id);
    """,
    # 3: cancelling a ticket's timers must not scan every pending timer
    """
    CREATE INDEX timers_ticket ON timers(ticket_id, status);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating owner-only if new) and migrate the store at ``path``."""
    if str(path) != ":memory:":
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    old_umask = os.umask(0o077)  # the -wal and -shm files inherit owner-only too
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a killed process (what we guard against); only a
        # power cut can lose the last commits, and then an in-doubt send goes out again.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)  # before foreign keys are on: a table rebuild must not cascade
        conn.execute("PRAGMA foreign_keys=ON")
    finally:
        os.umask(old_umask)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version now in force."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"state file has schema version {version}, newer than this supportbot "
            f"({SCHEMA_VERSION}): upgrade supportbot instead of downgrading"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= number:
                conn.execute("ROLLBACK")  # another process migrated meanwhile
                continue
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration script so it runs inside our transaction (executescript would commit)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
