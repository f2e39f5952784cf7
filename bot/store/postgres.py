"""The shared backend: a PostgreSQL database given by URL (a platform's `DATABASE_URL`).

psycopg 3, one connection per store, autocommit outside explicit transactions (as the SQLite
backend runs). The schema version lives in `schema_version`; migrations take a transaction
advisory lock, so workers starting together apply each step once. A lost connection (the
database restarted, a failover) fails the statement that finds it, with its transaction; the
next statement outside a transaction, or the next transaction, connects again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from bot.errors import StoreConflict, StoreError
from bot.store.database import Dialect, Params, Row
from bot.store.rows import Cols
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION, postgres_sql, statements

MIGRATION_LOCK = 0x5B0_7001  # pg_advisory_xact_lock key: supportbot's schema migrations
CONNECT_TIMEOUT = 10


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """``postgresql://user@host:port/db``: the URL without its password, for messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


# another worker did it first, or holds what this step needs: the step can be skipped
_CONFLICTS = (psycopg.errors.IntegrityError, psycopg.errors.DeadlockDetected,
              psycopg.errors.SerializationFailure, psycopg.errors.LockNotAvailable)


@contextmanager
def _errors() -> Iterator[None]:
    """The driver's errors as the store's."""
    try:
        yield
    except _CONFLICTS as exc:
        raise StoreConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) \
            from exc
    except psycopg.Error as exc:
        raise StoreError(f"{type(exc).__name__}: {exc}") from exc


class PostgresDatabase:
    dialect = Dialect.POSTGRESQL
    claim_clause = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = self._connect()
        self._in_transaction = False
        with _errors():
            migrate(self.conn)

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn: psycopg.Connection[Row] = psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT, application_name="supportbot")
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(f"cannot connect to {redact(self.url)}: {reason}") from exc
        return conn

    def _live(self) -> psycopg.Connection[Row]:
        """The connection, opened again if it was lost outside a transaction (inside one,
        the transaction is gone with it: the statement fails and the step rolls back)."""
        if self.conn.closed and not self._in_transaction:
            self.conn = self._connect()
        return self.conn

    def run(self, sql: str, params: Params = ()) -> int:
        with _errors(), self._live().cursor() as cur:
            cur.execute(to_pyformat(sql), params)
            return cur.rowcount

    def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        with _errors(), self._live().cursor() as cur:
            cur.executemany(to_pyformat(sql), rows)

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        with _errors(), self._live().cursor() as cur:
            cur.execute(to_pyformat(sql), params)
            return cur.fetchall()

    def one(self, sql: str, params: Params = ()) -> Row | None:
        with _errors(), self._live().cursor() as cur:
            cur.execute(to_pyformat(sql), params)
            return cur.fetchone()

    def begin(self) -> None:
        with _errors():
            self._live().execute("BEGIN")
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False
        with _errors():
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self._in_transaction = False
        if not self.conn.closed:  # a lost connection has rolled back already
            with _errors():
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> str:
        return redact(self.url)


def migrate(conn: psycopg.Connection[Row]) -> int:
    """Apply pending migrations, each in its own transaction; returns the version in force."""
    for number in range(1, SCHEMA_VERSION + 1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM schema_version").fetchone()
            version = Cols(row).opt_num("v") or 0 if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database has schema version {version}, newer than this supportbot "
                    f"({SCHEMA_VERSION}): upgrade supportbot instead of downgrading")
            if version >= number:
                continue
            for statement in statements(postgres_sql(MIGRATIONS[number - 1])):
                conn.execute(statement)  # no parameters: sent as written
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version(version) VALUES (%s)", (number,))
    return SCHEMA_VERSION
