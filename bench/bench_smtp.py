"""SMTP send throughput: composed replies through SmtpChannel into a local aiosmtpd.

Usage: python bench/bench_smtp.py [--count 5000] [--batch 100] [--connections 1 2]
Each batch over the channel's sessions (one, and the default two: SUPPORTBOT_SMTP_CONNECTIONS),
reused within the batch; the server on loopback in its own thread, both in this one Python
process (so a second session only overlaps waiting, never the server's own CPU).
Target (issue 5): >= 300 messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.base import OutboxItem
from bot.channels.smtp import SmtpChannel
from bot.config import SmtpSettings
from bot.log import configure as configure_logging
from bot.mail.compose import compose, make_message_id, ticket_subject
from tests.servers.smtp import SmtpServer

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TEXT = ("Hi Ann,\n\nThanks for getting in touch - we've got your message and a member of the "
        "team will be with you shortly.\n\nKind regards,\nAcme Support\n")


def make_items(count: int) -> list[OutboxItem]:
    items = []
    for n in range(count):
        message_id = make_message_id(n, "acknowledge", "example.com")
        payload = compose(
            kind="acknowledge", from_header="Acme Support <support@example.com>",
            to=[f"customer{n}@customer.example"], subject=ticket_subject("Export broken", n),
            text=TEXT, html=f"<p>{TEXT}</p>", message_id=message_id, date=NOW,
            in_reply_to=f"<orig{n}@customer.example>", references=[f"<orig{n}@customer.example>"])
        items.append(OutboxItem(
            id=n, idem_key=f"t{n}:acknowledge:bench", channel="smtp", kind="acknowledge",
            ticket_id=n, message_id=message_id, envelope_from="support@example.com",
            recipients=(f"customer{n}@customer.example",), payload=payload))
    return items


async def send_all(channel: SmtpChannel, items: list[OutboxItem], batch: int) -> int:
    sent = 0
    for start in range(0, len(items), batch):
        outcomes = await channel.send_batch(items[start:start + batch])
        sent += sum(o.status == "sent" for o in outcomes)
    await channel.aclose()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    configure_logging(fmt="console", level="warning")

    started = time.perf_counter()
    items = make_items(args.count)
    compose_seconds = time.perf_counter() - started

    print(f"compose: {args.count} messages in {compose_seconds:.2f} s "
          f"({args.count / compose_seconds:,.0f} messages/s)")
    ok = True
    for sessions in args.connections:
        with SmtpServer() as server:
            channel = SmtpChannel(SmtpSettings(host=server.host, port=server.port, user=None,
                                               password=None, tls="none",
                                               connections=sessions))
            started = time.perf_counter()
            sent = asyncio.run(send_all(channel, items, args.batch))
            seconds = time.perf_counter() - started
            received = len(server.messages)
            connections = server.connections
        rate = sent / seconds if seconds else float("inf")
        print(f"smtp send, {sessions} session(s) per batch: {sent}/{args.count} sent, "
              f"{received} received, {connections} connections (batches of {args.batch}) in "
              f"{seconds:.2f} s: {rate:,.0f} messages/s (target >= 300)")
        ok = ok and sent == received == args.count and rate >= 300
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
