"""What the store needs from a database engine, so one `Store` runs on SQLite or PostgreSQL.

The store writes its SQL once, with ``?`` placeholders and statements both engines accept
(``ON CONFLICT``, ``RETURNING``, savepoints); a backend only connects, migrates, runs
statements, and says the few words that differ (how a write transaction begins, how a
claimed row is locked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Protocol

SqlValue = str | int | float | bytes | None
Params = Sequence[SqlValue]
Row = Mapping[str, SqlValue]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Database(Protocol):
    """A connection the store owns; statements outside `begin`/`commit` commit alone."""

    dialect: Dialect
    # appended to a SELECT that claims rows: PostgreSQL locks them and skips rows another
    # worker holds; SQLite needs nothing (one writer at a time, one worker per file)
    claim_clause: str

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute one statement; returns the number of rows it changed."""
        ...

    def run_many(self, sql: str, rows: Iterable[Params]) -> None: ...

    def rows(self, sql: str, params: Params = ()) -> list[Row]: ...

    def one(self, sql: str, params: Params = ()) -> Row | None: ...

    def begin(self) -> None:
        """Start the outermost write transaction."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where the state lives, for logs and errors (never a password)."""
        ...


def is_postgres_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_database(target: Path | str) -> Database:
    """A migrated database: a ``postgresql://`` URL, else a SQLite file path."""
    if is_postgres_url(target):
        from bot.store.postgres import PostgresDatabase

        return PostgresDatabase(str(target))
    from bot.store.sqlite import SqliteDatabase

    return SqliteDatabase(target)
