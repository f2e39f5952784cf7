"""Copying a whole state from one store into another, engine to engine.

`run --dry-run` on a PostgreSQL state works on a private SQLite copy made here (as it does
on a copy of a SQLite file), and moving a deployment between engines copies the same way.
Tables go in an order that keeps every reference valid; each is read in bounded chunks
(raw mail makes rows large), and the counts copied are returned to be checked.
"""

from __future__ import annotations

from bot.store.database import Dialect
from bot.store.rows import Cols
from bot.store.store import Store

CHUNK = 500

# table -> the column it is read in order of (unique, or a range for outbox_recipients)
TABLES: tuple[tuple[str, str], ...] = (
    ("cursors", "key"),
    ("meta", "key"),
    ("blobs", "hash"),
    ("tickets", "id"),
    ("messages", "id"),
    ("thread_ids", "message_id"),
    ("outbox", "id"),
    ("outbox_recipients", "outbox_id"),
    ("timers", "id"),
    ("activity", "id"),
    ("quarantine", "id"),
    ("undeliverable", "address"),
    ("leases", "name"),
)
_RANGED = {"outbox_recipients"}  # several rows per key: read by ranges of outbox ids
_IDENTITY = {"tickets", "messages", "outbox", "timers", "activity", "quarantine"}


def copy_state(src: Store, dst: Store) -> dict[str, int]:
    """Copy every row of ``src`` into the empty ``dst`` in one transaction; rows per table."""
    copied: dict[str, int] = {}
    with dst.transaction():
        for table, key in TABLES:
            copied[table] = _copy_table(src, dst, table, key)
        if dst.dialect == Dialect.POSTGRESQL:
            for table in _IDENTITY:  # ids were copied as they were: new rows follow them
                dst.db.run(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                           f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    return copied


def count_rows(store: Store) -> dict[str, int]:
    """Rows per table, to compare a copy with its original."""
    out: dict[str, int] = {}
    for table, _ in TABLES:
        row = store.db.one(f"SELECT count(*) AS n FROM {table}")
        out[table] = 0 if row is None else Cols(row).num("n")
    return out


def _copy_table(src: Store, dst: Store, table: str, key: str) -> int:
    total = 0
    last: str | int | None = None
    while True:
        if table in _RANGED:
            start = -1 if last is None else int(last)
            rows = src.db.rows(f"SELECT * FROM {table} WHERE {key} > ? AND {key} <= ?"
                               f" ORDER BY {key}", (start, start + CHUNK))
            more = src.db.one(f"SELECT 1 AS x FROM {table} WHERE {key} > ? LIMIT 1",
                              (start + CHUNK,)) is not None
            last = start + CHUNK
        else:
            where = "" if last is None else f" WHERE {key} > ?"
            rows = src.db.rows(f"SELECT * FROM {table}{where} ORDER BY {key} LIMIT ?",
                               (() if last is None else (last,)) + (CHUNK,))
            more = len(rows) == CHUNK
            if rows:
                value = rows[-1][key]
                assert isinstance(value, (str, int)), (table, key, value)
                last = value
        if rows:
            columns = list(rows[0].keys())
            dst.db.run_many(
                f"INSERT INTO {table} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})",
                [tuple(r[c] for c in columns) for r in rows])
            total += len(rows)
        if not more:
            return total
