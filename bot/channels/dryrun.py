"""The channel `--dry-run` uses: prints what would be sent, sends nothing."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from email import message_from_bytes, policy

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome


class DryRunChannel:
    def __init__(self, name: str, out: object = None) -> None:
        self.name = name
        self.out = out or sys.stdout
        self.items: list[OutboxItem] = []

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        for item in items:
            self.items.append(item)
            print(f"would send {item.kind} for ticket #{item.ticket_id} via {item.channel} "
                  f"to {', '.join(item.recipients)}: {describe(item)}", file=self.out)  # type: ignore[call-overload]
        return [SendOutcome("sent", "dry run") for _ in items]

    async def aclose(self) -> None:
        return None


def describe(item: OutboxItem) -> str:
    if item.channel in {"smtp", "maildir"}:
        msg = message_from_bytes(item.payload, policy=policy.default)
        return repr(str(msg.get("Subject", "")))
    return item.payload[:120].decode("utf-8", "replace")
