"""Outbox items for channel tests: real composed mail, as the planner would store it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.channels.base import Channel, OutboxItem, SendOutcome
from bot.mail.compose import compose, make_message_id, ticket_subject

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BOT = "support@example.com"


def item(n: int = 1, *, to: Sequence[str] = ("ann@customer.example",), ticket: int = 7,
         kind: str = "acknowledge", envelope: Sequence[str] | None = None,
         **compose_args: object) -> OutboxItem:
    message_id = make_message_id(ticket, kind, "example.com")
    args: dict[str, object] = {
        "kind": kind, "from_header": f"Acme Support <{BOT}>", "to": list(to),
        "subject": ticket_subject("Export broken", ticket), "text": f"Hello #{n}\n",
        "html": None, "message_id": message_id, "date": NOW,
        "in_reply_to": "<orig@customer.example>", "references": ["<root@customer.example>"]}
    args.update(compose_args)
    payload = compose(**args)  # type: ignore[arg-type]
    return OutboxItem(id=n, idem_key=f"t{ticket}:{kind}:{n}", channel="smtp", kind=kind,
                      ticket_id=ticket, message_id=message_id, envelope_from=BOT,
                      recipients=tuple(to if envelope is None else envelope), payload=payload)


def send(ch: Channel, items: Sequence[OutboxItem]) -> list[SendOutcome]:
    async def run() -> list[SendOutcome]:
        try:
            return await ch.send_batch(items)
        finally:
            await ch.aclose()
    return asyncio.run(run())
