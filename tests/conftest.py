"""Shared fixtures: paths, a clean environment, the test servers (Dovecot, SMTP, PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.servers.dovecot import DovecotServer, Mailbox, shared_server
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer, TlsCert, make_self_signed_cert

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"

# No example database: a run never replays another run's failures, so CI's result depends on
# the code alone (a failure prints its example and `@reproduce_failure` blob to rerun it).
settings.register_profile("supportbot", database=None)
settings.load_profile("supportbot")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SUPPORTBOT_* variable (nor DATABASE_URL) from the developer's shell leaks in."""
    for key in list(os.environ):
        if key.startswith("SUPPORTBOT_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    yield


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"sample corpus not found at {CORPUS} (it lives beside the repository)")
    return CORPUS


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """The session's Dovecot (plain IMAP, IMAPS with a self-signed cert, LMTP + Sieve)."""
    with shared_server() as server:
        yield server


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """A new user with an empty mailbox on the session's Dovecot."""
    return Mailbox(dovecot, dovecot.add_user())


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback that accepts everything until scripted otherwise."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL cluster (a template database holds the schema)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, migrated database on the session's cluster, for this test alone."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives, once per backend: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "state.db"
    url: str = request.getfixturevalue("pg_url")
    return url
