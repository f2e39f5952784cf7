"""Reading Help Scout's memory: every conversation of the mailbox, with its threads.

The same listing the source's first sync makes (status=all, threads embedded), read once
before it and over a longer window (the backfill window plus the follow-up schedule, so a
pending closure is found too), so that the conversations carrying threads of ours are
rebuilt before any of their threads is decided. The source's own `threads_of` classifies the threads
(customer, agent, ours by the invisible marker), so the two readings cannot disagree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bot.errors import AuthError, HelpScoutError, SourceError
from bot.sources.base import Inbound
from bot.sources.helpscout import HelpScoutSource
from bot.vocab import Author


async def conversations_with_ours(source: HelpScoutSource, since: datetime,
                                  ) -> AsyncIterator[tuple[dict[str, Any], list[Inbound]]]:
    """Each conversation modified since ``since`` that has a thread of ours, with the
    threads the source reads, in order."""
    try:
        async for conversation in source.client.list_conversations(
                source.settings.mailbox_id, since):
            threads = source.threads_of(conversation)
            if any(item.author == Author.SELF for item in threads):
                yield conversation, threads
    except AuthError:
        raise
    except HelpScoutError as exc:
        raise SourceError(f"Help Scout mailbox {source.settings.mailbox_id}: "
                          f"history unreadable: {exc}") from exc
