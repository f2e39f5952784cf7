"""The core at its seams: a real SQLite store, the shipped templates, a small rules file.

``test_plan.py`` and ``test_followup.py`` drive the planner, the pipeline's ``act`` and
the lifecycle directly, without sources or channels, and read back what they recorded:
outbox rows, timers, activity, the ticket.
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage
from pathlib import Path

from bot.clock import FakeClock
from bot.lifecycle.followup import Lifecycle
from bot.model import Decision, Message
from bot.pipeline import Pipeline
from bot.plan import Planner, Team
from bot.rules.reload import RulesHolder
from bot.rules.ruleset import RuleSet
from bot.store import Store, Ticket
from bot.store.rows import OutboxRow, TimerRow
from bot.templates import Templates
from bot.vocab import ChannelName, SourceKind, TicketState
from tests.helpers import REPO, embedded_settings

# A Monday morning, so business hours (when a test sets them) are open.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQUESTER = "ann@customer.example"
OWNER = "billing@example.com"
ONCALL = "oncall@example.com"
TEAMMATE = "sam@example.com"

RULES = """\
settings:
  team:
    name: Acme Support
    signature: The Acme Support team
    addresses: [{teammate}]
  oncall: {oncall}
  owners:
    billing: {owner}
    sam: "123"
  followup:
    check_in_after: 24h
    close_after: 24h
{business_hours}
  limits:
    per_recipient_per_day: 3
  first_response:
    alert_after: 1h
  assigned_reminder_after: 48h

rules:
  - name: catch-all
    action: acknowledge
"""

BUSINESS_HOURS = """\
  business_hours:
    timezone: UTC
    days: [mon, tue, wed, thu, fri]
    hours: "09:00-17:00"
"""


@dataclass
class World:
    store: Store
    clock: FakeClock
    planner: Planner
    lifecycle: Lifecycle
    pipeline: Pipeline
    rules: RulesHolder

    @property
    def ruleset(self) -> RuleSet:
        return self.rules.current[0]

    @property
    def templates(self) -> Templates:
        return self.rules.current[1]

    def ticket(self, state: TicketState = TicketState.NEW, *,
               source: SourceKind = SourceKind.MAILDIR, owner: str | None = None,
               **fields: object) -> Ticket:
        """A stored ticket in ``state`` (set directly: these tests start mid-life)."""
        hs = source == SourceKind.HELPSCOUT
        ticket = self.store.create_ticket(
            source=source, requester=REQUESTER, requester_name="Ann Example",
            subject="Charged twice", now=self.clock.now(),
            root_message_id=None if hs else "<m1@customer.example>",
            conversation_id=7001 if hs else None, conversation_number=42 if hs else None,
            customer_id=501 if hs else None)
        changes: dict[str, object] = {"state": state.value, "owner": owner, **fields}
        if state == TicketState.CLOSED:
            changes.setdefault("closed_at", self.clock.now())
        self.store.update_ticket(ticket.id, self.clock.now(), **changes)
        return self.reload(ticket)

    def act(self, ticket: Ticket, msg: Message, decision: Decision,
            trigger: str = "maildir:1") -> list[int]:
        """Record ``decision`` on ``ticket`` and plan its sends (what ingestion does)."""
        return self.pipeline.act(ticket, msg, decision, trigger, self.clock.now(),
                                 self.ruleset, self.templates)

    def reply(self, ticket: Ticket, msg: Message, trigger: str = "maildir:2") -> list[int]:
        """A new message on ``ticket`` (from the requester's side, or the team's)."""
        return self.lifecycle.on_message(ticket, msg, trigger, self.clock.now(),
                                         self.ruleset, self.templates)

    def fire(self) -> list[tuple[str, int]]:
        return self.lifecycle.fire_due(self.clock.now(), self.ruleset, self.templates)

    def reload(self, ticket: Ticket) -> Ticket:
        got = self.store.get_ticket(ticket.id)
        assert got is not None
        return got

    def outbox(self, ticket: Ticket | None = None) -> list[OutboxRow]:
        """The rows planned for ``ticket`` (default: the first ticket), in order."""
        summaries = self.store.ticket_outbox(ticket.id if ticket is not None else 1)
        rows = [self.store.outbox_row(s.id) for s in summaries]
        return [r for r in rows if r is not None]

    def sent(self, ticket: Ticket) -> list[tuple[str, tuple[str, ...]]]:
        """(kind, recipients) of every row planned for ``ticket``, in order."""
        return [(r.kind, r.recipients) for r in self.outbox(ticket)]

    def timers(self, ticket: Ticket) -> list[TimerRow]:
        return self.store.pending_timers(ticket.id)

    def pending(self, ticket: Ticket) -> list[tuple[str, datetime]]:
        return [(t.kind, t.due_at) for t in self.timers(ticket)]

    def actions(self, ticket: Ticket) -> list[str]:
        return [a.action for a in self.store.activity(ticket.id)]

    def later(self, delta: timedelta) -> datetime:
        return self.clock.advance(delta)


def mail(row: OutboxRow) -> EmailMessage:
    return email.message_from_bytes(row.payload)


def text_of(msg: EmailMessage) -> str:
    """The first text/plain part, decoded."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8")
    return ""


def make_world(tmp: Path, *, channels: tuple[str, ...] = (ChannelName.MAILDIR,),
               business_hours: bool = False) -> World:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES.format(teammate=TEAMMATE, oncall=ONCALL, owner=OWNER,
                                  business_hours=BUSINESS_HOURS if business_hours else ""))
    settings = embedded_settings(tmp, SUPPORTBOT_RULES=str(rules))
    store = Store(tmp / "state.db")
    clock = FakeClock(START)
    holder = RulesHolder(rules, REPO / "templates")
    mail_channel = next((c for c in channels
                         if c in (ChannelName.MAILDIR, ChannelName.SMTP)), None)
    planner = Planner(settings, store, mail_channel=mail_channel,
                      helpscout=ChannelName.HELPSCOUT in channels,
                      alert_webhook=ChannelName.WEBHOOK in channels)
    s = holder.current[0].settings
    planner.team = Team(frozenset({settings.from_addr, *s.team_addresses}))
    planner.cap = s.per_recipient_per_day
    lifecycle = Lifecycle(store, planner)
    pipeline = Pipeline(settings, store, planner, lifecycle, holder)
    return World(store, clock, planner, lifecycle, pipeline, holder)
