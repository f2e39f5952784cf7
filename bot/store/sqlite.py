"""The embedded backend: one SQLite file (WAL), created owner-only.

WAL so readers (`status`, `log`) never block the worker; the file is created owner-only
because it holds customers' mail. The schema version is `PRAGMA user_version`, each
migration applied in its own transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import StoreConflict, StoreError
from bot.store.database import Dialect, Params, Row, SqlValue
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION, sqlite_sql, statements


def _dict_row(cursor: sqlite3.Cursor, values: tuple[SqlValue, ...]) -> dict[str, SqlValue]:
    return {col[0]: value for col, value in zip(cursor.description, values, strict=True)}


def _owner_only(path: Path) -> None:
    """On every open, not only at creation: a file copied or restored with a world-readable
    mode would otherwise stay readable by every user of the machine (it holds mail)."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.stat().st_mode & 0o077:
                p.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # not our file (a read-only `status` of someone else's)
            continue


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating owner-only if new) and migrate the store at ``path``."""
    if str(path) != ":memory:":
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        _owner_only(p)
    old_umask = os.umask(0o077)  # the -wal and -shm files inherit owner-only too
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a killed process (what we guard against); only a
        # power cut can lose the last commits, and then an in-doubt send goes out again.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)  # before foreign keys are on: a table rebuild must not cascade
        conn.execute("PRAGMA foreign_keys=ON")
    finally:
        os.umask(old_umask)
    conn.row_factory = _dict_row
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
            for statement in statements(sqlite_sql(MIGRATIONS[number - 1])):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


@contextmanager
def _errors() -> Iterator[None]:
    """The driver's errors as the store's: a broken unique key means "done before"."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise StoreConflict(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{type(exc).__name__}: {exc}") from exc


class SqliteDatabase:
    dialect = Dialect.SQLITE
    claim_clause = ""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.conn = connect(path)

    def run(self, sql: str, params: Params = ()) -> int:
        with _errors():
            return self.conn.execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        with _errors():
            self.conn.executemany(sql, rows)

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        with _errors():
            found: list[Row] = self.conn.execute(sql, params).fetchall()
        return found

    def one(self, sql: str, params: Params = ()) -> Row | None:
        found = self.rows(sql, params)  # fetch to the end: a RETURNING statement then completes
        return found[0] if found else None

    def begin(self) -> None:
        self.run("BEGIN IMMEDIATE")  # take the write lock now, not at first write

    def commit(self) -> None:
        self.run("COMMIT")

    def rollback(self) -> None:
        self.run("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> str:
        return str(self.path)
