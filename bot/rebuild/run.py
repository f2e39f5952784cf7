"""When to rebuild: once, before the first read of a store that holds nothing at all.

A store with any cursor, ledger entry or ticket has its own memory and is never rebuilt;
one that was rebuilt says so in its meta table (`rebuild:at`), so an empty mailbox is read
once, not at every start. Several workers on one new PostgreSQL database: the one holding
the `rebuild` lease rebuilds, the others wait for it before reading anything. A history
that cannot be read (the server is down) keeps its source from being read: answering
without it would re-answer the window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from bot.config import Settings
from bot.errors import SourceError
from bot.rebuild.helpscout import conversations_with_ours
from bot.rebuild.imap_history import read_mail_history
from bot.rebuild.restore import Restorer
from bot.rules.ruleset import RuleSet
from bot.sources.helpscout import HelpScoutSource
from bot.store import Store

log = structlog.get_logger(__name__)

DONE_KEY = "rebuild:at"
WANTED_KEY = "rebuild:wanted"  # the sources whose history is still to be read (JSON list)
IMAP, HELPSCOUT = "imap", "helpscout"  # the sources' names (`Source.name`)


class Rebuild:
    """The first step of each cycle until done (``Worker.cycle`` asks it every cycle).

    Each source's history gates that source alone: a Help Scout outage does not keep the
    IMAP folder from being rebuilt and read. Which sources still wait is kept in the store
    (`rebuild:wanted`), so a restart half-way finishes the rebuild instead of forgetting it.
    """

    def __init__(self, settings: Settings, *, helpscout: HelpScoutSource | None = None) -> None:
        self.settings = settings
        self.helpscout = helpscout
        self.settled = False

    @property
    def parts(self) -> list[str]:
        """The sources with evidence to rebuild from."""
        imap, out = self.settings.imap, []
        if imap is not None and imap.sent_folder and self.settings.smtp is not None:
            out.append(IMAP)
        if self.helpscout is not None:
            out.append(HELPSCOUT)
        return out

    async def gate(self, store: Store, now: datetime, ruleset: RuleSet,
                   may_rebuild: Callable[[], bool] = lambda: True) -> dict[str, str]:
        """Rebuild what an empty store still lacks; returns the sources that must not be
        read yet, with why (their history is unreadable, or another worker holds the
        rebuild: ``may_rebuild``, its lease)."""
        if self.settled:
            return {}
        wanted = self._wanted(store, now)
        if not wanted:
            self.settled = True
            return {}
        if not may_rebuild():
            return dict.fromkeys(wanted, "another worker is rebuilding the empty store")
        blocked: dict[str, str] = {}
        for part in wanted:
            try:
                await self._rebuild(part, store, now, ruleset)
            except SourceError as exc:
                blocked[part] = f"empty store, history not readable yet: {exc}"
                log.error("empty store: this source's history could not be read; it is not "
                          "read or answered until it can be", source=part, error=str(exc))
        self.settled = not blocked
        return blocked

    def _wanted(self, store: Store, now: datetime) -> list[str]:
        stored = store.get_meta(WANTED_KEY)
        if stored is not None:
            return [p for p in json.loads(stored) if p in self.parts]
        if not self.parts or not store.is_empty() or store.get_meta(DONE_KEY):
            return []
        with store.transaction():
            store.set_meta(WANTED_KEY, json.dumps(self.parts))
        return self.parts

    async def _rebuild(self, part: str, store: Store, now: datetime, ruleset: RuleSet) -> None:
        restorer = Restorer(store, ruleset, now, from_addr=self.settings.from_addr)
        imap = self.settings.imap
        history = None
        conversations = []
        if part == IMAP and imap is not None and imap.sent_folder:
            history = await asyncio.to_thread(
                read_mail_history, imap, imap.sent_folder, ca_file=self.settings.ca_file,
                tls_insecure=self.settings.tls_insecure)
        elif part == HELPSCOUT and self.helpscout is not None:
            s = ruleset.settings
            since = now - timedelta(hours=self.settings.backfill_hours) - s.check_in_after \
                - s.close_after
            conversations = [c async for c in conversations_with_ours(self.helpscout, since)]
        with store.transaction():
            left = json.loads(store.get_meta(WANTED_KEY) or "[]")
            if part not in left:  # another worker got there first
                return
            if history is not None:
                restorer.mail(history.sent, history.inbox)
            for conversation, threads in conversations:
                restorer.conversation(conversation, threads)
            left.remove(part)
            store.set_meta(WANTED_KEY, json.dumps(left))
            if not left:
                store.set_meta(DONE_KEY, now.isoformat())
            store.log(now, None, "rebuilt", f"empty store, {part}: " + restorer.done.describe())
        log.warning("empty store rebuilt from the mailbox's history", source=part,
                    tickets=restorer.done.tickets, known=restorer.done.known,
                    sent=restorer.done.sent, timers=restorer.done.timers)


def no_evidence_warning(settings: Settings) -> str | None:
    """What `run` says at start-up when losing the store would re-answer the backfill window."""
    if settings.smtp is None or settings.state_url is not None:
        # Help Scout replies are their own evidence; a Maildir outbox is local; a database
        # given by URL is the durable store this warning recommends
        return None
    if settings.imap is not None and settings.imap.sent_folder:
        return None
    if settings.imap is None and settings.helpscout is not None:
        return None  # SMTP carries only the team's alerts
    return (f"mail goes out over SMTP with no Sent folder: if this store is lost, the next "
            f"start re-answers the last {settings.backfill_hours:g} h of mail "
            f"(SUPPORTBOT_BACKFILL_HOURS). Set SUPPORTBOT_IMAP_SENT_FOLDER so an empty store "
            f"can be rebuilt from the bot's own sent mail, or keep the state where it "
            f"survives restarts (SUPPORTBOT_STATE on a durable volume, or a PostgreSQL URL)")
