"""The ticket lifecycle: follow-up schedule, one-hour promise, owner reminders, reopening.

State changes are transitions of ``bot.tickets`` (its docstring draws the machine); this
module says when they happen and what follows them: which timers start or stop, which
message goes out.

Timers live in the store and fire idempotently: a timer is marked fired in the same
transaction that plans its message, and a timer whose ticket moved on is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from bot.conversation import Handling, ReplyPlan, Side, conversation_message, decide_again
from bot.expand import expand
from bot.lifecycle.history import conversation, plan_reply, ticket_facts
from bot.mail.attachments import files_of
from bot.model import Decision, Message
from bot.plan import MAX_REFS, Planner
from bot.rules.durations import humanise
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.store import Store, Ticket, TimerRow
from bot.templates import Templates
from bot.tickets import Tickets, allowed, awaiting_requester
from bot.vocab import (
    FOLLOWUP_TIMERS,
    REQUESTER_KINDS,
    HelpScoutStatus,
    MessageKind,
    Priority,
    SourceKind,
    TicketEvent,
    TicketState,
    TimerKind,
    TimerStatus,
    spec,
)

log = structlog.get_logger(__name__)


class Lifecycle:
    def __init__(self, store: Store, planner: Planner) -> None:
        self.store = store
        self.planner = planner
        self.tickets = Tickets(store)

    # -- scheduling ---------------------------------------------------------------------
    @staticmethod
    def due(now: datetime, delta: timedelta, ruleset: RuleSet) -> datetime:
        """Wall-clock delay, then the next business opening when business hours are set."""
        when = now + delta
        calendar = ruleset.settings.calendar
        return calendar.next_open(when) if calendar is not None else when

    def _schedule_followup(self, ticket: Ticket, trigger: str, now: datetime,
                           ruleset: RuleSet) -> None:
        self.store.cancel_timers(ticket.id, FOLLOWUP_TIMERS, now)
        due = self.due(now, ruleset.settings.check_in_after, ruleset)
        self.store.add_timer(key=f"t{ticket.id}:check_in:{trigger}", ticket_id=ticket.id,
                             kind=TimerKind.CHECK_IN, due_at=due, now=now)
        self.store.log(now, ticket.id, "scheduled", f"check-in due {due.isoformat()}")
        log.info("follow-up scheduled", ticket=ticket.id, kind=TimerKind.CHECK_IN,
                 due=due.isoformat())

    def ticket_acted(self, ticket: Ticket, decision: Decision, now: datetime,
                     ruleset: RuleSet, trigger: str = "opened") -> None:
        s = ruleset.settings
        self.store.add_timer(key=f"t{ticket.id}:first_response", ticket_id=ticket.id,
                             kind=TimerKind.FIRST_RESPONSE,
                             due_at=ticket.created_at + s.first_response_after, now=now)
        if decision.followup:
            self._schedule_followup(ticket, trigger, now, ruleset)
        if decision.owner and s.assigned_reminder_after:
            self.store.add_timer(key=f"t{ticket.id}:assigned_reminder:1", ticket_id=ticket.id,
                                 kind=TimerKind.ASSIGNED_REMINDER,
                                 due_at=now + s.assigned_reminder_after,
                                 now=now)

    # -- decisions ----------------------------------------------------------------------
    def act(self, ticket: Ticket, msg: Message, decision: Decision, trigger: str, now: datetime,
            ruleset: RuleSet, templates: Templates) -> list[int]:
        """Record the decision on the ticket and plan every message it sends (``msg`` is
        what the owner sees: the first message, or the whole conversation so far)."""
        sends = expand(decision, ticket.requester)
        answer = next((spec(s.kind).event for s in sends if spec(s.kind).event), None)
        changes: dict[str, object] = {
            "priority": decision.priority, "topic": decision.topic, "tags": tuple(decision.tags),
            "rules": tuple(decision.rules), "owner": decision.owner}
        state = self.tickets.apply(ticket, answer or TicketEvent.ACKNOWLEDGED, now, **changes)
        ticket = replace(ticket, updated_at=now, state=state, priority=decision.priority,
                         topic=decision.topic, tags=tuple(decision.tags),
                         rules=tuple(decision.rules), owner=decision.owner)
        trace = "; ".join(f"{s.rule}: {s.reason}" for s in decision.trace if s.matched)
        self.store.log(now, ticket.id, "classified",
                       f"priority={decision.priority} topic={decision.topic} "
                       f"rules={','.join(decision.rules)} ({trace})",
                       rule=decision.rules[0] if decision.rules else None)
        ids: list[int] = []
        for send in sends:
            ids += self.planner.plan(
                ticket=ticket, kind=send.kind, to=list(send.to), trigger=trigger, now=now,
                ruleset=ruleset, templates=templates, template=send.template, rule=send.rule,
                original=msg, owner=send.owner)
            ticket = self.store.get_ticket(ticket.id) or ticket  # the thread grew
        # Help Scout has no priority field; tag only what differs from the norm, since each
        # tag write costs a read and a write against the rate limit.
        tags = list(decision.tags) + ([f"priority-{decision.priority}"]
                                      if decision.priority not in (None, Priority.NORMAL)
                                      else [])
        self.planner.plan_tags(ticket, tags, trigger, now)
        self.ticket_acted(ticket, decision, now, ruleset, trigger)
        return ids

    # -- a new message on a ticket --------------------------------------------------------
    def team(self, ruleset: RuleSet) -> Team:
        return Team.of(ruleset.settings, self.planner.settings.from_addr)

    def plan_reply(self, ticket: Ticket, msg: Message, now: datetime,
                   ruleset: RuleSet) -> ReplyPlan:
        """What ``msg`` (already in the ledger) leads to; ``explain`` asks the same."""
        return plan_reply(self.store, ticket, msg, now, ruleset, self.planner.settings.from_addr)

    def on_message(self, ticket: Ticket, msg: Message, trigger: str, now: datetime,
                   ruleset: RuleSet, templates: Templates) -> list[int]:
        """A new message on ``ticket``: see ``bot.conversation`` for what it leads to."""
        plan = self.plan_reply(ticket, msg, now, ruleset)
        if msg.message_id:
            self.store.add_thread_id(msg.message_id, ticket.id)
        if plan.side == Side.TEAM:
            return self._team_message(ticket, msg, plan, trigger, now, ruleset, templates)
        return self._requester_message(ticket, msg, plan, trigger, now, ruleset, templates)

    def _team_message(self, ticket: Ticket, msg: Message, plan: ReplyPlan, trigger: str,
                      now: datetime, ruleset: RuleSet, templates: Templates) -> list[int]:
        who = f"{msg.from_name} <{plan.sender}>" if msg.from_name else plan.sender
        if plan.handling == Handling.TEAM_NOTE:
            self.store.log(now, ticket.id, "team note", f"from {who}: {plan.reason}",
                           actor=plan.sender)
            return []
        ids: list[int] = []
        if plan.handling == Handling.OWNER_ANSWER and not plan.relay:
            self.store.mark_visible_update(ticket.id, now)
            self.store.log(now, ticket.id, "team reply",
                           f"from {who} to the requester directly: the owner's answer, a "
                           "visible update", actor=plan.sender)
        elif plan.handling == Handling.OWNER_ANSWER:
            files, left_out = files_of(msg.raw)
            if left_out:
                self.store.log(now, ticket.id, "not passed on", f"{left_out} attachment(s) of "
                               f"{who}: too many or too large for one message")
            ids = self.planner.plan(files=files,
                ticket=ticket, kind=MessageKind.OWNER_REPLY, to=[ticket.requester],
                trigger=trigger, now=now, ruleset=ruleset, templates=templates,
                owner=ticket.owner, extra={"words": plan.words, "sender": plan.sender,
                                           "sender_name": msg.from_name or plan.sender})
            self.store.log(now, ticket.id, "owner replied",
                           f"from {who}: relayed to the requester", actor=plan.sender)
        else:
            self.store.mark_visible_update(ticket.id, now)
            self.store.log(now, ticket.id, "team reply",
                           f"from {who} to the requester: a visible update", actor=plan.sender)
        # the team has spoken: the bot's own follow-ups and pending decisions stop, and a
        # ticket nobody owned is theirs now (the requester's next reply goes to them)
        self.store.cancel_timers(ticket.id, (*FOLLOWUP_TIMERS, TimerKind.REDECIDE), now)
        fields: dict[str, object] = {"last_visible_update_at": now}
        if not ticket.owner:
            fields["owner"] = plan.sender
        if not plan.waits_on_requester:  # an update; the owner reminder counts from it
            self.tickets.apply(ticket, TicketEvent.AGENT_REPLIED, now, **fields)
            return ids
        # the ball is with the requester: no owner reminder, the check-in schedule starts
        self.store.cancel_timers(ticket.id, (TimerKind.ASSIGNED_REMINDER,), now)
        self.tickets.apply(ticket, TicketEvent.AGENT_ASKED, now, **fields)
        self._schedule_followup(ticket, trigger, now, ruleset)
        return ids

    def _requester_message(self, ticket: Ticket, msg: Message, plan: ReplyPlan, trigger: str,
                           now: datetime, ruleset: RuleSet, templates: Templates) -> list[int]:
        if plan.handling == Handling.ABSENCE:
            self.store.log(now, ticket.id, "ignored", f"from {msg.from_addr}: {plan.reason}",
                           actor=msg.from_addr)
            return []
        if plan.handling == Handling.THANKS:
            self.store.cancel_timers(ticket.id, (*FOLLOWUP_TIMERS, TimerKind.REDECIDE), now)
            self.store.log(now, ticket.id, "thanked", f"from {msg.from_addr}: {plan.reason}",
                           actor=msg.from_addr)
            relayed = (self._relay(ticket, msg, plan, trigger, now, ruleset, templates)
                       if plan.relay else [])
            if allowed(ticket.state, TicketEvent.REQUESTER_THANKED):
                self.tickets.apply(ticket, TicketEvent.REQUESTER_THANKED, now,
                                   last_requester_at=now)
                self.store.cancel_timers(ticket.id, (TimerKind.ASSIGNED_REMINDER,), now)
            return relayed
        refs = list(ticket.refs)
        if msg.message_id and msg.message_id not in refs:
            refs = [*refs, msg.message_id][-MAX_REFS:]
        cancelled = self.store.cancel_timers(ticket.id, FOLLOWUP_TIMERS, now)
        was = ticket.state
        self.tickets.apply(ticket, TicketEvent.REQUESTER_REPLIED, now, last_requester_at=now,
                           last_message_id=msg.message_id or ticket.last_message_id, refs=refs)
        detail = f"from {msg.from_addr} (was {was}); {plan.handling}"
        if cancelled:
            detail += f"; {cancelled} follow-up(s) cancelled"
            log.info("follow-ups cancelled", ticket=ticket.id, count=cancelled,
                     why="the requester replied")
        self.store.log(now, ticket.id,
                       "reopened" if was == TicketState.CLOSED else "requester replied",
                       detail, actor=msg.from_addr)
        ticket = self.store.get_ticket(ticket.id) or ticket
        if plan.handling == Handling.DEFERRED and plan.due is not None:
            self.store.add_timer(key=f"t{ticket.id}:redecide:{plan.due.isoformat()}",
                                 ticket_id=ticket.id, kind=TimerKind.REDECIDE, due_at=plan.due,
                                 now=now)
            self.store.log(now, ticket.id, "deferred", plan.reason)
            return []
        if plan.handling == Handling.DECIDE_AGAIN and plan.decision is not None:
            found = conversation(self.store, ticket, self.team(ruleset))
            whole = conversation_message(*found) if found else msg
            return self.act(ticket, whole, plan.decision, trigger, now, ruleset, templates)
        ids: list[int] = []
        if plan.handling == Handling.REOPEN:
            ids += self.planner.plan(ticket=ticket, kind=MessageKind.REOPENED,
                                     to=[ticket.requester],
                                     trigger=trigger, now=now, ruleset=ruleset,
                                     templates=templates, extra={"reopened": True})
        owner = ticket.owner
        if owner and "@" in owner and ticket.source != SourceKind.HELPSCOUT:
            ids += self._relay(ticket, msg, plan, trigger, now, ruleset, templates)
            if plan.handling == Handling.RELAY_TO_OWNER and plan.notify_requester:
                ids += self.planner.plan(
                    ticket=ticket, kind=MessageKind.UPDATE_RELAYED, to=[ticket.requester],
                    trigger=trigger, now=now, ruleset=ruleset, templates=templates,
                    owner=owner)
            after = ruleset.settings.assigned_reminder_after
            if after:  # the owner has the next move again
                self.store.add_timer(key=f"t{ticket.id}:assigned_reminder:r{trigger}",
                                     ticket_id=ticket.id, kind=TimerKind.ASSIGNED_REMINDER,
                                     due_at=now + after, now=now)
        return ids

    def _relay(self, ticket: Ticket, msg: Message, plan: ReplyPlan, trigger: str,
               now: datetime, ruleset: RuleSet, templates: Templates) -> list[int]:
        """The requester's side wrote: their words go to the owner, naming who wrote.
        Help Scout owners read the conversation itself; an owner that is a user id has no
        mailbox to relay to."""
        owner = ticket.owner
        if not owner or "@" not in owner or ticket.source == SourceKind.HELPSCOUT:
            return []
        return self.planner.plan(
            ticket=ticket, kind=MessageKind.RELAY, to=[owner], trigger=trigger, now=now,
            ruleset=ruleset, templates=templates, original=msg, owner=owner,
            extra={"is_reply": True, "words": plan.words, "sender": plan.sender,
                   "sender_name": msg.from_name or plan.sender})

    def agent_replied(self, ticket: Ticket, status: str | None, trigger: str, now: datetime,
                      ruleset: RuleSet, agent: str | None = None) -> None:
        """A Help Scout agent's reply that leaves the conversation pending starts the schedule."""
        if status == HelpScoutStatus.CLOSED:
            self.store.cancel_timers(
                ticket.id, (*FOLLOWUP_TIMERS, TimerKind.ASSIGNED_REMINDER), now)
            self.tickets.apply(ticket, TicketEvent.AGENT_CLOSED, now,
                               last_visible_update_at=now)
            self.store.log(now, ticket.id, "closed", "closed by an agent in Help Scout",
                           actor="agent")
        elif status == HelpScoutStatus.PENDING:
            self.tickets.apply(ticket, TicketEvent.AGENT_ASKED, now, last_visible_update_at=now)
            self.store.log(now, ticket.id, "agent replied",
                           "waiting on the requester", actor="agent")
            self._schedule_followup(ticket, trigger, now, ruleset)
        else:
            # the agent has the ticket now: the bot's own follow-ups and decisions stop
            self.store.cancel_timers(ticket.id, (*FOLLOWUP_TIMERS, TimerKind.REDECIDE), now)
            fields: dict[str, object] = {"last_visible_update_at": now}
            if not ticket.owner:
                fields["owner"] = agent or "agent"
            self.tickets.apply(ticket, TicketEvent.AGENT_REPLIED, now, **fields)
            self.store.log(now, ticket.id, "agent replied", f"status {status}",
                           actor=agent or "agent")

    def recipient_undeliverable(self, ticket: Ticket, address: str, now: datetime,
                                ruleset: RuleSet, templates: Templates) -> None:
        cancelled = self.store.cancel_timers(ticket.id, FOLLOWUP_TIMERS, now)
        self.store.log(now, ticket.id, "undeliverable",
                       f"{address} bounced permanently; {cancelled} follow-up(s) stopped")
        oncall = ruleset.settings.oncall
        if oncall and not ticket.owner:  # nobody can reach the requester: a person must
            self.store.update_ticket(ticket.id, now, owner=oncall)
            self.store.log(now, ticket.id, "handed over", f"to {oncall}: the requester's "
                           "address bounces")
        if oncall:
            self.planner.plan(ticket=ticket, kind=MessageKind.UNDELIVERABLE, to=[oncall],
                              trigger=f"bounce:{address}", now=now, ruleset=ruleset,
                              templates=templates,
                              extra={"undeliverable": address})

    def message_sent(self, ticket_id: int, kind: str, now: datetime) -> None:
        """Called by the outbox: what the requester can see counts for the promises."""
        if kind in REQUESTER_KINDS:
            self.store.mark_visible_update(ticket_id, now)
            # the one-hour promise is kept: its timer is no longer live (status, health)
            self.store.cancel_timers(ticket_id, (TimerKind.FIRST_RESPONSE,), now)

    # -- timers -------------------------------------------------------------------------
    def fire_due(self, now: datetime, ruleset: RuleSet,
                 templates: Templates) -> list[tuple[str, int]]:
        """Fire every due timer, each in its own transaction; returns (kind, ticket) fired."""
        fired: list[tuple[str, int]] = []
        for due in self.store.due_timers(now):
            try:
                did = self._fire_one(due.id, now, ruleset, templates)
            except Exception as exc:  # noqa: BLE001 - one timer fails alone, the rest fire
                self._timer_failed(due, now, f"{type(exc).__name__}: {exc}")
                continue
            if did:
                fired.append((due.kind, due.ticket_id))
        return fired

    def _fire_one(self, timer_id: int, now: datetime, ruleset: RuleSet,
                  templates: Templates) -> bool:
        with self.store.transaction():
            timer = self.store.claim_timer(timer_id)  # None: fired or being fired elsewhere
            if timer is None:
                return False
            ticket = self.store.get_ticket(timer.ticket_id)
            if ticket is None:
                self.store.finish_timer(timer.id, TimerStatus.CANCELLED, now, "ticket gone")
                return False
            handler = self._handlers[TimerKind(timer.kind)]
            did = handler(timer, ticket, now, ruleset, templates)
            self.store.finish_timer(timer.id, TimerStatus.FIRED if did else TimerStatus.CANCELLED,
                                       now)
            return did

    def _timer_failed(self, timer: TimerRow, now: datetime, reason: str) -> None:
        """Recorded against the timer (`status` lists it), never retried on every cycle."""
        log.error("timer failed", ticket=timer.ticket_id, kind=timer.kind, reason=reason)
        with self.store.transaction():
            if self.store.finish_timer(timer.id, TimerStatus.FAILED, now, reason[:500]):
                self.store.log(now, timer.ticket_id, "timer failed",
                               f"{timer.kind}: {reason[:500]}")

    def _still_waiting(self, timer: TimerRow, ticket: Ticket) -> bool:
        if not awaiting_requester(ticket.state):
            return False
        return ticket.last_requester_at is None or \
            ticket.last_requester_at <= timer.created_at

    def _fire_check_in(self, timer: TimerRow, ticket: Ticket, now: datetime, ruleset: RuleSet,
                       templates: Templates) -> bool:
        if not self._still_waiting(timer, ticket):
            return False
        self.planner.plan(ticket=ticket, kind=MessageKind.CHECK_IN, to=[ticket.requester],
                          trigger=f"timer{timer.id}", now=now, ruleset=ruleset,
                          templates=templates)
        due = self.due(now, ruleset.settings.close_after, ruleset)
        self.store.add_timer(key=f"t{ticket.id}:close:{timer.id}", ticket_id=ticket.id,
                             kind=TimerKind.CLOSE, due_at=due, now=now)
        self.store.log(now, ticket.id, "check-in", f"closure due {due.isoformat()}")
        return True

    def _fire_close(self, timer: TimerRow, ticket: Ticket, now: datetime, ruleset: RuleSet,
                    templates: Templates) -> bool:
        if not self._still_waiting(timer, ticket):
            return False
        self.planner.plan(ticket=ticket, kind=MessageKind.CLOSURE, to=[ticket.requester],
                          trigger=f"timer{timer.id}", now=now, ruleset=ruleset,
                          templates=templates)
        self.tickets.apply(ticket, TicketEvent.CLOSED_SILENT, now)
        self.store.cancel_timers(ticket.id, (TimerKind.ASSIGNED_REMINDER,), now)
        self.store.log(now, ticket.id, "closed", "no reply after the check-in")
        return True

    def _fire_first_response(self, timer: TimerRow, ticket: Ticket, now: datetime,
                             ruleset: RuleSet, templates: Templates) -> bool:
        if ticket.first_action_at is not None or ticket.state == TicketState.CLOSED:
            return False
        log.error("one-hour promise missed", ticket=ticket.id, subject=ticket.subject)
        self.store.log(now, ticket.id, "promise missed",
                       "no message reached the requester within the first hour")
        oncall = ruleset.settings.oncall
        self.planner.plan(ticket=ticket, kind=MessageKind.FIRST_RESPONSE_OVERDUE,
                          to=[oncall] if oncall else [], trigger="first_response", now=now,
                          ruleset=ruleset, templates=templates)
        return True

    def _fire_assigned_reminder(self, timer: TimerRow, ticket: Ticket, now: datetime,
                                ruleset: RuleSet, templates: Templates) -> bool:
        after = ruleset.settings.assigned_reminder_after
        if ticket.state == TicketState.CLOSED or not ticket.owner or after is None:
            return False
        last = ticket.last_visible_update_at or ticket.created_at
        number = int(timer.key.rsplit(":", 1)[1])
        if now - last >= after:
            self.planner.plan(ticket=ticket, kind=MessageKind.ASSIGNED_REMINDER,
                              to=[ticket.owner],
                              trigger=f"timer{timer.id}", now=now, ruleset=ruleset,
                              templates=templates, owner=ticket.owner)
            self.store.log(now, ticket.id, "reminded owner",
                           f"{ticket.owner}: no visible update for {humanise(after)}")
            next_due = now + after
        else:
            next_due = last + after
        self.store.add_timer(key=f"t{ticket.id}:assigned_reminder:{number + 1}",
                             ticket_id=ticket.id, kind=TimerKind.ASSIGNED_REMINDER,
                             due_at=next_due,
                             now=now)
        return True

    def _fire_redecide(self, timer: TimerRow, ticket: Ticket, now: datetime,
                       ruleset: RuleSet, templates: Templates) -> bool:
        """The quiet window after the bot's last message ended: one decision on every
        reply that arrived meanwhile."""
        if ticket.owner or ticket.state == TicketState.CLOSED:
            return False
        found = conversation(self.store, ticket, self.team(ruleset))
        if found is None:
            return False
        whole = conversation_message(*found)
        plan = decide_again(whole, ticket_facts(self.store, ticket), ruleset=ruleset, now=now)
        if plan.decision is None:
            return False
        self.act(ticket, whole, plan.decision, f"timer{timer.id}", now, ruleset, templates)
        return True

    @property
    def _handlers(self) -> dict[TimerKind, TimerHandler]:
        return {TimerKind.CHECK_IN: self._fire_check_in, TimerKind.CLOSE: self._fire_close,
                TimerKind.FIRST_RESPONSE: self._fire_first_response,
                TimerKind.ASSIGNED_REMINDER: self._fire_assigned_reminder,
                TimerKind.REDECIDE: self._fire_redecide}


TimerHandler = Callable[[TimerRow, Ticket, datetime, RuleSet, Templates], bool]
