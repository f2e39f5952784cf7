"""A tiny HTTP receiver for Help Scout webhooks: a signed POST wakes the poller.

Help Scout signs the raw body: `X-HelpScout-Signature` = base64(HMAC-SHA1(secret, body)).
The payload is never trusted beyond "something changed": polling stays the source of
truth, so a forged or replayed call can at worst cause one extra poll, and an
unsigned one is refused (401). Requests are bounded in size and time, one per
connection (HTTP/1.1 with `Connection: close`), with no parsing of the JSON at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-helpscout-signature"
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 431: "Headers Too Large",
            500: "Internal Server Error"}
_MAX_HEADER_LINES = 100
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
                 port: int = 0, max_body: int = 1024 * 1024, read_timeout: float = 10.0) -> None:
        if not secret:
            raise ValueError("a webhook secret is required: unsigned wake-ups are refused")
        self._secret = secret
        self.on_event = on_event
        self.host = host
        self.port = port
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.accepted = 0
        self.refused = 0
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
        try:
            status = await asyncio.wait_for(self._read(reader), self.read_timeout)
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
            self.on_event()
        else:
            self.refused += 1
            log.warning("help scout webhook refused", status=status)
        reason = _REASONS.get(status, "Error")
        with contextlib.suppress(ConnectionError):
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode("ascii"))
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> int:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400
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
                return 400
            headers[name.strip().lower()] = value.strip()
        else:
            raise _Refused(431)
        if parts[0] != "POST":
            return 405
        if "transfer-encoding" in headers or "content-length" not in headers:
            return 411
        length = int(headers["content-length"])
        if length < 0:
            return 400
        if length > self.max_body:
            return 413
        body = await reader.readexactly(length)
        if not verify(self._secret, body, headers.get(SIGNATURE_HEADER)):
            return 401
        log.info("help scout webhook", kind=headers.get("x-helpscout-event", "")[:80])
        return 200
