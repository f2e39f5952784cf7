"""A tiny HTTP receiver for Help Scout webhooks: a signed POST wakes the poller.

Help Scout signs the raw body: `X-HelpScout-Signature` = base64(HMAC-SHA1(secret, body)).
The payload is never trusted beyond "something changed": polling stays the source of
truth, so a forged call is refused (401) and a replayed one (the same signed body within
ten minutes) wakes nobody twice. Requests are bounded in size and time, one per connection
(HTTP/1.1 with `Connection: close`), with no parsing of the JSON at all; at most
`MAX_CONNECTIONS` are served at once, the oldest giving way to a new one, so a flood of
idle connections can neither exhaust the worker's file descriptors nor keep Help Scout out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-helpscout-signature"
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 431: "Headers Too Large",
            500: "Internal Server Error"}
_MAX_HEADER_LINES = 100
# Connections served at once; each idle one holds a file descriptor (a flood of 1,100 idle
# connections once exhausted the worker's). Help Scout sends one request at a time.
MAX_CONNECTIONS = 64
REPLAY_WINDOW = 600.0  # seconds a signed body is remembered
_MAX_REMEMBERED = 10_000
_MAX_HEADER_BYTES = 16 * 1024


def sign(secret: str, body: bytes) -> str:
    """The signature Help Scout sends for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time comparison of ``signature`` with the one ``body`` should carry."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"),
                               signature.strip().encode("ascii", "replace"))


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class WebhookReceiver:
    """Listens on ``host:port`` (0 = any free port, see `port` after `start`)."""

    def __init__(self, secret: str, on_event: Callable[[], None], *, host: str = "0.0.0.0",
                 port: int = 0, max_body: int = 1024 * 1024, read_timeout: float = 5.0,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        if not secret:
            raise ValueError("a webhook secret is required: unsigned wake-ups are refused")
        self._secret = secret
        self.on_event = on_event
        self.host = host
        self.port = port
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.accepted = 0
        self.refused = 0
        self.replayed = 0
        self.evicted = 0
        self._active: dict[asyncio.Task[object], None] = {}
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=_MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("help scout webhook receiver listening", host=self.host, port=self.port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._make_room()
            self._active[task] = None
        try:
            await self._answer(reader, writer)
        finally:
            if task is not None:
                self._active.pop(task, None)
            if not writer.is_closing():  # evicted or cancelled: close the socket now
                writer.transport.abort()

    def _make_room(self) -> None:
        """At the cap, the oldest connection goes: a flood of idle connections then costs a
        bounded number of descriptors, and a real request (milliseconds) still gets in."""
        while len(self._active) >= self.max_connections:
            oldest = next(iter(self._active))
            self._active.pop(oldest)
            oldest.cancel()
            self.evicted += 1

    async def _answer(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        body: bytes | None = None
        try:
            status, body = await asyncio.wait_for(self._read(reader), self.read_timeout)
        except _Refused as exc:
            status = exc.status
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, ValueError, UnicodeDecodeError):
            status = 400
        except Exception:  # never leave a caller hanging on a bug of ours
            log.exception("help scout webhook receiver failed")
            status = 500
        if status == 200:
            self.accepted += 1
            if self._first_time(body or b""):
                self.on_event()
            else:
                self.replayed += 1
                log.info("help scout webhook replayed; no new wake-up")
        else:
            self.refused += 1
            (log.warning if status == 401 else log.debug)("help scout webhook refused",
                                                          status=status)
        reason = _REASONS.get(status, "Error")
        with contextlib.suppress(ConnectionError):
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode("ascii"))
            await asyncio.wait_for(writer.drain(), self.read_timeout)
        writer.close()

    def _first_time(self, body: bytes) -> bool:
        """A signed body seen within `REPLAY_WINDOW` seconds is a replay: one wake-up only
        (polling is the truth anyway; a captured request must not drive polls)."""
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - REPLAY_WINDOW:
            self._seen.popitem(last=False)
        digest = hashlib.sha256(body).digest()
        if digest in self._seen:
            return False
        self._seen[digest] = now
        if len(self._seen) > _MAX_REMEMBERED:
            self._seen.popitem(last=False)
        return True

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes | None]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, None
        headers: dict[str, str] = {}
        size = 0
        for _ in range(_MAX_HEADER_LINES + 1):
            line = await reader.readline()
            size += len(line)
            if size > _MAX_HEADER_BYTES:
                raise _Refused(431)
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                return 400, None
            headers[name.strip().lower()] = value.strip()
        else:
            raise _Refused(431)
        if parts[0] != "POST":
            return 405, None
        if "transfer-encoding" in headers or "content-length" not in headers:
            return 411, None
        length = int(headers["content-length"])
        if length < 0:
            return 400, None
        if length > self.max_body:
            return 413, None
        body = await reader.readexactly(length)
        if not verify(self._secret, body, headers.get(SIGNATURE_HEADER)):
            return 401, None
        log.info("help scout webhook", kind=headers.get("x-helpscout-event", "")[:80])
        return 200, body
