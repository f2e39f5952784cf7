"""The mailbox's Sent folder: where each message the bot sent over SMTP is filed, and looked up.

It closes the outbox's last crash window. A send whose outcome is unknown (the SMTP server
accepted it, then the bot died before the store recorded it) is looked up here by its
Message-ID before being sent again. Filing the copy also lets the human agents see, in their
own mail client, what the bot sent on their behalf (flagged `\\Seen`: it is not new mail).

The blocking methods (`append`, `contains`, `close`) run imapclient on the caller's thread;
the async wrappers run them on this object's own single thread, so the event loop never waits
on a socket and one connection is reused for every call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bot.config import ImapSettings
from bot.errors import AuthError, ChannelError
from bot.imap_connection import connect, describe, transient, warn_about_tls

log = structlog.get_logger(__name__)

T = TypeVar("T")
SEEN = b"\\Seen"


class ImapSentFolder:
    """APPEND sent messages to ``folder`` (created when missing) and find them by Message-ID."""

    def __init__(self, settings: ImapSettings, folder: str = "Sent", *,
                 ca_file: Path | None = None, tls_insecure: bool = False,
                 timeout: float = 30.0) -> None:
        self.settings = settings
        self.folder = folder
        self.ca_file = ca_file
        self.tls_insecure = tls_insecure
        self.timeout = timeout
        self._client: IMAPClient | None = None
        self._lock = threading.Lock()  # one connection, one command at a time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-sent")
        warn_about_tls(settings, tls_insecure)

    # -- blocking ---------------------------------------------------------------------------
    def append(self, raw: bytes, when: datetime) -> None:
        """File ``raw`` with `\\Seen` and ``when`` as its INTERNALDATE. Raises `ChannelError`."""
        self._run(self._append, raw, when)

    def contains(self, message_id: str) -> bool:
        """Whether a message with this Message-ID (angle brackets included) is in the folder."""
        return self._run(self._contains, message_id)

    def close(self) -> None:
        with self._lock:
            self._drop(logout=True)

    # -- async ------------------------------------------------------------------------------
    async def append_async(self, raw: bytes, when: datetime) -> None:
        await self._in_thread(self.append, raw, when)

    async def contains_async(self, message_id: str) -> bool:
        return await self._in_thread(self.contains, message_id)

    async def aclose(self) -> None:
        await self._in_thread(self.close)
        self._executor.shutdown(wait=True)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- the work ---------------------------------------------------------------------------
    def _append(self, client: IMAPClient, raw: bytes, when: datetime) -> None:
        try:
            client.append(self.folder, raw, flags=(SEEN,), msg_time=when)
        except IMAPClientError as exc:
            if transient(exc) or "TRYCREATE" not in str(exc).upper():
                raise
            client.create_folder(self.folder)
            client.subscribe_folder(self.folder)  # so mail clients list it
            client.append(self.folder, raw, flags=(SEEN,), msg_time=when)

    def _contains(self, client: IMAPClient, message_id: str) -> bool:
        if not client.folder_exists(self.folder):
            return False
        client.select_folder(self.folder, readonly=True)  # EXAMINE: a fresh view, no flag changes
        # HEADER search is a substring match; the angle brackets make it an exact one.
        return bool(client.search(["HEADER", "Message-ID", message_id]))

    def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run on the shared connection; one reconnect after a broken one, then `ChannelError`."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None:
                        self._client = connect(self.settings, ca_file=self.ca_file,
                                               tls_insecure=self.tls_insecure,
                                               timeout=self.timeout)
                    return fn(self._client, *args)
                except AuthError as exc:
                    self._drop()
                    raise ChannelError(f"Sent folder: {exc}") from None
                except Exception as exc:
                    self._drop()
                    if attempt == 1 and transient(exc):
                        continue  # a connection kept between sends may have timed out
                    raise ChannelError(f"Sent folder {self.folder!r}: "
                                       f"{describe(exc, self.settings)}") from exc
        raise AssertionError("unreachable: the loop returns or raises")

    def _drop(self, logout: bool = False) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if logout:
                client.logout()
            else:
                client.shutdown()
        except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail in any way
            log.debug("Sent folder connection close failed", error=str(exc))
