"""`supportbot demo`: the real pipeline on a simulated clock, told as a timeline.

Mail goes into a fresh local Maildir, the worker runs exactly as in production (same
store, rules, templates, outbox), and the clock is moved forward instead of waiting, so
the whole story (acknowledgement, forward, ask for details, the owner's answer reaching
the requester, a reply with details decided on again, check-ins, closure, an auto-reply
left alone) takes seconds.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.clock import FakeClock
from bot.config import Settings
from bot.demo.narrate import Delivery, Narrator, Printer, cut, maildir_deliveries, wrap
from bot.log import to_file
from bot.mail.html2text import html_to_text
from bot.runtime import open_worker
from bot.store import Store
from bot.vocab import ActionKind, MessageKind
from bot.worker import Worker

if TYPE_CHECKING:
    from bot.demo.fake_helpscout import FakeHelpScout

MAIL = Path(__file__).parent / "mail"
# the messages that say what the bot did first with a ticket (the forward's is its notice)
FIRST_ACTION_KINDS = frozenset({MessageKind.ACKNOWLEDGE, MessageKind.ASK_INFO, MessageKind.ANSWER,
                                MessageKind.FORWARD, MessageKind.FORWARDED})


def deliver(inbox: Path, raw: bytes, when: datetime) -> None:
    """Drop a message into the Maildir the way a delivery agent would (new/, mtime = arrival)."""
    box = mailbox.Maildir(str(inbox), create=True)
    key = box.add(mailbox.MaildirMessage(raw))
    path = inbox / "new" / key
    ts = when.timestamp()
    os.utime(path, (ts, ts))


@dataclass(frozen=True)
class Step:
    """One scene of the story: the clock moves on, mail arrives, the worker runs a cycle.

    Adding a scene is adding a row to a story below; the narrator prints what it caused.
    """

    after: timedelta  # how long after the previous scene
    heading: str  # what the reader should watch for
    mail: tuple[str, ...] = ()  # files under bot/demo/mail/ that arrive just before
    then: Callable[[], None] | None = None  # anything else that happens first
    owner_answers: tuple[int, str] | None = None  # (ticket, words): its owner presses Reply


MAIL_STORY: tuple[Step, ...] = (
    Step(timedelta(0), "the bot reads the inbox and answers"),
    Step(timedelta(hours=2), "the billing team presses Reply on the forward: the answer reaches "
         "Marcus in his own thread", owner_answers=(2, (
             "You're right, and I'm sorry: the second charge was a duplicate. I've refunded it "
             "today; it will show on your card within 3-5 working days."))),
    Step(timedelta(hours=21), "23 h later: Priya replies with details: decided again, the "
         "right team has it now", mail=("later/4-reply.eml",)),
    Step(timedelta(hours=1, minutes=1), "24 h after asking: Chris has not replied, so a kind "
         "check-in goes out"),
    Step(timedelta(hours=2), "a day after the billing answer: a check-in asks Marcus whether "
         "it is settled"),
    Step(timedelta(hours=22), "another day of silence: the closure, and owners whose tickets "
         "saw no update for 48 h get a reminder"),
)

HELPSCOUT_STORY: tuple[Step, ...] = (
    Step(timedelta(0), "the bot reads new conversations and answers"),
    Step(timedelta(hours=24, minutes=1), "24 h later: a check-in in the silent conversation"),
    Step(timedelta(hours=24, minutes=1), "another day: closure, conversation closed"),
)


async def play(story: Iterable[Step], worker: Worker, clock: FakeClock, narrator: Narrator,
               inbox: Path | None = None, outbox: Path | None = None) -> None:
    for step in story:
        clock.advance(step.after)
        for name in step.mail:
            assert inbox is not None, "a mail scene needs an inbox"
            deliver(inbox, (MAIL / name).read_bytes(), clock.now())
        if step.owner_answers is not None:
            assert inbox is not None and outbox is not None, "an owner's answer needs mail"
            deliver(inbox, owner_reply(outbox, *step.owner_answers), clock.now())
        if step.then is not None:
            step.then()
        await worker.cycle()
        narrator.step(clock.now(), step.heading)


def owner_reply(outbox: Path, ticket: int, words: str) -> bytes:
    """What the owner's mail client sends on Reply to the bot's forward of ``ticket``: To the
    forward's Reply-To, threaded under it, their words above the quoted forward."""
    box = mailbox.Maildir(str(outbox), create=False)
    forward = next(m for m in box if m["X-Supportbot-Kind"] == MessageKind.FORWARD
                   and m["X-Supportbot-Ticket"] == str(ticket))
    reply = EmailMessage()
    reply["From"] = f"Jordan Blake <{forward['To']}>"
    reply["To"] = str(forward["Reply-To"] or forward["From"])
    reply["Subject"] = f"Re: {forward['Subject']}"
    reply["Message-ID"] = f"<owner-answer-{ticket}@example.com>"
    reply["In-Reply-To"] = str(forward["Message-ID"])
    reply["References"] = str(forward["Message-ID"])
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply.set_content(f"{words}\n\nOn Monday, Acme Support wrote:\n> [#{ticket}] Assigned to "
                      "you\n")
    return reply.as_bytes()


