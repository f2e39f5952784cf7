"""Help Scout API efficiency: a 200-conversation backlog against the fake server over HTTP.

The fake enforces LIMIT units per window (writes cost 2), like Help Scout's per-minute
budget; the window is shortened (default 4 s instead of 60 s) so the same pacing logic
runs in seconds. The source reads the backlog; the channel acts on every new ticket:
an acknowledgement (reply + priority tag) or, for a share of them, a forward (assign +
internal note + reply to the requester + tags), exactly the operations the planner
records. Prints units per ticket by action, throughput as a fraction of the limit
(target >= 90%) and 429s received (target 0); then what a first start on a mailbox of
5,000 old conversations plus 2 new ones costs in list calls.

    .venv/bin/python bench/bench_helpscout.py [--conversations 200] [--limit 400] [--window 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.base import OutboxItem
from bot.channels.helpscout import HelpScoutChannel
from bot.config import HelpScoutSettings
from bot.demo.fake_helpscout import FakeHelpScout
from bot.helpscout import ops
from bot.helpscout.client import HelpScoutClient
from bot.sources.helpscout import HelpScoutSource
from bot.vocab import HelpScoutStatus


class Cursors(dict[str, str]):
    def get_cursor(self, key: str) -> str | None:
        return self.get(key)


def plan(item_no: int, conversation: int, customer: int, ref: str, forward: bool) -> list[bytes]:
    """The operations the planner records for one new ticket."""
    if not forward:
        return [ops.reply_op(conversation, customer, "Hi - thanks for writing in. We're on it.",
                             None, HelpScoutStatus.ACTIVE,
                             f"sb:t{item_no}:acknowledge:{ref}"),
                ops.tags_op(conversation, ["priority-normal"])]
    key = f"sb:t{item_no}:forward:{ref}"
    return [ops.assign_op(conversation, 12),
            ops.note_op(conversation, "Assigned by supportbot to Desmond (rule: deliverability).",
                        f"{key}:note"),
            ops.reply_op(conversation, customer, "Desmond from our deliverability team has your "
                         "ticket and will be in touch.", None, HelpScoutStatus.ACTIVE,
                         f"{key}:reply"),
            ops.tags_op(conversation, ["priority-critical", "deliverability"])]


async def run(conversations: int, limit: int, window: float, forward_every: int) -> None:
    fake = FakeHelpScout(limit=limit, window_seconds=window)
    now = datetime.now(UTC)
    for n in range(conversations):
        fake.add_conversation(f"Question {n}", f"customer{n}@example.com",
                              f"<p>Hello, I need help with order {n}.</p>",
                              created_at=now - timedelta(minutes=conversations - n))
    with fake.serve() as base_url:
        settings = HelpScoutSettings(app_id=fake.app_id, app_secret=fake.app_secret,
                                     mailbox_id=fake.mailbox_id, base_url=base_url)
        client = HelpScoutClient(settings, rate_window=window)
        cursors = Cursors()
        source = HelpScoutSource(client, settings, cursors, poll_seconds=30,
                                 clock=client.clock)
        channel = HelpScoutChannel(client)
        per_action: dict[str, list[int]] = {"acknowledge": [], "forward": []}
        action_units = 0
        tickets = 0
        handled: set[str] = set()
        start = time.monotonic()
        for _ in range(2):  # the backlog, then the next poll that sees our own threads
            async for batch in source.batches():
                for item in batch.items:
                    if item.author != "customer" or item.message is None or item.ref in handled:
                        continue  # the worker's ledger dedupes refs the same way
                    handled.add(item.ref)
                    tickets += 1
                    forward = tickets % forward_every == 0
                    msg = item.message
                    payloads = plan(tickets, msg.conversation_id or 0, msg.customer_id or 0,
                                    item.ref, forward)
                    before = fake.stats.units
                    outcomes = await channel.send_batch([
                        OutboxItem(n, f"k{tickets}.{n}", "helpscout", "x", tickets, "", "", (), p)
                        for n, p in enumerate(payloads)])
                    assert all(o.status == "sent" for o in outcomes), outcomes
                    cost = fake.stats.units - before
                    action_units += cost
                    per_action["forward" if forward else "acknowledge"].append(cost)
                if batch.cursor:
                    cursors[source.cursor_key] = batch.cursor
        elapsed = time.monotonic() - start
        waited = client.limiter.waited
        await channel.aclose()

    units = fake.stats.units
    list_units = units - action_units - 1  # minus the one-off GET /v2/users/me
    budget = limit / window
    print(f"Help Scout backlog: {conversations} conversations, limit {limit} units per "
          f"{window:g} s window (writes cost 2), over HTTP on loopback")
    print(f"  new tickets handled        {tickets} (acknowledge {len(per_action['acknowledge'])},"
          f" forward {len(per_action['forward'])})")
    for action, spent in per_action.items():
        if spent:
            print(f"  units per {action:<16} {mean(spent):.2f} (+ {list_units / tickets:.2f} "
                  f"share of list calls)")
    print(f"  list calls                 {list_units} units for 2 polls "
          f"({fake.stats.by_endpoint['GET /v2/conversations']} pages)")
    print(f"  total                      {units} units in {elapsed:.2f} s "
          f"({units / elapsed:.1f} units/s; limit {budget:.1f} units/s)")
    fraction = units / (elapsed * budget)
    print(f"  throughput / limit         {fraction:.1%} (target >= 90%: "
          f"{'met' if fraction >= 0.9 else 'NOT met'})")
    print(f"  429s received              {fake.stats.rate_limited} (target 0)")
    print(f"  time spent pacing          {waited:.2f} s")


async def first_start(old: int, new: int) -> None:
    """A first start on a big old mailbox: what the bounded listing costs."""
    fake = FakeHelpScout()
    now = datetime.now(UTC)
    for n in range(old):
        fake.add_conversation(f"Old {n}", f"old{n}@example.com", "<p>An old question.</p>",
                              created_at=now - timedelta(days=30, minutes=n))
    for n in range(new):
        fake.add_conversation(f"New {n}", f"new{n}@example.com", "<p>A new question.</p>",
                              created_at=now - timedelta(minutes=5 + n))
    with fake.serve() as base_url:
        settings = HelpScoutSettings(app_id=fake.app_id, app_secret=fake.app_secret,
                                     mailbox_id=fake.mailbox_id, base_url=base_url)
        client = HelpScoutClient(settings)
        source = HelpScoutSource(client, settings, Cursors(), poll_seconds=30,
                                 clock=client.clock)
        start = time.monotonic()
        items = [i for b in [b async for b in source.batches()] for i in b.items]
        elapsed = time.monotonic() - start
        await client.aclose()
    pages = fake.stats.by_endpoint["GET /v2/conversations"]
    print(f"First start: {old:,} old conversations + {new} new "
          f"(SUPPORTBOT_BACKFILL_HOURS=24)")
    print(f"  list calls                 {pages} ({fake.stats.units} units in {elapsed:.2f} s; "
          f"reading everything: {-(-(old + new) // 25):,} calls)")
    read = {i.message.conversation_id for i in items if i.message}
    print(f"  conversations read         {len(read)} (the new ones)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--window", type=float, default=4.0,
                        help="seconds per rate window (Help Scout: 60)")
    parser.add_argument("--forward-every", type=int, default=4,
                        help="every Nth ticket is a forward (default 4: a quarter)")
    parser.add_argument("--old", type=int, default=5000,
                        help="old conversations for the first-start figure")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(run(args.conversations, args.limit, args.window, args.forward_every))
    asyncio.run(first_start(args.old, 2))


if __name__ == "__main__":
    main()
