"""Building blocks for end-to-end runs on the IMAP path: real Dovecot in, real aiosmtpd out.

Shared by tests/sources/test_imap_worker.py, tests/lifecycle/test_story_imap.py and
bench/bench_imap.py, so the tests and the benchmark configure the worker the same way.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, Self

from bot.config import ImapSettings, Settings, load_settings
from tests.helpers import REPO, make_mail
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

FROM = "Acme Support <support@example.com>"
EXPORT_QUESTION = ("How do I export my contacts to a CSV file? I looked in the settings page "
                   "but could not find a button for it.")


class Listener(Protocol):
    """Anything that listens for SMTP: the test server, or the benchmark's lean sink."""

    host: str
    port: int


def imap_env(imap: ImapSettings, smtp: Listener | None, state: Path,
             **extra: str) -> dict[str, str]:
    """The SUPPORTBOT_* variables of a worker reading ``imap`` and sending through ``smtp``."""
    env = {
        "SUPPORTBOT_STATE": str(state),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_FROM": FROM,
        "SUPPORTBOT_IMAP_HOST": imap.host,
        "SUPPORTBOT_IMAP_PORT": str(imap.port),
        "SUPPORTBOT_IMAP_USER": imap.user,
        "SUPPORTBOT_IMAP_PASSWORD": imap.password,
        "SUPPORTBOT_IMAP_FOLDER": imap.folder,
        "SUPPORTBOT_IMAP_TLS": "none",
    }
    if smtp is not None:
        env.update({"SUPPORTBOT_SMTP_HOST": smtp.host, "SUPPORTBOT_SMTP_PORT": str(smtp.port),
                    "SUPPORTBOT_SMTP_TLS": "none"})
    env.update(extra)
    return env


def imap_settings(tmp: Path, box: Mailbox, smtp: SmtpServer | None, **extra: str) -> Settings:
    return load_settings(imap_env(box.settings(), smtp, tmp / "state.db", **extra), cwd=tmp)


def crlf(raw: bytes) -> bytes:
    """Line ends as on the wire: Dovecot stores an APPENDed message byte for byte."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def ticket_mail(n: int, *, subject: str | None = None, body: str = EXPORT_QUESTION) -> bytes:
    """A human question from its own requester (the per-recipient cap never interferes)."""
    return crlf(make_mail(sender=f"Customer {n} <c{n}@customer{n}.example>",
                          subject=subject or f"Exporting contacts, question {n}", body=body,
                          message_id=f"<q{n}@customer{n}.example>"))


def sent_kinds(smtp: SmtpServer) -> list[str]:
    return [str(r.message["X-Supportbot-Kind"]) for r in smtp.messages]


def answers_per_original(smtp: SmtpServer, kind: str | None = "acknowledge") -> Counter[str]:
    """How many messages (of ``kind``; None: of any kind) the SMTP server accepted, per
    In-Reply-To, i.e. per original Message-ID."""
    return Counter(str(r.message["In-Reply-To"]) for r in smtp.messages
                   if kind is None or r.message["X-Supportbot-Kind"] == kind)


class CuttingProxy:
    """A TCP proxy in front of Dovecot that can cut one connection mid-response.

    ``cut_next_after(n)`` arms it: the next connection is closed on both sides once the
    server has sent ``n`` bytes through it, e.g. in the middle of a big FETCH.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port = int(self._listener.getsockname()[1])
        self.cuts = 0
        self._armed: int | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def cut_next_after(self, nbytes: int) -> None:
        self._armed = nbytes

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            budget, self._armed = self._armed, None
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update({client, upstream})
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, None, pair),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, budget, pair),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, budget: int | None,
              pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := src.recv(65536):
                if budget is not None and len(data) >= budget:
                    dst.sendall(data[:budget])
                    self.cuts += 1
                    break
                if budget is not None:
                    budget -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in pair:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def env_for_subprocess(env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (e.g. os.environ) without any SUPPORTBOT_* of the caller's shell, plus ``env``."""
    out = {k: v for k, v in base.items() if not k.startswith("SUPPORTBOT_")}
    out.update(env)
    return out
