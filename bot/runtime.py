"""Wiring: which sources and channels a set of Settings asks for.

The only place that knows every adapter; the worker itself sees protocols.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from bot.channels.base import Channel
from bot.channels.dryrun import DryRunChannel
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.outbox import SentFolder
from bot.rebuild.run import Rebuild
from bot.rules.reload import RulesHolder
from bot.sources.base import Source
from bot.store import Store
from bot.store.copy import copy_state
from bot.vocab import ChannelName
from bot.worker import Worker

log = structlog.get_logger(__name__)


@dataclass
class Parts:
    sources: list[Source]
    channels: dict[str, Channel]
    sent_folder: SentFolder | None
    rebuild: Rebuild


def build_parts(settings: Settings, store: Store, clock: Clock) -> Parts:
    sources: list[Source] = []
    channels: dict[str, Channel] = {}
    sent_folder: SentFolder | None = None
    helpscout_client = None
    helpscout_source = None

    if settings.smtp is not None:
        from bot.channels.smtp import SmtpChannel

        channels[ChannelName.SMTP] = SmtpChannel(settings.smtp, ca_file=settings.ca_file,
                                       tls_insecure=settings.tls_insecure)
    elif settings.outbox_maildir_path is not None:
        from bot.channels.maildir import MaildirChannel

        channels[ChannelName.MAILDIR] = MaildirChannel(settings.outbox_maildir_path)

    if settings.alert_webhook_url:
        from bot.channels.webhook import WebhookChannel

        channels[ChannelName.WEBHOOK] = WebhookChannel(settings.alert_webhook_url)

    if settings.helpscout is not None:
        from bot.channels.helpscout import HelpScoutChannel
        from bot.helpscout.client import HelpScoutClient
        from bot.helpscout.merges import StoredMerges
        from bot.sources.helpscout import HelpScoutSource

        helpscout_client = HelpScoutClient(settings.helpscout, clock=clock,
                                           merges=StoredMerges(store))
        channels[ChannelName.HELPSCOUT] = HelpScoutChannel(helpscout_client)
        helpscout_source = HelpScoutSource(helpscout_client, settings.helpscout, store,
                                           poll_seconds=settings.poll_seconds, clock=clock,
                                           backfill_hours=settings.backfill_hours)
        sources.append(helpscout_source)

    if settings.imap is not None:
        from bot.sources.imap import ImapSource

        sources.append(ImapSource(settings.imap, store, poll_seconds=settings.poll_seconds,
                                  ca_file=settings.ca_file, tls_insecure=settings.tls_insecure))
        if settings.imap.sent_folder and ChannelName.SMTP in channels:
            from bot.channels.imap_sent import ImapSentFolder

            sent_folder = ImapSentFolder(settings.imap, settings.imap.sent_folder,
                                         ca_file=settings.ca_file,
                                         tls_insecure=settings.tls_insecure)

    if settings.embedded_default and settings.maildir_path is not None:
        from bot.sources.maildir import MaildirSource

        sources.append(MaildirSource(settings.maildir_path, store, store.has_ref,
                                     poll_seconds=settings.poll_seconds))
    return Parts(sources, channels, sent_folder, Rebuild(settings, helpscout=helpscout_source))


def dry_run_copy(state: Path | str) -> Path:
    """A private SQLite copy of the state (a file, or a PostgreSQL database): dry-run works
    on it, so the real store never changes."""
    tmpdir = Path(tempfile.mkdtemp(prefix="supportbot-dryrun-"))
    copy = tmpdir / "state.db"
    if isinstance(state, str):
        src_store, dst_store = Store(state), Store(copy)
        try:
            copy_state(src_store, dst_store)
        finally:
            src_store.close()
            dst_store.close()
        return copy
    state_path = state
    if state_path.exists():
        src = sqlite3.connect(str(state_path))
        dst = sqlite3.connect(str(copy))
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
    return copy


@asynccontextmanager
async def open_worker(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Worker]:
    """A ready worker for `settings` (dry-run: on a copy of the store, printing channels)."""
    clock = clock or SystemClock()
    rules = RulesHolder(settings.rules_path, settings.templates_path)
    state_path = dry_run_copy(settings.state) if settings.dry_run else settings.state_path
    store = Store(state_path if settings.dry_run else settings.state)
    parts = build_parts(settings, store, clock)
    channels = parts.channels
    if settings.dry_run:
        channels = {name: DryRunChannel(name) for name in channels}
    worker = Worker(settings, store, clock, rules, parts.sources, channels,
                    sent_folder=None if settings.dry_run else parts.sent_folder,
                    rebuild=parts.rebuild)
    try:
        yield worker
    finally:
        await worker.aclose()
        if parts.sent_folder is not None:
            await parts.sent_folder.aclose()  # type: ignore[attr-defined]
        if settings.dry_run:
            for channel in parts.channels.values():
                await channel.aclose()
        store.close()
        if settings.dry_run:
            shutil.rmtree(state_path.parent, ignore_errors=True)
