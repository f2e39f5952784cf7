"""The one schema both backends share: numbered migrations, applied in order.

Each migration is written once, in the SQL both engines speak; `postgres_sql` maps its few
type names (SQLite's INTEGER row ids and BLOBs) onto PostgreSQL's. Where SQLite can only say
a change by rebuilding a table (it cannot drop a NOT NULL), the migration carries the one
PostgreSQL statement that means the same, so the two histories stay step for step alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step; ``postgres`` only where SQLite's form would not run there."""

    sql: str
    postgres: str | None = None


MIGRATIONS: tuple[Migration, ...] = (
    # 1: the initial schema
    Migration("""
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
    """),
    # 2: outbox rows need not belong to a ticket (the scheduled report, team notices)
    Migration("""
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
    """, postgres="""
    ALTER TABLE outbox ALTER COLUMN ticket_id DROP NOT NULL;
    """),
    # 3: cancelling a ticket's timers must not scan every pending timer
    Migration("""
    CREATE INDEX timers_ticket ON timers(ticket_id, status);
    """),
    # 4: several workers on one database: who holds which source (and who is alive), and
    #    which worker has an outbox row in flight
    Migration("""
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX leases_holder ON leases(holder);
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    """),
    # 5: large mail kept once (a forward carries the requester's message, which the ledger
    #    also keeps), and raw bodies that can be pruned (SUPPORTBOT_RETENTION_DAYS)
    Migration("""
    CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    ALTER TABLE messages ADD COLUMN raw_hash TEXT;
    ALTER TABLE outbox ADD COLUMN original_hash TEXT;
    ALTER TABLE outbox ADD COLUMN original_at INTEGER;
    ALTER TABLE outbox ADD COLUMN original_len INTEGER;
    ALTER TABLE outbox ADD COLUMN original_crlf INTEGER;
    CREATE INDEX messages_raw_hash ON messages(raw_hash);
    CREATE INDEX outbox_original_hash ON outbox(original_hash);
    """),
    # 6: the caps count the mailbox an address reaches (case, +tags, ignored dots) and the
    #    recipient's domain, so variants of one address cannot multiply them
    Migration("""
    ALTER TABLE outbox_recipients ADD COLUMN cap_key TEXT;
    ALTER TABLE outbox_recipients ADD COLUMN domain TEXT;
    CREATE INDEX outbox_recipients_cap ON outbox_recipients(cap_key, created_at);
    CREATE INDEX outbox_recipients_domain ON outbox_recipients(domain, created_at);
    """),
)

SCHEMA_VERSION = len(MIGRATIONS)

_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),  # Help Scout ids outgrow 32 bits
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)


def sqlite_sql(migration: Migration) -> str:
    return migration.sql


def postgres_sql(migration: Migration) -> str:
    """The migration as PostgreSQL runs it: the same statements, its names for the types."""
    if migration.postgres is not None:
        return migration.postgres
    sql = migration.sql
    for pattern, replacement in _PG_TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


def statements(script: str) -> list[str]:
    """The script's statements, for running them one by one inside our own transaction.

    Our migrations hold no semicolons inside literals, so splitting on them is enough.
    """
    return [s.strip() for s in script.split(";") if s.strip()]
