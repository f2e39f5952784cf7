"""A private, real Dovecot on loopback for tests and benchmarks: IMAP, IMAPS, LMTP + Sieve.

Everything lives in one temporary directory (config, passwd-file, mail, sockets, logs); the
system's /etc/dovecot and its service are never touched. Dovecot runs in the foreground as
our child process, on free ports, and is stopped afterwards even when a test fails.

Tests ask for the fixtures tests/conftest.py defines (no import needed):

    def test_x(mailbox: Mailbox) -> None:
        uid = mailbox.append("INBOX", raw)

`dovecot` is one server per test session; `mailbox` gives each test a fresh user, so tests
never see each other's mail. Without a dovecot binary the fixtures skip, except in CI
(CI=true), where they fail: there scripts/install-test-deps.sh must have run.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bot.config import ImapSettings, TlsMode

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
DEFAULT_PASSWORD = "secret-pw"
USER_POOL = 100
INDEX_FILES = ("dovecot-uidlist", "dovecot.index", "dovecot.index.log", "dovecot.index.log.2",
               "dovecot.index.cache")


def find_dovecot() -> str | None:
    """The dovecot binary; /usr/sbin is often missing from a non-root PATH."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def require_dovecot() -> str:
    """Skip without Dovecot on a developer's machine; fail in CI, where it must be installed."""
    binary = find_dovecot()
    if binary is None:
        reason = ("dovecot is not installed: run scripts/install-test-deps.sh "
                  "(Debian: apt-get install dovecot-imapd dovecot-lmtpd dovecot-sieve)")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


def dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"(\d+)\.(\d+)", out.strip())
    if match is None:
        raise RuntimeError(f"cannot read the Dovecot version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _new_name() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.test"


def _uid_set(text: str) -> list[int]:
    """``1:3,7`` -> [1, 2, 3, 7]."""
    uids: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition(":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids


@dataclass(frozen=True)
class MailUser:
    name: str  # the login, an address such as support@example.test
    password: str
    home: Path


@dataclass(frozen=True)
class _Accounts:
    """Which system accounts Dovecot's processes run as."""

    login: str  # imap-login etc.: must not be root
    internal: str  # auth, anvil, ...
    internal_group: str
    mail_uid: int  # owner of the mail folders; Dovecot refuses uid 0
    mail_gid: int

    @classmethod
    def for_this_process(cls) -> _Accounts:
        if os.geteuid() == 0:
            mail = pwd.getpwnam("mail")
            return cls("dovenull", "dovecot", "dovecot", mail.pw_uid, mail.pw_gid)
        me = pwd.getpwuid(os.geteuid())  # rootless Dovecot: every process runs as us
        group = grp.getgrgid(os.getegid()).gr_name
        return cls(me.pw_name, me.pw_name, group, me.pw_uid, me.pw_gid)


class DovecotServer:
    """One private Dovecot instance. Start with `start()` or use it as a context manager.

    ``submission_host`` (``host:port``) is where Sieve vacation replies are sent over SMTP.
    """

    def __init__(self, *, submission_host: str | None = None, binary: str | None = None) -> None:
        self.binary = binary or require_dovecot()
        self.version = dovecot_version(self.binary)
        self.submission_host = submission_host
        self.host = HOST
        self.accounts = _Accounts.for_this_process()
        # Not under pytest's tmp dir: that is 0700, and Dovecot's unprivileged processes
        # must reach their sockets and the mail folders below this directory.
        self.root = Path(tempfile.mkdtemp(prefix="supportbot-dovecot-"))
        self.root.chmod(0o755)
        self.config_path = self.root / "dovecot.conf"
        self.users_path = self.root / "users"
        self.log_path = self.root / "dovecot.log"
        self.cert_file = self.root / "tls" / "cert.pem"
        self.key_file = self.root / "tls" / "key.pem"
        self.homes = self.root / "home"
        self.imap_port = self.imaps_port = self.lmtp_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._users_lock = threading.Lock()
        self._pool: list[MailUser] = []

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> DovecotServer:
        self._prepare_files()
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and binding: retry
            self.imap_port, self.imaps_port, self.lmtp_port = free_port(), free_port(), free_port()
            self.config_path.write_text(self._config())
            try:
                self._spawn()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self._terminate()
        self.stop()
        raise RuntimeError(f"Dovecot did not start: {last_error}")

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare_files(self) -> None:
        (self.root / "tls").mkdir(exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", f"subjectAltName=DNS:localhost,IP:{HOST}",
             "-keyout", str(self.key_file), "-out", str(self.cert_file)],
            check=True, capture_output=True)
        self.homes.mkdir(exist_ok=True)
        os.chown(self.homes, self.accounts.mail_uid, self.accounts.mail_gid)
        self._fill_pool()

    def _spawn(self) -> None:
        self.log_path.write_text("")
        self._proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, so stop() reaches every child
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}: "
                                   f"{self.log_tail()}")
            if all(self._accepts(p) for p in (self.imap_port, self.imaps_port, self.lmtp_port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"no listener after {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- configuration ----------------------------------------------------------------------
    def _config(self) -> str:
        a = self.accounts
        common = {
            "root": self.root, "login": a.login, "internal": a.internal,
            "internal_group": a.internal_group, "host": HOST,
            "imap": self.imap_port, "imaps": self.imaps_port, "lmtp": self.lmtp_port,
            "instance": f"supportbot-{self.root.name}", "cert": self.cert_file,
            "key": self.key_file, "first_uid": min(a.mail_uid, 500) or 1,
            # Login processes chroot by default, which only root may do.
            "chroot": "" if os.geteuid() == 0 else "chroot =",
            "submission": (f"submission_host = {self.submission_host}\n"
                           if self.submission_host else ""),
        }
        template = CONFIG_24 if self.version >= (2, 4) else CONFIG_23
        return template.format(**common)

    # -- users ------------------------------------------------------------------------------
    def add_user(self, name: str | None = None, password: str = DEFAULT_PASSWORD) -> MailUser:
        """A mail user with an empty mailbox.

        Dovecot re-reads the passwd-file at most once a second, so a user written just now may
        be unknown for a moment: unnamed users come from a pool written ahead of time, and a
        named one waits out that second.
        """
        with self._users_lock:
            if name is None and password == DEFAULT_PASSWORD:
                if not self._pool:
                    self._fill_pool()
                    time.sleep(1.1)
                return self._pool.pop()
            user = self._write_user(name or _new_name(), password)
            time.sleep(1.1)
            return user

    def _fill_pool(self) -> None:
        self._pool = [self._write_user(_new_name(), DEFAULT_PASSWORD) for _ in range(USER_POOL)]

    def _write_user(self, name: str, password: str) -> MailUser:
        home = self.homes / name
        with self.users_path.open("a") as f:
            f.write(f"{name}:{{PLAIN}}{password}:{self.accounts.mail_uid}:"
                    f"{self.accounts.mail_gid}::{home}::\n")
        return MailUser(name, password, home)

    def settings(self, user: MailUser, *, tls: TlsMode = "none", folder: str = "INBOX",
                 password: str | None = None, sent_folder: str | None = None) -> ImapSettings:
        """`ImapSettings` pointing at this server (plain IMAP, or IMAPS with ``tls='ssl'``)."""
        port = self.imaps_port if tls == "ssl" else self.imap_port
        return ImapSettings(host=HOST, port=port, user=user.name,
                            password=user.password if password is None else password,
                            folder=folder, tls=tls, sent_folder=sent_folder)

    @contextlib.contextmanager
    def client(self, user: MailUser) -> Iterator[IMAPClient]:
        """An admin connection as ``user`` (plain IMAP on loopback)."""
        c = IMAPClient(HOST, port=self.imap_port, ssl=False, timeout=10)
        try:
            c.login(user.name, user.password)
            yield c
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    # -- mailbox helpers --------------------------------------------------------------------
    def append(self, user: MailUser, folder: str, raw: bytes, flags: Sequence[bytes | str] = (),
               internaldate: datetime | None = None) -> int:
        return self.append_many(user, folder, [raw], flags, internaldate)[0]

    def append_many(self, user: MailUser, folder: str, raws: Sequence[bytes],
                    flags: Sequence[bytes | str] = (),
                    internaldate: datetime | None = None) -> list[int]:
        """One MULTIAPPEND of every message (line ends made CRLF, as IMAP wants); returns
        their UIDs (UIDPLUS's APPENDUID)."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            extra: dict[str, object] = {"flags": tuple(flags)}
            if internaldate is not None:
                extra["date"] = internaldate
            answer = c.multiappend(folder, [{"msg": re.sub(rb"\r?\n", b"\r\n", raw), **extra}
                                            for raw in raws])
        match = re.search(rb"APPENDUID \d+ ([\d:,]+)", b" ".join(answer[1]))
        if match is None:
            raise RuntimeError(f"no APPENDUID in {answer!r}")
        return _uid_set(match.group(1).decode())

    def uidvalidity(self, user: MailUser, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return int(c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def count(self, user: MailUser, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def flags(self, user: MailUser, folder: str, uid: int) -> set[bytes]:
        """The stored flags (without \\Recent, which belongs to a session, not the message)."""
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            return set(c.fetch([uid], [b"FLAGS"])[uid][b"FLAGS"]) - {b"\\Recent"}

    def uids(self, user: MailUser, folder: str = "INBOX") -> list[int]:
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            return sorted(c.search("ALL"))

    def recreate_folder(self, user: MailUser, folder: str = "INBOX") -> int:
        """Make the server renumber ``folder``: new UIDVALIDITY, new UIDs, same messages.

        This is what a restored backup or a rebuilt index does to a real mailbox. The
        message files stay; Dovecot's UID list and index go, so it rescans the folder.
        Returns the new UIDVALIDITY.
        """
        old = self.uidvalidity(user, folder)
        self.kick(user)
        path = user.home / "Maildir"
        if folder.upper() != "INBOX":
            path = path / ("." + folder)
        for name in INDEX_FILES:
            (path / name).unlink(missing_ok=True)
        new = self.uidvalidity(user, folder)
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {folder} stayed {old}")
        return new

    # -- connections ------------------------------------------------------------------------
    def doveadm(self, *args: str) -> str:
        doveadm = shutil.which("doveadm", path=str(Path(self.binary).parent)) or "doveadm"
        out = subprocess.run([doveadm, "-c", str(self.config_path), *args],
                             capture_output=True, text=True, timeout=20)
        if out.returncode not in (0, 68):  # 68: EX_NOUSER, e.g. nobody connected to kick
            raise RuntimeError(f"doveadm {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def connection_count(self, user: MailUser) -> int:
        """How many IMAP sessions ``user`` has open right now."""
        out = self.doveadm("who", "-1", user.name)
        return sum(1 for line in out.splitlines() if line.split()[:1] == [user.name])

    def kick(self, user: MailUser) -> None:
        """Drop every IMAP connection of ``user`` (the server says BYE and closes)."""
        self.doveadm("kick", user.name)

    # -- LMTP and Sieve ---------------------------------------------------------------------
    def lmtp_deliver(self, rcpt: str, raw: bytes, sender: str = "sender@example.net") -> None:
        """Deliver through LMTP, so the recipient's Sieve script (e.g. vacation) runs."""
        with smtplib.LMTP(HOST, self.lmtp_port, timeout=20) as lmtp:
            lmtp.sendmail(sender, [rcpt], raw)

    def set_sieve(self, user: MailUser, script: str) -> Path:
        """Install ``script`` as the user's active Sieve script (used by LMTP delivery)."""
        user.home.mkdir(parents=True, exist_ok=True)
        os.chown(user.home, self.accounts.mail_uid, self.accounts.mail_gid)
        path = user.home / ".dovecot.sieve"
        path.write_text(script)
        os.chown(path, self.accounts.mail_uid, self.accounts.mail_gid)
        return path


@dataclass
class Mailbox:
    """A fresh user on the shared server, with the helpers bound to it."""

    server: DovecotServer
    user: MailUser

    def settings(self, **kw: object) -> ImapSettings:
        return self.server.settings(self.user, **kw)  # type: ignore[arg-type]

    def append(self, folder: str, raw: bytes, flags: Sequence[bytes | str] = (),
               internaldate: datetime | None = None) -> int:
        return self.server.append(self.user, folder, raw, flags, internaldate)

    def append_many(self, folder: str, raws: Sequence[bytes]) -> list[int]:
        return self.server.append_many(self.user, folder, raws)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        return self.server.uidvalidity(self.user, folder)

    def flags(self, folder: str, uid: int) -> set[bytes]:
        return self.server.flags(self.user, folder, uid)

    def count(self, folder: str = "INBOX") -> int:
        return self.server.count(self.user, folder)

    def uids(self, folder: str = "INBOX") -> list[int]:
        return self.server.uids(self.user, folder)

    def recreate_folder(self, folder: str = "INBOX") -> int:
        return self.server.recreate_folder(self.user, folder)

    def connection_count(self) -> int:
        return self.server.connection_count(self.user)

    def kick(self) -> None:
        self.server.kick(self.user)

    def lmtp_deliver(self, raw: bytes, sender: str = "sender@example.net") -> None:
        self.server.lmtp_deliver(self.user.name, raw, sender)

    def set_sieve(self, script: str) -> Path:
        return self.server.set_sieve(self.user, script)


class _Shared:
    """One server for the whole session, even when several test modules import the fixture
    (each import is its own fixture definition to pytest, so the instance is kept here)."""

    def __init__(self) -> None:
        self.server: DovecotServer | None = None
        self.users = 0

    def acquire(self) -> DovecotServer:
        if self.server is None:
            self.server = DovecotServer().start()
        self.users += 1
        return self.server

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.server is not None:
            self.server.stop()
            self.server = None


_SHARED = _Shared()


@contextlib.contextmanager
def shared_server() -> Iterator[DovecotServer]:
    """The shared Dovecot (tests/conftest.py's ``dovecot`` fixture); skips without a binary."""
    require_dovecot()
    server = _SHARED.acquire()
    try:
        yield server
    finally:
        _SHARED.release()


CONFIG_23 = """\
# Private test instance written by tests/servers/dovecot.py (Dovecot 2.3 syntax).
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
protocols = imap lmtp
listen = {host}
log_path = {root}/dovecot.log
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {internal_group}
first_valid_uid = {first_uid}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
hostname = localhost
postmaster_address = postmaster@example.test
{submission}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    address = {host}
    port = {imap}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp}
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
# No growing delay after a wrong password (anvil's auth penalty): tests try wrong ones.
service anvil {{
  {chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

CONFIG_24 = """\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
# Private test instance written by tests/servers/dovecot.py (Dovecot 2.4 syntax).
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
protocols = imap lmtp
listen = {host}
log_path = {root}/dovecot.log
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {internal_group}
first_valid_uid = {first_uid}
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_failure_delay = 0
mail_driver = maildir
mail_path = ~/Maildir
mail_fsync = never
namespace inbox {{
  inbox = yes
}}
ssl = yes
ssl_server_cert_file = {cert}
ssl_server_key_file = {key}
hostname = localhost
postmaster_address = postmaster@example.test
{submission}
passdb passwd-file {{
  passwd_file_path = {root}/users
}}
userdb passwd-file {{
  passwd_file_path = {root}/users
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    listen = {host}
    port = {imap}
  }}
  inet_listener imaps {{
    listen = {host}
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    listen = {host}
    port = {lmtp}
  }}
}}
protocol lmtp {{
  mail_plugins {{
    sieve = yes
  }}
}}
sieve_script personal {{
  driver = file
  path = ~/sieve
  active_path = ~/.dovecot.sieve
}}
# No growing delay after a wrong password (anvil's auth penalty): tests try wrong ones.
service anvil {{
  {chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
