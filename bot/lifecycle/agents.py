"""What the people in a Help Scout account did, applied to tickets: their actions win.

An agent's close or spam mark (a reply with that status, or a `lineitem` with no reply)
closes the ticket and cancels everything the bot had scheduled for it; an agent who takes
the conversation (an assignment) or changes its status otherwise has the next move, so the
bot's check-in and closure are cancelled too. The activity log says who did it and when.
A plain agent reply is the lifecycle's (`Lifecycle.agent_replied`): pending starts the
follow-up schedule, as the bot's own question would.
"""

from __future__ import annotations

from datetime import datetime

from bot.lifecycle.followup import Lifecycle
from bot.model import Message
from bot.rules.ruleset import RuleSet
from bot.sources.base import Inbound
from bot.store import Store, Ticket
from bot.tickets import Tickets
from bot.vocab import (
    FOLLOWUP_TIMERS,
    HelpScoutStatus,
    LineItem,
    TicketEvent,
    TicketState,
    TimerKind,
)

ENDED = frozenset({HelpScoutStatus.CLOSED, HelpScoutStatus.SPAM})


def who(msg: Message | None) -> str:
    if msg is None:
        return "an agent"
    return msg.from_name or msg.from_addr or "an agent"


def agent_of(msg: Message | None) -> str:
    """The agent as an owner: their address when Help Scout gives one."""
    return (msg.from_addr if msg is not None and msg.from_addr else who(msg))


class AgentActions:
    def __init__(self, store: Store, lifecycle: Lifecycle) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.tickets = Tickets(store)

    def thread(self, ticket: Ticket, item: Inbound, now: datetime, ruleset: RuleSet) -> None:
        """One agent thread (a reply or a line item) on a ticket's conversation."""
        msg = item.message
        when = item.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if item.status in ENDED:
            self._ended(ticket, item, now, when, replied=item.change is None)
        elif item.change == LineItem.ASSIGNEE:
            cancelled = self.store.cancel_timers(ticket.id, FOLLOWUP_TIMERS, now)
            self._owned_by(ticket, msg, now)
            self.store.log(now, ticket.id, "taken",
                           f"{(msg.text if msg else '') or 'assigned'} by {who(msg)} in Help "
                           f"Scout at {when}; {cancelled} follow-up(s) cancelled",
                           actor=who(msg))
        elif item.change == LineItem.STATUS:
            cancelled = self.store.cancel_timers(ticket.id, FOLLOWUP_TIMERS, now)
            self._owned_by(ticket, msg, now)
            self.store.log(now, ticket.id, "status changed",
                           f"{who(msg)} set it {item.status} in Help Scout at {when}; "
                           f"{cancelled} follow-up(s) cancelled", actor=who(msg))
        else:
            self.lifecycle.agent_replied(ticket, item.status, item.ref, now, ruleset,
                                         agent=agent_of(msg))

    def _owned_by(self, ticket: Ticket, msg: Message | None, now: datetime) -> None:
        """An agent who takes up a ticket nobody owned has it now (never stranded)."""
        if not ticket.owner:
            self.store.update_ticket(ticket.id, now, owner=agent_of(msg))

    def _ended(self, ticket: Ticket, item: Inbound, now: datetime, when: str, *,
               replied: bool) -> None:
        msg = item.message
        cancelled = self.store.cancel_timers(
            ticket.id, (*FOLLOWUP_TIMERS, TimerKind.ASSIGNED_REMINDER), now)
        fields: dict[str, object] = {"last_visible_update_at": now} if replied else {}
        if ticket.state == TicketState.CLOSED and not fields and not cancelled:
            return  # already closed, nothing pending: old news
        if ticket.state != TicketState.CLOSED or fields:
            self.tickets.apply(ticket, TicketEvent.AGENT_CLOSED, now, **fields)
        how = "marked it as spam" if item.status == HelpScoutStatus.SPAM else "closed it"
        self.store.log(now, ticket.id, "closed",
                       f"{who(msg)} {how} in Help Scout at {when}"
                       f"{' with a reply' if replied else ''}; {cancelled} scheduled "
                       "message(s) cancelled", actor=who(msg))
