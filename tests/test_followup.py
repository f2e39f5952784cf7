"""The lifecycle, table-driven: every timer kind from every ticket state, sent or cancelled.

Each cell starts a ticket in a state (with an owner, nothing seen by the requester yet),
lets one due timer of a kind fire 49 h later, and checks what was planned, whether the
timer fired or was cancelled, the ticket's state after and the timer that follows. A new
timer kind or state fails ``test_the_table_covers_every_timer_kind_and_state`` until it
gets its row or column. Real SQLite store, fake clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.mail.parse import parse_message
from bot.model import Action, Decision, Message
from bot.store import Ticket
from bot.vocab import ActionKind, HelpScoutStatus, SourceKind
from bot.vocab import MessageKind as K
from bot.vocab import TicketState as S
from bot.vocab import TimerKind as T
from tests.core_world import ONCALL, OWNER, REQUESTER, START, TEAMMATE, World, make_world
from tests.helpers import make_mail

HOUR = timedelta(hours=1)
FIRED_AT = START + 49 * HOUR  # past every delay in tests/core_world.py's rules
NO = None  # the timer is cancelled: nothing is sent

COLUMNS = (S.NEW, S.ACKNOWLEDGED, S.FORWARDED, S.WAITING, S.ANSWERED, S.OPEN, S.CLOSED)
_FR, _AR = K.FIRST_RESPONSE_OVERDUE, K.ASSIGNED_REMINDER
TABLE: dict[T, tuple[K | None, ...]] = {
    # from:            new   ack   fwd   waiting     answered    open  closed
    T.CHECK_IN:          (NO,  NO,  NO,  K.CHECK_IN, K.CHECK_IN, NO,  NO),
    T.CLOSE:             (NO,  NO,  NO,  K.CLOSURE,  K.CLOSURE,  NO,  NO),
    T.FIRST_RESPONSE:    (_FR, _FR, _FR, _FR,        _FR,        _FR, NO),
    T.ASSIGNED_REMINDER: (_AR, _AR, _AR, _AR,        _AR,        _AR, NO),
    # the quiet window's one decision: a ticket someone owns needs none (see below)
    T.REDECIDE:          (NO,  NO,  NO,  NO,         NO,         NO,  NO),
}  # fmt: skip
TO = {K.CHECK_IN: REQUESTER, K.CLOSURE: REQUESTER, _FR: ONCALL, _AR: OWNER}
# what a fired timer leaves pending, and after how long
FOLLOWS: dict[T, tuple[T, timedelta] | None] = {
    T.CHECK_IN: (T.CLOSE, 24 * HOUR), T.CLOSE: None, T.FIRST_RESPONSE: None,
    T.ASSIGNED_REMINDER: (T.ASSIGNED_REMINDER, 48 * HOUR), T.REDECIDE: None}

CASES = [pytest.param(kind, state, sent, id=f"{kind}@{state}->{sent or 'cancelled'}")
         for kind, row in TABLE.items() for state, sent in zip(COLUMNS, row, strict=True)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def add_timer(world: World, ticket: Ticket, kind: T, *, due: datetime | None = None) -> None:
    # an assigned reminder's key carries its number (the next one is +1)
    key = f"t{ticket.id}:{kind}:1" if kind == T.ASSIGNED_REMINDER else f"t{ticket.id}:{kind}:x"
    assert world.store.add_timer(key=key, ticket_id=ticket.id, kind=kind,
                                 due_at=due or START + HOUR, now=world.clock.now())


def test_the_table_covers_every_timer_kind_and_state() -> None:
    assert sorted(COLUMNS) == sorted(S)
    assert sorted(TABLE) == sorted(T), "a new timer kind needs its row in TABLE and FOLLOWS"
    assert sorted(FOLLOWS) == sorted(T)


@pytest.mark.parametrize(("kind", "state", "sent"), CASES)
def test_a_due_timer(world: World, kind: T, state: S, sent: K | None) -> None:
    ticket = world.ticket(state, owner=OWNER)
    add_timer(world, ticket, kind)
    world.clock.set(FIRED_AT)

    fired = world.fire()

    after = world.reload(ticket)
    if sent is None:
        assert fired == []
        assert world.sent(ticket) == []
        assert world.pending(ticket) == []  # cancelled, not left to fire again
        assert after.state == state
        return
    assert fired == [(kind, ticket.id)]
    assert world.sent(ticket) == [(sent, (TO[sent],))]
    assert after.state == (S.CLOSED if kind == T.CLOSE else state)
    follows = FOLLOWS[kind]
    assert world.pending(ticket) == ([] if follows is None
                                     else [(follows[0], FIRED_AT + follows[1])])
    assert world.fire() == []  # fired once, never twice


# -- the guards inside the handlers -------------------------------------------------------
@pytest.mark.parametrize("kind", [T.CHECK_IN, T.CLOSE])
def test_a_follow_up_set_before_the_requester_last_wrote_is_cancelled(world: World,
                                                                      kind: T) -> None:
    ticket = world.ticket(S.WAITING)
    add_timer(world, ticket, kind)
    world.store.update_ticket(ticket.id, START + HOUR, last_requester_at=START + HOUR)
    world.clock.set(FIRED_AT)
    assert world.fire() == []
    assert world.sent(ticket) == []


def test_the_one_hour_promise_is_kept_by_any_visible_update(world: World) -> None:
    ticket = world.ticket(S.ACKNOWLEDGED)
    add_timer(world, ticket, T.FIRST_RESPONSE)
    world.lifecycle.message_sent(ticket.id, K.ACKNOWLEDGE, START + HOUR / 6)
    world.clock.set(FIRED_AT)
    assert world.fire() == []
    assert world.sent(ticket) == []


def test_a_team_message_sent_is_not_a_visible_update(world: World) -> None:
    ticket = world.ticket(S.FORWARDED, owner=OWNER)
    world.lifecycle.message_sent(ticket.id, K.FORWARD, START + HOUR)
    after = world.reload(ticket)
    assert (after.first_action_at, after.last_visible_update_at) == (None, None)
    world.lifecycle.message_sent(ticket.id, K.FORWARDED, START + 2 * HOUR)
    after = world.reload(ticket)
    assert after.first_action_at == after.last_visible_update_at == START + 2 * HOUR


def test_a_recent_visible_update_postpones_the_owner_reminder(world: World) -> None:
    ticket = world.ticket(S.FORWARDED, owner=OWNER)
    add_timer(world, ticket, T.ASSIGNED_REMINDER)
    world.store.mark_visible_update(ticket.id, START + 40 * HOUR)
    world.clock.set(FIRED_AT)
    assert world.fire() == [(T.ASSIGNED_REMINDER, ticket.id)]
    assert world.sent(ticket) == []
    assert world.pending(ticket) == [(T.ASSIGNED_REMINDER, START + 88 * HOUR)]


def test_an_owner_reminder_without_an_owner_is_cancelled(world: World) -> None:
    ticket = world.ticket(S.ACKNOWLEDGED, owner=None)
    add_timer(world, ticket, T.ASSIGNED_REMINDER)
    world.clock.set(FIRED_AT)
    assert world.fire() == []
    assert world.pending(ticket) == []


def test_a_closure_stops_the_owner_reminders(world: World) -> None:
    ticket = world.ticket(S.ANSWERED, owner=OWNER)
    add_timer(world, ticket, T.CLOSE)
    add_timer(world, ticket, T.ASSIGNED_REMINDER, due=FIRED_AT + HOUR)
    world.clock.set(FIRED_AT)
    assert world.fire() == [(T.CLOSE, ticket.id)]
    assert world.pending(ticket) == []
    assert world.reload(ticket).closed_at == FIRED_AT


def test_a_timer_not_yet_due_waits(world: World) -> None:
    ticket = world.ticket(S.WAITING)
    add_timer(world, ticket, T.CHECK_IN, due=FIRED_AT + HOUR)
    world.clock.set(FIRED_AT)
    assert world.fire() == []
    assert world.pending(ticket) == [(T.CHECK_IN, FIRED_AT + HOUR)]


# -- business hours -----------------------------------------------------------------------
def test_outside_business_hours_a_follow_up_waits_for_the_next_opening(tmp_path: Path) -> None:
    world = make_world(tmp_path, business_hours=True)
    ticket = world.ticket(S.WAITING)
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
    add_timer(world, ticket, T.CHECK_IN, due=friday_evening)
    world.clock.set(friday_evening)
    assert world.fire() == [(T.CHECK_IN, ticket.id)]
    # 24 h after Friday 18:00 is Saturday evening: the closure waits for Monday 09:00
    assert world.pending(ticket) == [(T.CLOSE, datetime(2026, 3, 9, 9, 0, tzinfo=UTC))]


# -- the whole schedule, and what stops it ------------------------------------------------
def inbound(*, reply: bool = False, sender: str = f"Ann Example <{REQUESTER}>") -> Message:
    raw = make_mail(sender=sender, subject="Re: Charged twice [#1]" if reply else "Charged",
                    message_id="<m2@customer.example>" if reply else "<m1@customer.example>",
                    in_reply_to="<m1@customer.example>" if reply else None,
                    body="Here is the invoice number you asked for: INV-2026-0042.")
    return parse_message(raw, source=SourceKind.MAILDIR, received_at=START)


ASK = Decision(ignored=False, reason=None, rules=("too-vague",), followup=True,
               actions=(Action(ActionKind.ASK_INFO, (REQUESTER,), "ask_info", "too-vague"),))


def test_silence_after_a_question_brings_a_check_in_then_a_kind_closure(world: World) -> None:
    ticket = world.ticket()
    world.act(ticket, inbound(), ASK)
    world.store.mark_visible_update(ticket.id, START)  # the question went out
    world.clock.set(START + 23 * HOUR)
    assert world.fire() == []
    world.clock.set(START + 24 * HOUR)
    assert world.fire() == [(T.CHECK_IN, ticket.id)]
    world.clock.set(START + 48 * HOUR)
    assert world.fire() == [(T.CLOSE, ticket.id)]
    assert [kind for kind, _ in world.sent(ticket)] == [K.ASK_INFO, K.CHECK_IN, K.CLOSURE]
    assert world.reload(ticket).state == S.CLOSED
    actions = world.actions(ticket)
    assert actions.index("scheduled") < actions.index("check-in") < actions.index("closed")


def test_a_reply_from_the_requester_cancels_the_check_in_and_the_closure(world: World) -> None:
    ticket = world.ticket()
    world.act(ticket, inbound(), ASK)
    world.clock.set(START + 24 * HOUR)
    world.fire()
    assert [t.kind for t in world.timers(ticket)] == [T.CLOSE]
    world.clock.set(START + 25 * HOUR)
    world.reply(world.reload(ticket), inbound(reply=True))
    assert not [k for k, _ in world.pending(ticket) if k in (T.CHECK_IN, T.CLOSE)]
    # decided again on what she sent: this world's only rule acknowledges it
    assert world.reload(ticket).state == S.ACKNOWLEDGED
    assert [k for k, _ in world.sent(ticket)][-1] == K.ACKNOWLEDGE
    world.clock.set(START + 72 * HOUR)
    assert [k for k, _ in world.fire() if k in (T.CHECK_IN, T.CLOSE)] == []


def test_a_message_from_the_team_is_not_the_requesters_reply(world: World) -> None:
    ticket = world.ticket()
    world.act(ticket, inbound(), ASK)
    world.clock.set(START + 2 * HOUR)
    world.reply(world.reload(ticket), inbound(reply=True, sender=f"Sam <{TEAMMATE}>"))
    assert T.CHECK_IN in [t.kind for t in world.timers(ticket)]
    assert world.reload(ticket).last_requester_at == START


# -- Help Scout agents --------------------------------------------------------------------
@pytest.mark.parametrize(("status", "state", "timers"), [
    (HelpScoutStatus.PENDING, S.WAITING, [T.ASSIGNED_REMINDER, T.CHECK_IN]),
    (HelpScoutStatus.CLOSED, S.CLOSED, []),
    (HelpScoutStatus.ACTIVE, S.FORWARDED, [T.ASSIGNED_REMINDER]),
])
def test_an_agents_reply_sets_the_schedule_its_status_asks_for(
        world: World, status: HelpScoutStatus, state: S, timers: list[T]) -> None:
    ticket = world.ticket(S.FORWARDED, source=SourceKind.HELPSCOUT, owner="123")
    add_timer(world, ticket, T.ASSIGNED_REMINDER, due=FIRED_AT)
    world.clock.set(START + HOUR)
    world.lifecycle.agent_replied(ticket, status, "hs:9", world.clock.now(), world.ruleset)
    after = world.reload(ticket)
    assert after.state == state
    assert after.last_visible_update_at == START + HOUR
    assert sorted(t.kind for t in world.timers(ticket)) == sorted(timers)


def test_a_permanent_bounce_stops_the_follow_ups_and_tells_on_call(world: World) -> None:
    ticket = world.ticket()
    world.act(ticket, inbound(), ASK)
    world.lifecycle.recipient_undeliverable(world.reload(ticket), REQUESTER, START + HOUR,
                                            world.ruleset, world.templates)
    assert [t.kind for t in world.timers(ticket)] == [T.FIRST_RESPONSE]
    assert world.sent(ticket)[-1] == (K.UNDELIVERABLE, (ONCALL,))
