"""Writing what the mailbox remembers back into an empty store: tickets, timers, ledger.

For each ticket the evidence names, the ticket is recreated (mail tickets under their old
number, which our subjects and Message-IDs carry), its state replayed through the state
machine, its pending follow-up timer scheduled from the time of the message that started
it, our messages recorded as sent outbox rows (so the daily cap, bounce matching and
`supportbot log` see them), and each inbound message they show was handled entered in
the ledger, so the first sync after the rebuild reads it as known instead of answering it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.rebuild.evidence import InboxEntry, SentMessage, answered_ids, original_subject
from bot.rebuild.replay import Replayed, Step, replay
from bot.rules.ruleset import RuleSet
from bot.sources.base import Inbound
from bot.store import Store, Ticket
from bot.tickets import Tickets
from bot.vocab import (
    REQUESTER_KINDS,
    Author,
    ChannelName,
    HelpScoutStatus,
    MessageKind,
    OutboxStatus,
    Priority,
    SourceKind,
    TicketEvent,
    TicketState,
    TimerKind,
)

REBUILT = "rebuilt"  # ledger status: an inbound message our own mail shows was handled
OWN = "own"  # ledger status of our own Help Scout threads (as the pipeline records them)
_TEAM_SUBJECT = re.compile(r"^\[#\d+\]\s*[^:]*:\s*")


@dataclass
class Restored:
    """What a rebuild recreated, for the log and the activity entry."""

    tickets: int = 0
    timers: dict[str, int] = field(default_factory=dict)
    known: int = 0  # inbound messages entered in the ledger as already handled
    sent: int = 0  # our messages recorded as sent

    def add_timer(self, kind: TimerKind) -> None:
        self.timers[kind.value] = self.timers.get(kind.value, 0) + 1

    def describe(self) -> str:
        timers = ", ".join(f"{n} {k}" for k, n in sorted(self.timers.items())) or "none"
        return (f"{self.tickets} ticket(s), {self.sent} message(s) of ours, {self.known} "
                f"inbound message(s) already handled; pending timers: {timers}")


class Restorer:
    """Recreates tickets in ``store`` inside the caller's transaction."""

    def __init__(self, store: Store, ruleset: RuleSet, now: datetime, *, from_addr: str,
                 mail_channel: str = ChannelName.SMTP) -> None:
        self.store = store
        self.ruleset = ruleset
        self.now = now
        self.from_addr = from_addr
        self.mail_channel = mail_channel
        self.tickets = Tickets(store)
        self.done = Restored()

    # -- mail: the Sent folder ------------------------------------------------------------
    def mail(self, sent: Sequence[SentMessage], inbox: Sequence[InboxEntry]) -> None:
        by_ticket: dict[int, list[SentMessage]] = defaultdict(list)
        for message in sent:
            by_ticket[message.ticket_id].append(message)
        answered = answered_ids(sent)
        arrivals: dict[str, InboxEntry] = {}
        for entry in inbox:
            arrivals.setdefault(entry.message_id, entry)
        for ticket_id, messages in sorted(by_ticket.items()):
            messages.sort(key=lambda m: m.at)
            self._mail_ticket(ticket_id, messages, arrivals)
        for entry in inbox:
            owner_ticket = answered.get(entry.message_id)
            if owner_ticket is None or self.store.has_ref(entry.ref):
                continue
            self.store.record_message(
                ref=entry.ref, source=SourceKind.IMAP, received_at=entry.received_at,
                now=self.now, status=REBUILT, content_hash="", message_id=entry.message_id,
                ticket_id=owner_ticket, reason="answered before the store was replaced "
                "(our reply is in the Sent folder)", folder=entry.folder,
                uidvalidity=entry.uidvalidity, uid=entry.uid)
            self.done.known += 1

    def _mail_ticket(self, ticket_id: int, messages: list[SentMessage],
                     arrivals: dict[str, InboxEntry]) -> None:
        to_requester = [m for m in messages if m.kind in REQUESTER_KINDS]
        first = (to_requester or messages)[0]
        name, requester = first.to[0] if first.to else ("", "")
        forwards = [m for m in messages if m.kind == MessageKind.FORWARD]
        root = first.in_reply_to if to_requester else (forwards[0].original if forwards else None)
        subject = (original_subject(first.subject, ticket_id) if to_requester
                   else _TEAM_SUBJECT.sub("", first.subject))
        latest = to_requester[-1] if to_requester else first
        refs = [m for m in latest.answers if m != root][-20:]
        handled = [arrivals[m] for m in {*(a for x in messages for a in x.answers),
                                         *(x.original for x in messages if x.original)}
                   if m in arrivals]
        arrived = arrivals[root].received_at if root in arrivals else first.at
        ticket = self.store.create_ticket(
            ticket_id=ticket_id, source=SourceKind.IMAP, requester=requester,
            requester_name=name, subject=subject, now=self.now, root_message_id=root,
            refs=refs, created_at=min(arrived, first.at))
        result = replay([Step(m.at, kind=m.kind) for m in messages], self.ruleset)
        owner = forwards[-1].to[0][1] if forwards and forwards[-1].to else None
        ticket = self._apply(ticket, result, owner=owner,
                             last_message_id=latest.in_reply_to or root,
                             last_requester_at=max((e.received_at for e in handled),
                                                   default=ticket.created_at))
        for mid in {*refs, *(a for m in messages for a in m.answers)}:
            self.store.add_thread_id(mid, ticket_id)
        for message in messages:
            self.store.add_thread_id(message.message_id, ticket_id)
            self._sent_row(ticket_id, message.kind, message.message_id,
                           [a for _, a in message.to], message.headers, message.at,
                           self.mail_channel)
        reminded = [m.at for m in messages if m.kind == MessageKind.ASSIGNED_REMINDER]
        overdue = any(m.kind == MessageKind.FIRST_RESPONSE_OVERDUE for m in messages)
        self._timers(ticket, result, reminded_at=max(reminded, default=None),
                     overdue_sent=overdue)
        self.store.log(self.now, ticket_id, REBUILT,
                       f"recreated from {len(messages)} message(s) in the Sent folder ("
                       f"{', '.join(m.kind.value for m in messages)}): state {result.state}")
        self.done.tickets += 1

    # -- Help Scout: the conversation's threads -------------------------------------------
    def conversation(self, conversation: dict[str, Any], threads: Sequence[Inbound]) -> None:
        """One conversation with threads of ours: everything up to the last thread that is
        not the customer's was seen; the customer's later threads are left to the sync."""
        last = max((i for i, item in enumerate(threads) if item.author != Author.CUSTOMER),
                   default=-1)
        seen = list(threads[:last + 1])
        conv_id = conversation.get("id")
        if (not any(item.author == Author.SELF for item in seen) or not isinstance(conv_id, int)
                or conversation.get("status") == HelpScoutStatus.SPAM
                or self.store.ticket_by_conversation(conv_id) is not None):
            return
        opener = next((item for item in seen if item.author == Author.CUSTOMER), seen[0])
        msg = opener.message
        assert msg is not None  # Help Scout items always carry their message
        ticket = self.store.create_ticket(
            source=SourceKind.HELPSCOUT, requester=msg.from_addr, requester_name=msg.from_name,
            subject=msg.subject, now=self.now, root_message_id=None,
            mailbox_id=msg.mailbox_id, conversation_id=conv_id,
            conversation_number=msg.conversation_number, customer_id=msg.customer_id,
            created_at=opener.received_at)
        paired = [(item, _helpscout_step(item, seen[:i])) for i, item in enumerate(seen)
                  if item is not opener]
        result = replay([step for _, step in paired], self.ruleset)
        assignee = conversation.get("assignee") or {}
        owner = assignee.get("email") if isinstance(assignee, dict) else None
        customer_times = [item.received_at for item in seen if item.author == Author.CUSTOMER]
        ticket = self._apply(ticket, result, owner=owner if isinstance(owner, str) else None,
                             last_requester_at=max(customer_times, default=ticket.created_at))
        for item, step in paired:
            if step.kind is not None:
                self._sent_row(ticket.id, step.kind, f"helpscout:{REBUILT}:{item.ref}",
                               [ticket.requester], json.dumps({"thread": item.ref}).encode(),
                               item.received_at, ChannelName.HELPSCOUT)
        for item in seen:
            m = item.message
            assert m is not None
            self.store.record_message(
                ref=item.ref, source=SourceKind.HELPSCOUT, received_at=item.received_at,
                now=self.now, status=OWN if item.author == Author.SELF else REBUILT,
                content_hash=m.content_hash, from_addr=m.from_addr, subject=m.subject,
                ticket_id=ticket.id, reason="seen before the store was replaced",
                conversation_id=conv_id, thread_id=m.thread_id)
            self.done.known += int(item.author != Author.SELF)
        self._timers(ticket, result, reminded_at=None, overdue_sent=False)
        self.store.log(self.now, ticket.id, REBUILT,
                       f"recreated from {len(seen)} Help Scout thread(s): state {result.state}")
        self.done.tickets += 1

    # -- shared -----------------------------------------------------------------------------
    def _apply(self, ticket: Ticket, result: Replayed, *, owner: str | None,
               **fields: object) -> Ticket:
        """Take the replayed transitions through the state machine, then the other fields."""
        for event in result.events:
            state = self.tickets.apply(ticket, event, self.now)
            ticket = replace(ticket, state=state)
        changes: dict[str, object] = {
            "owner": owner, "first_action_at": result.first_visible,
            "last_visible_update_at": result.last_visible, "closed_at": result.closed_at,
            **fields}
        if result.critical:
            changes["priority"] = Priority.CRITICAL.value
        self.store.update_ticket(ticket.id, self.now, **changes)
        updated = self.store.get_ticket(ticket.id)
        assert updated is not None
        return updated

    def _timers(self, ticket: Ticket, result: Replayed, *, reminded_at: datetime | None,
                overdue_sent: bool) -> None:
        s = self.ruleset.settings
        due: list[tuple[TimerKind, datetime, str]] = []
        if result.followup is not None:
            kind, at = result.followup
            due.append((kind, at, f"t{ticket.id}:{kind}:{REBUILT}"))
        if ticket.state != TicketState.CLOSED:
            if ticket.owner and s.assigned_reminder_after is not None:
                since = max(d for d in (result.last_visible, reminded_at, ticket.created_at) if d)
                due.append((TimerKind.ASSIGNED_REMINDER, since + s.assigned_reminder_after,
                            f"t{ticket.id}:{TimerKind.ASSIGNED_REMINDER}:{result.reminders + 1}"))
            if result.first_visible is None and not overdue_sent:
                due.append((TimerKind.FIRST_RESPONSE, ticket.created_at + s.first_response_after,
                            f"t{ticket.id}:{TimerKind.FIRST_RESPONSE}"))
        for kind, at, key in due:
            if self.store.add_timer(key=key, ticket_id=ticket.id, kind=kind, due_at=at,
                                    now=self.now):
                self.done.add_timer(kind)
                self.store.log(self.now, ticket.id, "scheduled",
                               f"{kind} due {at.isoformat()} (rebuilt)")

    def _sent_row(self, ticket_id: int, kind: MessageKind, message_id: str,
                  recipients: list[str], payload: bytes, at: datetime, channel: str) -> None:
        outbox_id = self.store.add_outbox(
            idem_key=f"{REBUILT}:{message_id}", ticket_id=ticket_id, kind=kind, channel=channel,
            message_id=message_id, envelope_from=self.from_addr, recipients=recipients,
            payload=payload, now=at, status=OutboxStatus.SENT)
        if outbox_id is not None:
            self.store.set_outbox_status(outbox_id, OutboxStatus.SENT, at)
            self.done.sent += 1


