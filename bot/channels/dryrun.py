"""The channel `--dry-run` uses: prints what would be sent, sends nothing."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from email import message_from_bytes, policy
from typing import TextIO

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.vocab import ChannelName, SendStatus


class DryRunChannel:
    def __init__(self, name: str, out: TextIO | None = None) -> None:
        self.name = name
        self.out: TextIO = out if out is not None else sys.stdout
        self.items: list[OutboxItem] = []

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        for item in items:
            self.items.append(item)
            print(f"would send {item.kind} for ticket #{item.ticket_id} via {item.channel} "
                  f"to {', '.join(item.recipients)}: {describe(item)}", file=self.out)
            outcome = SendOutcome(SendStatus.SENT, "dry run")
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(item, outcome)
        return outcomes

    async def aclose(self) -> None:
        return None


def describe(item: OutboxItem) -> str:
    if item.channel in {ChannelName.SMTP, ChannelName.MAILDIR}:
        msg = message_from_bytes(item.payload, policy=policy.default)
        return repr(str(msg.get("Subject", "")))
    return item.payload[:120].decode("utf-8", "replace")
