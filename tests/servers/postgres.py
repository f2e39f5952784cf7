"""A private, real PostgreSQL cluster on loopback for tests and benchmarks.

`initdb` writes a cluster into a temporary directory; `postgres` runs in the foreground as
our child process on a free port, listening on 127.0.0.1 and a socket in that directory
only; the system's clusters and service are never touched. As root (CI containers) both
run as the unprivileged `postgres` account (PostgreSQL refuses to run as root).

Tests ask for the fixtures tests/conftest.py defines: `postgres` is one cluster per
session; `pg_url` is a fresh database per test, copied from a template that already holds
the migrated schema (CREATE DATABASE ... TEMPLATE is a file copy: milliseconds). Without
the binaries the fixtures skip, except in CI (CI=true), where they fail: there
scripts/install-test-deps.sh must have run (Debian package `postgresql`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

HOST = "127.0.0.1"
SUPERUSER = "supportbot"
START_TIMEOUT = 30.0
TEMPLATE = "supportbot_template"
# durability is not what these tests measure: no fsync, no WAL waits
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200",
        "shared_buffers=32MB", "log_min_messages=warning", "logging_collector=off")


def find_bindir() -> Path | None:
    """The newest PostgreSQL's bin directory (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_postgres() -> Path:
    """Skip without PostgreSQL on a developer's machine; fail in CI, where it must be there."""
    bindir = find_bindir()
    if bindir is None:
        reason = ("PostgreSQL is not installed: run scripts/install-test-deps.sh "
                  "(Debian: apt-get install postgresql)")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or require_postgres()
        self.root = Path(tempfile.mkdtemp(prefix="supportbot-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 \
            else None
        self._names = 0

    # -- life -----------------------------------------------------------------------------
    def _run_as(self) -> dict[str, object]:
        """Popen arguments that drop root for PostgreSQL's binaries."""
        if self._as is None:
            return {}
        return {"user": self._as.pw_uid, "group": self._as.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        if self._as is not None:
            os.chown(self.root, self._as.pw_uid, self._as.pw_gid)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, cwd=self.root, **self._run_as())
        args = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.root}"]
        for setting in FAST:
            args += ["-c", setting]
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     cwd=self.root, **self._run_as())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not start: {self.log_tail()}") from None
                time.sleep(0.05)
        self._make_template()
        return self

    def _make_template(self) -> None:
        from bot.store import Store

        self.admin(f"CREATE DATABASE {TEMPLATE}")
        Store(self.url(TEMPLATE)).close()  # the migrated schema, copied into every new database

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- databases --------------------------------------------------------------------------
    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}:unused-pw@{HOST}:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database's URL: the schema in place (``migrated``), or empty."""
        self._names += 1
        name = f"t{self._names}_{uuid.uuid4().hex[:8]}"
        template = TEMPLATE if migrated else "template0"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)
