"""Replaying what the mailbox shows happened to one ticket, to know where it stands now.

The steps are the bot's own messages (found in the Sent folder or among Help Scout's
threads) and, in Help Scout, the people's threads between them. Each step is the event the
worker itself recorded when it happened, so the state comes from the one state machine
(``bot.tickets``) and the follow-up timer from the same schedule the lifecycle keeps: a
question starts the check-in clock at the moment it was written, a check-in starts the
closure clock, any reply from the requester stops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.lifecycle.followup import Lifecycle
from bot.rules.ruleset import RuleSet
from bot.tickets import allowed, awaiting_requester, next_state
from bot.vocab import REQUESTER_KINDS, MessageKind, TicketEvent, TicketState, TimerKind, spec

# What one of our messages says had happened, beyond the event it caused when planned:
# a closure ends the silence, a re-opening notice or a relay means the requester wrote.
_IMPLIED: dict[MessageKind, TicketEvent] = {
    MessageKind.CLOSURE: TicketEvent.CLOSED_SILENT,
    MessageKind.REOPENED: TicketEvent.REQUESTER_REPLIED,
    MessageKind.RELAY: TicketEvent.REQUESTER_REPLIED,
}
_STOPS_FOLLOWUP = frozenset({TicketEvent.REQUESTER_REPLIED, TicketEvent.AGENT_CLOSED,
                             TicketEvent.CLOSED_SILENT})
_VISIBLE_EVENTS = frozenset({TicketEvent.AGENT_ASKED, TicketEvent.AGENT_REPLIED,
                             TicketEvent.AGENT_CLOSED})


@dataclass(frozen=True)
class Step:
    """One thing that happened: a message of ours (``kind``) or someone's event; an agent
    taking the conversation changes no state but stops the bot's follow-ups."""

    at: datetime
    kind: MessageKind | None = None
    event: TicketEvent | None = None
    stops_followup: bool = False


@dataclass(frozen=True)
class Replayed:
    """Where a ticket stands after its steps, and the timer still to come."""

    state: TicketState
    events: tuple[TicketEvent, ...]  # the transitions taken, in order
    followup: tuple[TimerKind, datetime] | None
    first_visible: datetime | None
    last_visible: datetime | None
    closed_at: datetime | None
    reminders: int  # owner reminders already sent
    critical: bool


def event_of(kind: MessageKind) -> TicketEvent | None:
    """The ticket event one of our messages of this kind stands for."""
    return spec(kind).event or _IMPLIED.get(kind)


def replay(steps: Sequence[Step], ruleset: RuleSet) -> Replayed:
    """Walk the steps in time order through the state machine and the follow-up schedule."""
    s = ruleset.settings
    state = TicketState.NEW
    taken: list[TicketEvent] = []
    followup: tuple[TimerKind, datetime] | None = None
    first_visible = last_visible = closed_at = None
    reminders = 0
    critical = False
    for step in sorted(steps, key=lambda st: st.at):
        event = step.event if step.kind is None else event_of(step.kind)
        if step.stops_followup:
            followup = None
        if event is not None and allowed(state, event):
            state = next_state(state, event)
            taken.append(event)
            if event in _STOPS_FOLLOWUP:
                followup = None
            if event == TicketEvent.AGENT_ASKED:
                followup = (TimerKind.CHECK_IN, Lifecycle.due(step.at, s.check_in_after, ruleset))
            closed_at = step.at if state == TicketState.CLOSED else None
        visible = (step.kind in REQUESTER_KINDS if step.kind is not None
                   else event in _VISIBLE_EVENTS)
        if visible:
            first_visible = first_visible or step.at
            last_visible = step.at
        if step.kind is None:
            continue
        if spec(step.kind).starts_followup:
            followup = (TimerKind.CHECK_IN, Lifecycle.due(step.at, s.check_in_after, ruleset))
        elif step.kind == MessageKind.CHECK_IN:
            followup = (TimerKind.CLOSE, Lifecycle.due(step.at, s.close_after, ruleset))
        elif step.kind == MessageKind.ASSIGNED_REMINDER:
            reminders += 1
        critical = critical or step.kind == MessageKind.ALERT
    return Replayed(state=state, events=tuple(taken),
                    followup=followup if awaiting_requester(state) else None,
                    first_visible=first_visible, last_visible=last_visible,
                    closed_at=closed_at, reminders=reminders, critical=critical)
