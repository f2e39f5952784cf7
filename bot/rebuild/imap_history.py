"""Reading the mailbox's memory over IMAP: our copies in the Sent folder, the support folder's ids.

Only header fields are fetched (a forward may carry a 31 MB original; its second part's
Message-ID is all the rebuild needs), in chunks, read-only (EXAMINE): nothing in the
mailbox changes. Blocking; the caller runs it on a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bot.config import ImapSettings
from bot.errors import MalformedMessage, SourceError
from bot.imap_connection import close_quietly, connect, describe
from bot.mail.parse import parse_message
from bot.rebuild.evidence import SENT_FIELDS, InboxEntry, SentMessage, read_sent
from bot.sources.imap import ledger_ref
from bot.vocab import spec

CHUNK = 500
_SENT_ITEMS = [f"BODY.PEEK[HEADER.FIELDS ({' '.join(SENT_FIELDS)})]".encode(), b"INTERNALDATE"]
_ORIGINAL_ITEMS = [b"BODY.PEEK[2.HEADER.FIELDS (MESSAGE-ID)]"]  # the attached message/rfc822
_INBOX_ITEMS = [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", b"INTERNALDATE"]


@dataclass(frozen=True)
class MailHistory:
    sent: list[SentMessage]
    inbox: list[InboxEntry]


def read_mail_history(settings: ImapSettings, sent_folder: str, *, ca_file: Path | None = None,
                      tls_insecure: bool = False, timeout: float = 60.0) -> MailHistory:
    """Our messages in ``sent_folder`` and every Message-ID in the support folder;
    `SourceError` (`AuthError` for refused credentials) when the mailbox cannot be read."""
    try:
        client = connect(settings, ca_file=ca_file, tls_insecure=tls_insecure, timeout=timeout)
        try:
            sent = list(_sent(client, sent_folder)) if client.folder_exists(sent_folder) else []
            inbox = list(_inbox(client, settings.folder)) if sent else []
            client.logout()
        finally:
            close_quietly(client)
    except SourceError:
        raise
    except (OSError, IMAPClientError) as exc:
        raise SourceError(f"Sent folder {sent_folder!r}: {describe(exc, settings)}") from exc
    return MailHistory(sent=sent, inbox=inbox)


def _sent(client: IMAPClient, folder: str) -> Iterator[SentMessage]:
    client.select_folder(folder, readonly=True)
    found: dict[int, tuple[bytes, datetime]] = {}
    for chunk in _chunks(client.search("ALL")):
        for uid, row in client.fetch(chunk, _SENT_ITEMS).items():
            found[uid] = (_section(row, b"BODY[HEADER"), _internaldate(row))
    messages = {uid: read_sent(headers, at) for uid, (headers, at) in found.items()}
    carrying = [uid for uid, m in messages.items()
                if m is not None and spec(m.kind).attach_original]
    for chunk in _chunks(carrying):
        for uid, row in client.fetch(chunk, _ORIGINAL_ITEMS).items():
            headers, at = found[uid]
            messages[uid] = read_sent(headers, at, _section(row, b"BODY[2.HEADER"))
    yield from (m for _, m in sorted(messages.items()) if m is not None)


def _inbox(client: IMAPClient, folder: str) -> Iterator[InboxEntry]:
    info = client.select_folder(folder, readonly=True)
    uidvalidity = int(info[b"UIDVALIDITY"])
    for chunk in _chunks(client.search("ALL")):
        for uid, row in sorted(client.fetch(chunk, _INBOX_ITEMS).items()):
            mid = _message_id(_section(row, b"BODY[HEADER"))
            if mid:
                yield InboxEntry(ref=ledger_ref(folder, uidvalidity, uid), message_id=mid,
                                 received_at=_internaldate(row), folder=folder,
                                 uidvalidity=uidvalidity, uid=uid)


def _section(row: dict[bytes, object], prefix: bytes) -> bytes:
    """A fetched body section by the start of its name (servers echo the field list freely)."""
    for key, value in row.items():
        if isinstance(key, bytes) and key.upper().startswith(prefix) and isinstance(value, bytes):
            return value
    return b""


def _internaldate(row: dict[bytes, object]) -> datetime:
    value = row.get(b"INTERNALDATE")
    if not isinstance(value, datetime):
        raise SourceError("IMAP server gave no INTERNALDATE while reading the mailbox's history")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _message_id(headers: bytes) -> str | None:
    """The Message-ID exactly as the pipeline will read it from the whole message."""
    try:
        return parse_message(headers + b"\r\n").message_id
    except MalformedMessage:
        return None


def _chunks(uids: Sequence[int] | Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(uids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]