def _helpscout_step(item: Inbound, before: Sequence[Inbound]) -> Step:
    """One Help Scout thread as a step: ours by the status it left (a second pending reply
    with no customer thread between is the check-in), the people's as the pipeline reads
    them (bot.lifecycle.agents: a close ends it, an assignment or status change stops the
    bot's follow-ups, a pending reply starts them)."""
    at = item.received_at
    if item.author == Author.CUSTOMER:
        return Step(at, event=TicketEvent.REQUESTER_REPLIED)
    if item.author == Author.AGENT:
        if item.status in (HelpScoutStatus.CLOSED, HelpScoutStatus.SPAM):
            return Step(at, event=TicketEvent.AGENT_CLOSED)
        if item.change is not None:
            return Step(at, stops_followup=True)
        if item.status == HelpScoutStatus.PENDING:
            return Step(at, event=TicketEvent.AGENT_ASKED)
        return Step(at, event=TicketEvent.AGENT_REPLIED)
    previous = next((b for b in reversed(before) if b.change is None), None)
    if item.status == HelpScoutStatus.CLOSED:
        return Step(at, kind=MessageKind.CLOSURE)
    if item.status == HelpScoutStatus.PENDING:
        waiting = (previous is not None and previous.author != Author.CUSTOMER
                   and previous.status == HelpScoutStatus.PENDING)
        return Step(at, kind=MessageKind.CHECK_IN if waiting else MessageKind.ASK_INFO)
    closed = any(b.status == HelpScoutStatus.CLOSED for b in before if b.author != Author.CUSTOMER)
    reopened = closed and previous is not None and previous.author == Author.CUSTOMER
    return Step(at, kind=MessageKind.REOPENED if reopened else MessageKind.ACKNOWLEDGE)