def _empty_directory(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def _monday_morning() -> datetime:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today - timedelta(days=today.weekday())


async def run_demo(settings: Settings, directory: Path, out: Printer = print, *,
                   command: str = "supportbot") -> dict[str, Any]:
    """Run the story in ``directory`` (wiped first); returns a summary for tests."""
    await asyncio.to_thread(_empty_directory, directory)
    with to_file(directory / "worker.log", settings.log_level):
        return await _run(settings, directory, out, command)


async def _run(settings: Settings, directory: Path, out: Printer,
               command: str) -> dict[str, Any]:
    inbox, outbox = directory / "inbox", directory / "outbox"
    settings = settings.with_(
        state_path=directory / "supportbot.db", maildir_path=inbox, outbox_maildir_path=outbox,
        imap=None, smtp=None, helpscout=None, alert_webhook_url=None, dry_run=False,
        backfill_hours=24.0)
    start = _monday_morning()
    clock = FakeClock(start)
    for line in [*wrap(f"supportbot demo: a Monday at the support desk, in {directory}", ""),
                 *wrap("The clock is simulated: two days pass in seconds. The worker's own "
                       f"log (real clock) is in {directory / 'worker.log'}.", ""),
                 "",
                 *wrap("Six emails arrive: a deliverability emergency, a billing question, two "
                       "tickets too vague to act on, a question for the team, and an "
                       "out-of-office auto-reply.", "")]:
        out(line)
    for i, path in enumerate(sorted(MAIL.glob("*.eml"))):
        deliver(inbox, path.read_bytes(), start - timedelta(minutes=10 - i))

    async with open_worker(settings, clock=clock) as worker:
        narrator = Narrator(worker.store, maildir_deliveries(outbox), out)
        await play(MAIL_STORY, worker, clock, narrator, inbox, outbox)
        summary = summarise(worker.store)

    out("")
    out("== Outcome per ticket")
    for t in summary["tickets"]:
        out(cut(f"   #{t['id']:<3} {t['requester']:<30} {t['priority'] or '-':<9} "
                f"first {t['first_action'] or '-':<12} now {t['state']}"))
    for ignored in summary["ignored"]:
        for line in wrap(f"ignored: {ignored['from']} {ignored['subject']!r}: "
                         f"{ignored['reason']}", "   ", "     "):
            out(line)
    summary["helpscout"] = await helpscout_story(settings, directory, out)
    state = directory / "supportbot.db"
    out("")
    for line in [*wrap(f"The mail the bot wrote is in {outbox}/new ({summary['sent']} messages); "
                       f"its state is {state}.", ""),
                 "Try:", f"   export SUPPORTBOT_STATE={_here(state)}",
                 f"   {command} log 3", f"   {command} status"]:
        out(line)
    return summary


def _here(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summarise(store: Store) -> dict[str, Any]:
    tickets = []
    for t in store.tickets_since(datetime(1970, 1, 1, tzinfo=UTC)):
        replies = [r for r in store.ticket_outbox(t.id)
                   if r.kind in FIRST_ACTION_KINDS]
        first = replies[0].kind if replies else None
        tickets.append({"id": t.id, "requester": t.requester, "subject": t.subject,
                        "priority": t.priority, "topic": t.topic, "state": t.state,
                        "owner": t.owner,
                        "first_action": (ActionKind.FORWARD if first == MessageKind.FORWARDED
                                         else first),
                        "kinds": [r.kind for r in store.ticket_outbox(t.id)]})
    ignored = [{"from": r.from_addr, "subject": r.subject, "reason": r.reason}
               for r in store.messages_with_status("ignored")]
    sent = store.outbox_counts().get("sent", 0)
    return {"tickets": tickets, "ignored": ignored, "sent": sent}


async def helpscout_story(settings: Settings, directory: Path, out: Printer) -> dict[str, Any]:
    """The same desk in Help Scout: a local fake of the Mailbox API v2, over real HTTP."""
    from bot.config import HelpScoutSettings
    from bot.demo.fake_helpscout import FakeHelpScout

    clock = FakeClock(_monday_morning())
    fake = FakeHelpScout(clock=clock)
    out("")
    for line in wrap("Part two: the same desk working inside Help Scout (a local fake of the "
                     "Mailbox API v2, over HTTP). Replies, notes and tags are written in the "
                     "conversations themselves.", ""):
        out(line)
    urgent = fake.add_conversation(
        "Campaign emails bouncing", "sam@harbourhomes.example",
        "Our Tuesday newsletter bounced for half the list with 550 5.7.1 errors.",
        customer_name="Sam Rivera")
    vague = fake.add_conversation("help", "lee@northside.example", "help pls",
                                  customer_name="Lee Park")
    with fake.serve() as url:
        hs_settings = settings.with_(
            state_path=directory / "helpscout.db", maildir_path=None, outbox_maildir_path=None,
            helpscout=HelpScoutSettings(app_id=fake.app_id, app_secret=fake.app_secret,
                                        mailbox_id=fake.mailbox_id, base_url=url))
        async with open_worker(hs_settings, clock=clock) as worker:
            narrator = Narrator(worker.store, helpscout_deliveries(fake, worker.store), out)
            await play(HELPSCOUT_STORY, worker, clock, narrator)
    out("")
    result = {}
    for conv in (urgent, vague):
        c = fake.conversation(conv)
        threads = [t["type"] for t in fake.threads(conv)]
        tags = sorted(t["tag"] if isinstance(t, dict) else str(t) for t in c.get("tags", []))
        for line in wrap(f"Help Scout #{c['number']} {c['subject']!r} from "
                         f"{c['primaryCustomer']['email']}: status {c['status']}, "
                         f"threads {', '.join(threads)}; tags {', '.join(tags) or 'none'}",
                         "   ", "     "):
            out(line)
        result[c["number"]] = {"status": c["status"], "threads": threads, "tags": tags}
    return result


def helpscout_deliveries(fake: FakeHelpScout, store: Store) -> Callable[[], list[Delivery]]:
    """Threads the bot wrote in Help Scout since the last call: replies and notes."""
    seen: set[int] = set()

    def new() -> list[Delivery]:
        result = []
        for conv in fake.conversation_ids():
            number = fake.conversation(conv)["number"]
            ticket = store.ticket_by_conversation(conv)
            for thread in fake.threads(conv):
                if thread["id"] in seen or thread["type"] not in {"message", "note"}:
                    continue
                seen.add(thread["id"])
                where = f"in Help Scout #{number}"
                headline = (f"agents see a note {where}" if thread["type"] == "note" else
                            f"{', '.join(thread.get('to') or [])} receives a reply {where} "
                            f"(status {thread.get('status')})")
                result.append(Delivery(ticket.id if ticket else None, headline,
                                       html_to_text(str(thread.get("body") or ""))))
        return result
    return new
