"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, capturing everything it accepts.

`SmtpServer` runs in its own thread (aiosmtpd's Controller), so tests drive it from
synchronous code or from their own event loop, and a worker subprocess can send to it.
Switches script the server's misbehaviour: temporary or permanent failures at DATA,
refused recipients, required AUTH, dropped connections, TLS (implicit or STARTTLS) with
a self-signed certificate. `RudeAutoresponder` answers every message it receives.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Self

import aiosmtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TlsMode = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class TlsCert:
    cert: Path
    key: Path


def make_self_signed_cert(directory: Path, hostname: str = "localhost") -> TlsCert:
    """A self-signed certificate for `hostname` and 127.0.0.1, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={hostname}",
         "-addext", f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return TlsCert(cert=cert, key=key)


@dataclass
class Received:
    """One accepted message: the envelope as the server saw it and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    tls: bool
    auth_user: str | None


OnMessage = Callable[[Received], Awaitable[None] | None]


class _Controller(Controller):
    """Listens on a free port chosen by the OS and counts connections."""

    def __init__(self, owner: SmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self.owner._connection_opened(smtp)
        return smtp

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class _Script:
    data_replies: deque[str] = field(default_factory=deque)
    refuse: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None


class SmtpServer:
    """aiosmtpd on 127.0.0.1; use as a context manager or call start()/stop().

    Counters (read them after the client is done): ``connections`` opened,
    ``data_attempts`` (DATA commands, whatever the answer), ``messages`` accepted.
    """

    def __init__(self, *, tls: TlsMode = "none", cert: TlsCert | None = None,
                 auth: tuple[str, str] | None = None, on_message: OnMessage | None = None,
                 hostname: str = "mx.test", port: int = 0) -> None:
        if tls != "none" and cert is None:
            raise ValueError("a TLS server needs a certificate (make_self_signed_cert)")
        self.host = "127.0.0.1"
        self.port = 0
        self.tls = tls
        self.auth = auth
        self.on_message = on_message
        self.messages: list[Received] = []
        self.connections = 0
        self.data_attempts = 0
        self.auth_failures = 0
        self._script = _Script()
        self._cond = threading.Condition()
        self._per_connection: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        kwargs: dict[str, Any] = {"server_hostname": hostname, "hostname": self.host, "port": port}
        context = None
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert.cert, cert.key)
        if tls == "ssl":
            kwargs["ssl_context"] = context
        elif tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if auth is not None:
            # AUTH offered over plain loopback too; required by handle_MAIL rather than
            # aiosmtpd's auth_required, which warns (an error under pytest) without TLS.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(self, self, **kwargs)

    # -- scripting ----------------------------------------------------------------------
    def fail_next(self, count: int, reply: str = "451 4.3.0 Temporary failure, try later") -> None:
        """Answer the next `count` DATA commands with `reply` (4xx or 5xx), then accept."""
        self._script.data_replies.extend([reply] * count)

    def refuse(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        """Refuse this recipient at RCPT with `reply`."""
        self._script.refuse[address.lower()] = reply

    def drop_connections_after(self, count: int | None) -> None:
        """Close each connection once it has carried `count` messages (421 at the next MAIL)."""
        self._script.drop_after = count

    def reset(self) -> None:
        with self._cond:
            self.messages.clear()
            self.connections = self.data_attempts = self.auth_failures = 0
            self._script = _Script()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Self:
        self._controller.start()
        self.port = self._controller.port
        with self._cond:
            self.connections = 0  # the controller's own start-up probe
        return self

    def stop(self) -> None:
        """Let on_message work in flight finish (a reply half-sent), then stop."""
        asyncio.run_coroutine_threadsafe(self._drain(), self._controller.loop).result(10)
        self._controller.stop()

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` messages arrived (for senders in other threads)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.messages)} of {count} messages arrived")
                self._cond.wait(remaining)
            return list(self.messages)

    # -- aiosmtpd hooks (run in the server's thread) --------------------------------------
    def _connection_opened(self, smtp: SMTP) -> None:
        with self._cond:
            self.connections += 1
            self._per_connection[id(smtp)] = 0

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert self.auth is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self.auth:
                return AuthResult(success=True, auth_data=user)
        with self._cond:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        limit = self._script.drop_after
        if limit is not None and self._per_connection.get(id(server), 0) >= limit:
            asyncio.get_running_loop().call_soon(server.transport.close)  # type: ignore[union-attr]
            return "421 4.7.0 Too many messages on this connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        refused = self._script.refuse.get(address.lower())
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._cond:
            self.data_attempts += 1
            if self._script.data_replies:
                return self._script.data_replies.popleft()
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        received = Received(
            mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw,
            message=message,
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            auth_user=session.auth_data if session.authenticated else None)
        self._per_connection[id(server)] = self._per_connection.get(id(server), 0) + 1
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()
        if self.on_message is not None:
            result = self.on_message(received)
            if result is not None:
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return "250 2.0.0 OK: queued"


class RudeAutoresponder:
    """Answers every message it receives, ignoring Auto-Submitted and every other hint.

    Its replies look human (no Auto-Submitted, no Precedence, a real envelope sender) and
    go to the message's From through `relay`: the worst robot a help desk meets.
    ``max_replies`` is only a safety stop for a test that goes wrong.
    """

    def __init__(self, relay: tuple[str, int], address: str = "ooo@rude.example",
                 max_replies: int = 200) -> None:
        self.relay = relay
        self.address = address
        self.max_replies = max_replies
        self.replies: list[bytes] = []
        self.errors: list[str] = []
        self._answered = 0
        self.server = SmtpServer(on_message=self._answer)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    async def _answer(self, received: Received) -> None:
        if self._answered >= self.max_replies:
            return
        self._answered += 1
        original = received.message
        reply = EmailMessage()
        reply["From"] = f"Out Of Office <{self.address}>"
        reply["To"] = str(original.get("Reply-To") or original.get("From") or received.mail_from)
        reply["Subject"] = f"Re: {original.get('Subject', '')}"
        if original.get("Message-ID"):
            reply["In-Reply-To"] = str(original["Message-ID"])
            reply["References"] = f"{original.get('References', '')} {original['Message-ID']}"
        reply["Message-ID"] = f"<rude.{len(self.replies)}.{time.time_ns()}@rude.example>"
        reply.set_content("Thanks for your message! I am out of the office and will reply "
                          "when I am back.")
        try:
            await aiosmtplib.send(reply, hostname=self.relay[0], port=self.relay[1],
                                  sender=self.address, start_tls=False, timeout=10)
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.replies.append(reply.as_bytes())

