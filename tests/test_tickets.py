"""The ticket state machine, table-driven: every event from every state, refusals included.

The table below is written out by hand rather than read from ``bot.tickets.TRANSITIONS``,
so a change to the machine shows up here as a change someone meant. A new state or event
fails ``test_the_table_covers_every_state_and_event`` until it gets its row or column.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import Store, Ticket
from bot.tickets import Tickets, TransitionRefused, allowed, awaiting_requester, next_state
from bot.vocab import TicketEvent as E
from bot.vocab import TicketState as S

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NEW, ACK, FWD, WAIT, ANS, OPEN, CLOSED = (S.NEW, S.ACKNOWLEDGED, S.FORWARDED, S.WAITING,
                                          S.ANSWERED, S.OPEN, S.CLOSED)
NO = None  # the transition is refused

COLUMNS = (NEW, ACK, FWD, WAIT, ANS, OPEN, CLOSED)
TABLE: dict[E, tuple[S | None, ...]] = {
    # from:               new     ack     fwd     wait    ans     open    closed
    E.ACKNOWLEDGED:      (ACK,    ACK,    NO,     NO,     NO,     ACK,    NO),
    E.FORWARDED:         (FWD,    FWD,    NO,     FWD,    FWD,    FWD,    NO),
    E.ASKED:             (WAIT,   WAIT,   NO,     WAIT,   NO,     WAIT,   NO),
    E.ANSWERED:          (ANS,    ANS,    NO,     ANS,    NO,     ANS,    NO),
    E.REQUESTER_REPLIED: (OPEN,   OPEN,   OPEN,   OPEN,   OPEN,   OPEN,   OPEN),
    E.AGENT_REPLIED:     (NEW,    ACK,    FWD,    WAIT,   ANS,    OPEN,   CLOSED),
    E.AGENT_ASKED:       (WAIT,   WAIT,   WAIT,   WAIT,   WAIT,   WAIT,   WAIT),
    E.AGENT_CLOSED:      (CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED),
    E.CLOSED_SILENT:     (NO,     NO,     NO,     CLOSED, CLOSED, NO,     NO),
    E.REQUESTER_THANKED: (NO,     NO,     NO,     CLOSED, CLOSED, NO,     CLOSED),
    E.MERGED:            (CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED, CLOSED),
}  # fmt: skip

CASES = [pytest.param(event, state, to, id=f"{state}--{event}->{to or 'refused'}")
         for event, row in TABLE.items() for state, to in zip(COLUMNS, row, strict=True)]


def test_the_table_covers_every_state_and_event() -> None:
    assert sorted(COLUMNS) == sorted(S)
    assert sorted(TABLE) == sorted(E)
    assert len(CASES) == len(S) * len(E)


@pytest.mark.parametrize(("event", "state", "to"), CASES)
def test_transition(event: E, state: S, to: S | None) -> None:
    if to is None:
        assert not allowed(state, event)
        with pytest.raises(TransitionRefused) as refused:
            next_state(state, event)
        assert (refused.value.state, refused.value.event) == (state, event)
        assert repr(state.value) in str(refused.value)
    else:
        assert allowed(state, event)
        assert next_state(state, event) is to


@pytest.mark.parametrize("event", list(E))
def test_a_state_the_machine_does_not_know_is_refused(event: E) -> None:
    assert not allowed("pending", event)
    with pytest.raises(TransitionRefused):
        next_state("pending", event)


@pytest.mark.parametrize("state", list(S))
def test_only_waiting_and_answered_await_the_requester(state: S) -> None:
    assert awaiting_requester(state) == (state in {S.WAITING, S.ANSWERED})


# -- applied to stored tickets -------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def stored(store: Store, state: S) -> Ticket:
    ticket = store.create_ticket(source="imap", requester="ann@example.org",
                                 requester_name="Ann", subject="Help", now=NOW,
                                 root_message_id="<root@example.org>")
    if state != S.NEW:
        store.update_ticket(ticket.id, NOW, state=state.value,
                            closed_at=NOW if state == S.CLOSED else None)
    got = store.get_ticket(ticket.id)
    assert got is not None
    return got


def test_apply_stores_the_new_state_with_the_callers_fields(store: Store) -> None:
    ticket = stored(store, S.NEW)
    later = NOW + timedelta(minutes=5)
    assert Tickets(store).apply(ticket, E.FORWARDED, later, owner="billing@example.com",
                                tags=("billing",)) is S.FORWARDED
    after = store.get_ticket(ticket.id)
    assert after is not None
    assert (after.state, after.owner, after.tags) == (S.FORWARDED, "billing@example.com",
                                                      ("billing",))
    assert after.updated_at == later and after.closed_at is None


@pytest.mark.parametrize("event", [E.AGENT_CLOSED, E.CLOSED_SILENT])
def test_entering_closed_stamps_closed_at(store: Store, event: E) -> None:
    ticket = stored(store, S.WAITING)
    later = NOW + timedelta(days=2)
    Tickets(store).apply(ticket, event, later)
    after = store.get_ticket(ticket.id)
    assert after is not None and (after.state, after.closed_at) == (S.CLOSED, later)


def test_leaving_closed_clears_closed_at(store: Store) -> None:
    ticket = stored(store, S.CLOSED)
    assert ticket.closed_at == NOW
    Tickets(store).apply(ticket, E.REQUESTER_REPLIED, NOW + timedelta(days=3))
    after = store.get_ticket(ticket.id)
    assert after is not None and (after.state, after.closed_at) == (S.OPEN, None)


def test_an_agent_reply_on_a_closed_ticket_keeps_its_closed_at(store: Store) -> None:
    ticket = stored(store, S.CLOSED)
    Tickets(store).apply(ticket, E.AGENT_REPLIED, NOW + timedelta(hours=1))
    after = store.get_ticket(ticket.id)
    assert after is not None and (after.state, after.closed_at) == (S.CLOSED, NOW)


def test_a_refused_transition_changes_nothing(store: Store) -> None:
    ticket = stored(store, S.CLOSED)
    with pytest.raises(TransitionRefused):
        Tickets(store).apply(ticket, E.ASKED, NOW + timedelta(hours=1), owner="x@example.com")
    assert store.get_ticket(ticket.id) == ticket
