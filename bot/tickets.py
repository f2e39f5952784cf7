"""The ticket state machine: every change of a ticket's state is a transition here.

Ingestion, planning and the lifecycle say what happened (a ``TicketEvent``); this module
alone decides which state that leads to, and refuses what makes no sense (a silent closure
of a ticket nobody asked anything, a question on a closed ticket). One table, read top to
bottom, is the whole life of a ticket:

  new -> acknowledged | forwarded | waiting (asked for details) | answered
  waiting/answered --24 h silent--> check-in --24 h silent--> closed
  any requester reply -> open (a closed ticket is reopened)
  Help Scout: an agent's pending reply -> waiting; an agent's close -> closed;
  a ticket whose conversation was merged into another ticket's -> closed (one ticket)
"""

from __future__ import annotations

from datetime import datetime

from bot.store import Store, Ticket
from bot.vocab import TicketEvent as E
from bot.vocab import TicketState as S

_ALL = tuple(S)
_UNOWNED = (S.NEW, S.OPEN, S.ACKNOWLEDGED)

# event -> {from state: to state}; a state missing from an event's row is refused.
TRANSITIONS: dict[E, dict[S, S]] = {
    E.ACKNOWLEDGED: dict.fromkeys(_UNOWNED, S.ACKNOWLEDGED),
    E.FORWARDED: dict.fromkeys((*_UNOWNED, S.WAITING, S.ANSWERED), S.FORWARDED),
    E.ASKED: dict.fromkeys((*_UNOWNED, S.WAITING), S.WAITING),
    E.ANSWERED: dict.fromkeys((*_UNOWNED, S.WAITING), S.ANSWERED),
    E.REQUESTER_REPLIED: dict.fromkeys(_ALL, S.OPEN),
    E.AGENT_REPLIED: {s: s for s in _ALL},
    E.AGENT_ASKED: dict.fromkeys(_ALL, S.WAITING),
    E.AGENT_CLOSED: dict.fromkeys(_ALL, S.CLOSED),
    E.CLOSED_SILENT: {S.WAITING: S.CLOSED, S.ANSWERED: S.CLOSED},
    E.REQUESTER_THANKED: {S.WAITING: S.CLOSED, S.ANSWERED: S.CLOSED, S.CLOSED: S.CLOSED},
    E.MERGED: dict.fromkeys(_ALL, S.CLOSED),
}

# The states in which the ticket waits on the requester: only these get check-ins.
AWAITING_REQUESTER: frozenset[S] = frozenset({S.WAITING, S.ANSWERED})


class TransitionRefused(ValueError):
    """An event that the ticket's state does not allow (a bug in the caller)."""

    def __init__(self, state: str, event: E) -> None:
        super().__init__(f"a ticket in state {state!r} cannot take {event.value!r}")
        self.state = state
        self.event = event


def next_state(state: str, event: E) -> S:
    """The state ``event`` leads to from ``state``; raises ``TransitionRefused``."""
    try:
        return TRANSITIONS[event][S(state)]
    except (KeyError, ValueError):
        raise TransitionRefused(state, event) from None


def allowed(state: str, event: E) -> bool:
    try:
        next_state(state, event)
    except TransitionRefused:
        return False
    return True


def awaiting_requester(state: str) -> bool:
    return state in AWAITING_REQUESTER


class Tickets:
    """Applies transitions to stored tickets, inside the caller's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def apply(self, ticket: Ticket, event: E, now: datetime, **fields: object) -> S:
        """Move ``ticket`` by ``event`` and store ``fields`` with it; returns the new state.

        A closed ticket that leaves ``closed`` has its ``closed_at`` cleared; one that enters
        it gets ``closed_at = now`` unless the caller says otherwise.
        """
        state = next_state(ticket.state, event)
        if state == S.CLOSED and ticket.state != S.CLOSED:
            fields.setdefault("closed_at", now)
        elif state != S.CLOSED and ticket.state == S.CLOSED:
            fields.setdefault("closed_at", None)
        self.store.update_ticket(ticket.id, now, state=state.value, **fields)
        return state


# An acknowledged ticket nobody owns sits in the team's shared queue (the support mailbox
# itself); a closed one is done. Any other ticket needs an owner or something pending.
NOT_STRANDABLE: frozenset[S] = frozenset({S.ACKNOWLEDGED, S.CLOSED})


def stranded(store: Store) -> list[int]:
    """The invariant "no ticket is left open with no owner and nothing pending": the ids of
    tickets that break it (``status`` lists them; the story tests assert there are none)."""
    return store.stranded_tickets(sorted(NOT_STRANDABLE))
