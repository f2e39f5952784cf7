"""`supportbot demo`: the real pipeline on a simulated clock, told as a timeline.

Mail goes into a fresh local Maildir, the worker runs exactly as in production (same
store, rules, templates, outbox), and the clock is moved forward instead of waiting, so
the whole story (acknowledgement, forward, ask for details, check-in, closure, a reply
that cancels the follow-ups, an auto-reply left alone) takes seconds.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from bot.worker import Worker

MAIL = Path(__file__).parent / "mail"

Printer = Callable[[str], None]


def deliver(inbox: Path, raw: bytes, when: datetime) -> None:
    """Drop a message into the Maildir the way a delivery agent would (new/, mtime = arrival)."""
    box = mailbox.Maildir(str(inbox), create=True)
    key = box.add(mailbox.MaildirMessage(raw))
    path = inbox / "new" / key
    ts = when.timestamp()
    os.utime(path, (ts, ts))


class Timeline:
    """Prints the activity log as it grows, grouped under the simulated time."""

    def __init__(self, store: Store, out: Printer) -> None:
        self.store = store
        self.out = out
        self.seen = 0

    def show(self, heading: str) -> None:
        self.out("")
        self.out(f"== {heading}")
        rows = self.store.activity(limit=100000)
        for row in rows[self.seen:]:
            ticket = f"#{row['ticket_id']}" if row["ticket_id"] else "  -"
            classified = row["rule"] and row["action"] == "classified"
            rule = f"  [rule: {row['rule']}]" if classified else ""
            self.out(f"   {row['at'][11:16]}  {ticket:>4}  {row['action']:<18} "
                     f"{row['detail']}{rule}")
        self.seen = len(rows)


async def _step(worker: Worker, clock: FakeClock, timeline: Timeline, heading: str) -> None:
    await worker.cycle()
    timeline.show(f"{clock.now():%a %d %b %H:%M} UTC - {heading}")


def _empty_directory(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


async def run_demo(settings: Settings, directory: Path, out: Printer = print) -> dict[str, Any]:
    """Run the story in ``directory`` (wiped first); returns a summary for tests."""
    await asyncio.to_thread(_empty_directory, directory)
    inbox, outbox = directory / "inbox", directory / "outbox"
    settings = settings.with_(
        state_path=directory / "supportbot.db", maildir_path=inbox, outbox_maildir_path=outbox,
        imap=None, smtp=None, helpscout=None, alert_webhook_url=None, dry_run=False,
        backfill_hours=24.0)
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=today.weekday())  # a Monday morning
    clock = FakeClock(start)
    out(f"supportbot demo: a Monday at the support desk, in {directory}")
    out("Six emails arrive: a deliverability emergency, a billing question, two tickets too "
        "vague to act on, a question for the team, and an out-of-office auto-reply.")
    for i, path in enumerate(sorted(MAIL.glob("*.eml"))):
        deliver(inbox, path.read_bytes(), start - timedelta(minutes=10 - i))

    async with open_worker(settings, clock=clock) as worker:
        timeline = Timeline(worker.store, out)
        await _step(worker, clock, timeline, "the bot reads the inbox and answers")
        clock.advance(timedelta(hours=23))
        deliver(inbox, (MAIL / "later" / "4-reply.eml").read_bytes(), clock.now())
        await _step(worker, clock, timeline,
                    "23 h later: Priya replies with details (her follow-ups are cancelled)")
        clock.advance(timedelta(hours=1, minutes=1))
        await _step(worker, clock, timeline,
                    "24 h after asking: Chris has not replied, so a kind check-in goes out")
        clock.advance(timedelta(hours=24))
        await _step(worker, clock, timeline,
                    "another day of silence: the closure, and owners whose tickets saw no "
                    "update for 48 h get a reminder")
        summary = summarise(worker.store)

    out("")
    out("== Outcome per ticket")
    for t in summary["tickets"]:
        out(f"   #{t['id']:<3} {t['requester']:<34} {t['subject'][:34]!r:<37} "
            f"priority={t['priority'] or '-':<8} first action={t['first_action'] or '-':<12} "
            f"now {t['state']}")
    for ignored in summary["ignored"]:
        out(f"   ignored: {ignored['from']} {ignored['subject']!r}: {ignored['reason']}")
    summary["helpscout"] = await helpscout_story(settings, directory, out)
    out("")
    out(f"The mail the bot wrote is in {outbox}/new ({summary['sent']} messages); "
        f"its state is {directory / 'supportbot.db'}.")
    out(f"Try: SUPPORTBOT_STATE={directory / 'supportbot.db'} supportbot log 3")
    return summary


def summarise(store: Store) -> dict[str, Any]:
    tickets = []
    for t in store.tickets_since(datetime(1970, 1, 1, tzinfo=UTC)):
        replies = [r for r in store.ticket_outbox(t.id)
                   if r["kind"] in {"acknowledge", "ask_info", "answer", "forward", "forwarded"}]
        first = replies[0]["kind"] if replies else None
        tickets.append({"id": t.id, "requester": t.requester, "subject": t.subject,
                        "priority": t.priority, "topic": t.topic, "state": t.state,
                        "owner": t.owner, "first_action": "forward" if first == "forwarded"
                        else first,
                        "kinds": [r["kind"] for r in store.ticket_outbox(t.id)]})
    ignored = [{"from": r["from_addr"], "subject": r["subject"], "reason": r["reason"]}
               for r in store.conn.execute(
                   "SELECT from_addr, subject, reason FROM messages WHERE status = 'ignored'")]
    sent = store.outbox_counts().get("sent", 0)
    return {"tickets": tickets, "ignored": ignored, "sent": sent}


async def helpscout_story(settings: Settings, directory: Path, out: Printer) -> dict[str, Any]:
    """The same desk in Help Scout: a local fake of the Mailbox API v2, over real HTTP."""
    from bot.demo.fake_helpscout import FakeHelpScout

    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    clock = FakeClock(today - timedelta(days=today.weekday()))
    fake = FakeHelpScout(clock=clock)
    out("")
    out("Part two: the same desk working inside Help Scout (a local fake of the Mailbox API v2, "
        "over HTTP). Replies, notes and tags are written in the conversations themselves.")
    urgent = fake.add_conversation(
        "Campaign emails bouncing", "sam@harbourhomes.example",
        "Our Tuesday newsletter bounced for half the list with 550 5.7.1 errors.",
        customer_name="Sam Rivera")
    vague = fake.add_conversation("help", "lee@northside.example", "help pls",
                                  customer_name="Lee Park")
    with fake.serve() as url:
        from bot.config import HelpScoutSettings

        hs_settings = settings.with_(
            state_path=directory / "helpscout.db", maildir_path=None, outbox_maildir_path=None,
            helpscout=HelpScoutSettings(app_id=fake.app_id, app_secret=fake.app_secret,
                                        mailbox_id=fake.mailbox_id, base_url=url))
        async with open_worker(hs_settings, clock=clock) as worker:
            timeline = Timeline(worker.store, out)
            await _step(worker, clock, timeline, "the bot reads new conversations and answers")
            clock.advance(timedelta(hours=24, minutes=1))
            await _step(worker, clock, timeline,
                        "24 h later: a check-in in the silent conversation")
            clock.advance(timedelta(hours=24, minutes=1))
            await _step(worker, clock, timeline, "another day: closure, conversation closed")
    result = {}
    for conv in (urgent, vague):
        c = fake.conversation(conv)
        threads = [t["type"] for t in fake.threads(conv)]
        tags = sorted(t["tag"] if isinstance(t, dict) else str(t) for t in c.get("tags", []))
        out(f"   Help Scout #{c['number']} {c['subject']!r}: status {c['status']}, "
            f"threads {threads}, tags {tags}")
        result[c["number"]] = {"status": c["status"], "threads": threads, "tags": tags}
    return result
