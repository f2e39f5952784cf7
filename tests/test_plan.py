"""Planning at its seam: a decision becomes outbox rows, timers, activity and a new state.

Real SQLite store, the shipped templates, a fake clock; nothing is sent. What the
outbox then does with the rows is tests/test_outbox.py's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.helpscout import ops
from bot.mail.parse import parse_message
from bot.model import Action, Decision, Message
from bot.vocab import ActionKind as A
from bot.vocab import (
    ChannelName,
    HelpScoutStatus,
    MessageKind,
    Priority,
    SourceKind,
    TimerKind,
    spec,
)
from bot.vocab import MessageKind as K
from bot.vocab import TicketState as S
from tests.core_world import (
    ONCALL,
    OWNER,
    REQUESTER,
    START,
    TEAMMATE,
    World,
    mail,
    make_world,
    text_of,
)
from tests.helpers import make_mail


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def inbound(subject: str = "Charged twice") -> Message:
    raw = make_mail(sender=f"Ann Example <{REQUESTER}>", subject=subject,
                    body="I was charged twice for my March invoice, please help.")
    return parse_message(raw, source=SourceKind.MAILDIR, received_at=START)


def decision(*actions: Action, owner: str | None = None, followup: bool = False) -> Decision:
    return Decision(ignored=False, reason=None, rules=tuple(dict.fromkeys(a.rule for a in actions)),
                    actions=actions, owner=owner, followup=followup, topic="billing")


def act(world: World, d: Decision) -> list[int]:
    return world.act(world.ticket(), inbound(), d)


# -- decision -> rows + timers + state, table-driven --------------------------------------
@dataclass(frozen=True)
class Case:
    decision: Decision
    state: S
    sent: list[tuple[MessageKind, tuple[str, ...]]]
    timers: list[tuple[TimerKind, timedelta]]  # pending after planning, soonest first


HOUR = timedelta(hours=1)
FIRST = (TimerKind.FIRST_RESPONSE, HOUR)
CASES = {
    "acknowledge": Case(
        decision(Action(A.ACKNOWLEDGE, (REQUESTER,), "acknowledge", "catch-all")),
        S.ACKNOWLEDGED, [(K.ACKNOWLEDGE, (REQUESTER,))], [FIRST]),
    "ask_info starts the check-in": Case(
        decision(Action(A.ASK_INFO, (REQUESTER,), "ask_info", "too-vague"), followup=True),
        S.WAITING, [(K.ASK_INFO, (REQUESTER,))], [FIRST, (TimerKind.CHECK_IN, 24 * HOUR)]),
    "answer starts the check-in": Case(
        decision(Action(A.ANSWER, (REQUESTER,), "answer-password-reset", "password"),
                 followup=True),
        S.ANSWERED, [(K.ANSWER, (REQUESTER,))], [FIRST, (TimerKind.CHECK_IN, 24 * HOUR)]),
    "forward tells the requester who has it": Case(
        decision(Action(A.FORWARD, (OWNER,), "forward", "billing"), owner=OWNER),
        S.FORWARDED, [(K.FORWARD, (OWNER,)), (K.FORWARDED, (REQUESTER,))],
        [FIRST, (TimerKind.ASSIGNED_REMINDER, 48 * HOUR)]),
    "a forward to two owners: a copy each, one notice": Case(
        decision(Action(A.FORWARD, (OWNER, TEAMMATE), "forward", "billing"), owner=OWNER),
        S.FORWARDED,
        [(K.FORWARD, (OWNER,)), (K.FORWARD, (TEAMMATE,)), (K.FORWARDED, (REQUESTER,))],
        [FIRST, (TimerKind.ASSIGNED_REMINDER, 48 * HOUR)]),
    "a critical forward also alerts on-call": Case(
        decision(Action(A.FORWARD, (OWNER,), "forward", "deliverability"),
                 Action(A.ALERT, (ONCALL,), "alert", "deliverability"), owner=OWNER),
        S.FORWARDED,
        [(K.FORWARD, (OWNER,)), (K.FORWARDED, (REQUESTER,)), (K.ALERT, (ONCALL,))],
        [FIRST, (TimerKind.ASSIGNED_REMINDER, 48 * HOUR)]),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_decision_becomes_rows_timers_and_a_state(world: World, case: Case) -> None:
    ticket = world.ticket()
    ids = world.act(ticket, inbound(), case.decision)
    after = world.reload(ticket)
    assert after.state == case.state
    assert (after.topic, after.owner) == ("billing", case.decision.owner)
    assert world.sent(ticket) == case.sent
    assert [r.id for r in world.outbox(ticket)] == ids
    assert all(r.status == "pending" and r.channel == ChannelName.MAILDIR
               for r in world.outbox(ticket))
    assert world.pending(ticket) == [(kind, START + delta) for kind, delta in case.timers]
    actions = world.actions(ticket)
    assert actions[0] == "classified"
    assert actions.count("planned") == len(case.sent)
    assert ("scheduled" in actions) == case.decision.followup


@pytest.mark.parametrize("kind", [K.ACKNOWLEDGE, K.FORWARD, K.ALERT, K.CHECK_IN])
def test_planning_the_same_message_again_plans_nothing_new(world: World,
                                                           kind: MessageKind) -> None:
    ticket = world.ticket()
    args = {"ticket": ticket, "kind": kind, "to": [OWNER], "trigger": "maildir:1", "now": START,
            "ruleset": world.ruleset, "templates": world.templates}
    first = world.planner.plan(**args)  # type: ignore[arg-type]
    assert len(first) == 1
    assert world.planner.plan(**args) == []  # type: ignore[arg-type]
    assert len(world.outbox(ticket)) == 1


# -- what the rows hold -------------------------------------------------------------------
def test_a_message_to_the_requester_threads_under_their_mail(world: World) -> None:
    act(world, CASES["ask_info starts the check-in"].decision)
    (row,) = world.outbox()
    msg = mail(row)
    assert msg["Subject"] == "Re: Charged twice [#1]"
    assert msg["In-Reply-To"] == "<m1@customer.example>"
    assert "<m1@customer.example>" in msg["References"]
    assert msg["Auto-Submitted"] == spec(K.ASK_INFO).auto_submitted == "auto-replied"
    assert (msg["Message-ID"], msg["X-Supportbot-Kind"]) == (row.message_id, "ask_info")
    assert row.idem_key == "t1:ask_info:maildir:1"
    # our Message-ID is known before it is sent, so a reply to it finds the ticket
    found = world.store.ticket_by_thread([row.message_id])
    assert found is not None and found.id == 1


def test_the_owners_copy_carries_the_original_and_a_team_subject(world: World) -> None:
    act(world, CASES["forward tells the requester who has it"].decision)
    forward, notice = world.outbox()
    owners = mail(forward)
    assert owners["Subject"] == "[#1] Assigned to you: Charged twice"
    assert owners["Auto-Submitted"] == "auto-generated"
    assert owners["In-Reply-To"] is None
    attached = [p for p in owners.walk() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    told = text_of(mail(notice))
    assert "billing" in told and "Charged twice" in told


# -- loop safety: suppressed rows, never silent drops -------------------------------------
def plan_ack(world: World, to: str, trigger: str) -> list[int]:
    ticket = world.store.get_ticket(1) or world.ticket()
    return world.planner.plan(ticket=ticket, kind=K.ACKNOWLEDGE, to=[to], trigger=trigger,
                              now=world.clock.now(), ruleset=world.ruleset,
                              templates=world.templates)


@pytest.mark.parametrize(("to", "why"), [
    ("support@example.com", "the bot's own address"),
    ("gone@customer.example", "undeliverable (bounced)")])
def test_mail_to_ourselves_or_a_bounced_address_is_recorded_as_suppressed(
        world: World, to: str, why: str) -> None:
    world.store.mark_undeliverable("gone@customer.example", "5.1.1", START)
    (outbox_id,) = plan_ack(world, to, "t")
    row = world.store.outbox_row(outbox_id)
    assert row is not None and row.status == "suppressed"
    assert why in (row.last_error or "")
    ticket = world.store.get_ticket(1)
    assert ticket is not None
    assert "suppressed" in world.actions(ticket)
    assert world.store.recent_sends_to(to, START - HOUR) == 0  # not counted against the cap


def test_the_daily_cap_suppresses_the_next_message_to_an_outside_address(world: World) -> None:
    cap = world.ruleset.settings.per_recipient_per_day
    assert cap == 3
    statuses = []
    for n in range(cap + 1):
        (outbox_id,) = plan_ack(world, REQUESTER, f"n{n}")
        row = world.store.outbox_row(outbox_id)
        assert row is not None
        statuses.append(row.status)
    assert statuses == ["pending"] * cap + ["suppressed"]
    world.later(timedelta(hours=24, minutes=1))
    (outbox_id,) = plan_ack(world, REQUESTER, "next day")
    row = world.store.outbox_row(outbox_id)
    assert row is not None and row.status == "pending"


def test_the_team_is_never_capped(world: World) -> None:
    for n in range(5):
        (outbox_id,) = plan_ack(world, TEAMMATE, f"n{n}")
        row = world.store.outbox_row(outbox_id)
        assert row is not None and row.status == "pending"


def test_a_message_that_cannot_be_composed_is_recorded_not_raised(world: World) -> None:
    assert plan_ack(world, "not an address", "t") == []
    ticket = world.store.get_ticket(1)
    assert ticket is not None
    assert world.outbox(ticket) == []
    assert "not sent" in world.actions(ticket)


# -- alerts and deployments without mail --------------------------------------------------
def test_an_alert_also_goes_to_the_webhook_when_one_is_configured(tmp_path: Path) -> None:
    world = make_world(tmp_path, channels=(ChannelName.MAILDIR, ChannelName.WEBHOOK))
    act(world, CASES["a critical forward also alerts on-call"].decision)
    rows = world.outbox()
    assert [(r.kind, r.channel) for r in rows] == [
        (K.FORWARD, ChannelName.MAILDIR), (K.FORWARDED, ChannelName.MAILDIR),
        (K.ALERT, ChannelName.MAILDIR), (K.ALERT, ChannelName.WEBHOOK)]
    assert json.loads(rows[-1].payload)["kind"] == "alert"


@pytest.mark.parametrize("webhook", [False, True])
def test_without_mail_a_requester_message_is_suppressed_and_alerts_use_the_webhook(
        tmp_path: Path, webhook: bool) -> None:
    channels = (ChannelName.HELPSCOUT, *((ChannelName.WEBHOOK,) if webhook else ()))
    world = make_world(tmp_path, channels=channels)
    act(world, CASES["a critical forward also alerts on-call"].decision)
    ticket = world.store.get_ticket(1)
    assert ticket is not None
    rows = world.outbox(ticket)
    actions = world.actions(ticket)
    assert "suppressed" in actions  # the notice to the requester: no way to reach them
    if webhook:
        assert {(r.kind, r.channel) for r in rows} == {(K.FORWARD, ChannelName.WEBHOOK),
                                                      (K.ALERT, ChannelName.WEBHOOK)}
    else:
        assert rows == []
        assert actions.count("logged") == 2  # the owner's copy and the alert


# -- Help Scout tickets: operations, not mail ---------------------------------------------
@pytest.fixture
def hs_world(tmp_path: Path) -> World:
    return make_world(tmp_path, channels=(ChannelName.HELPSCOUT,))


@pytest.mark.parametrize("kind", [K.ACKNOWLEDGE, K.ASK_INFO, K.ANSWER, K.FORWARDED, K.CHECK_IN,
                                  K.CLOSURE, K.REOPENED])
def test_a_help_scout_reply_leaves_the_status_its_kind_names(hs_world: World,
                                                             kind: MessageKind) -> None:
    ticket = hs_world.ticket(source=SourceKind.HELPSCOUT)
    template = "answer-password-reset" if kind == K.ANSWER else None
    (outbox_id,) = hs_world.planner.plan(
        ticket=ticket, kind=kind, to=[REQUESTER], trigger="hs:1", now=START,
        ruleset=hs_world.ruleset, templates=hs_world.templates, template=template)
    row = hs_world.store.outbox_row(outbox_id)
    assert row is not None and row.channel == ChannelName.HELPSCOUT
    op = ops.parse_op(row.payload)
    assert isinstance(op, ops.ReplyOp)
    assert (op.conversation_id, op.customer_id) == (7001, 501)
    assert op.status == spec(kind).helpscout_status
    assert op.marker == f"sb:t{ticket.id}:{kind}:hs:1"


def test_a_help_scout_forward_assigns_notes_and_tells_the_requester(hs_world: World) -> None:
    ticket = hs_world.ticket(source=SourceKind.HELPSCOUT)
    d = decision(Action(A.FORWARD, ("123",), "forward", "billing"), owner="123")
    hs_world.act(ticket, inbound(), d, "hs:1")
    rows = hs_world.outbox(ticket)
    parsed = [ops.parse_op(r.payload) for r in rows]
    assert [type(p) for p in parsed] == [ops.AssignOp, ops.NoteOp, ops.ReplyOp]
    assign, note, reply = parsed
    assert isinstance(assign, ops.AssignOp) and assign.user_id == 123
    assert isinstance(note, ops.NoteOp) and "rule: billing" in note.body
    assert isinstance(reply, ops.ReplyOp) and reply.status == HelpScoutStatus.ACTIVE
    assert hs_world.reload(ticket).state == S.FORWARDED


@pytest.mark.parametrize(("priority", "tags"), [
    (Priority.NORMAL, ("billing",)), (Priority.CRITICAL, ("billing", "priority-critical"))])
def test_help_scout_tags_carry_an_unusual_priority(hs_world: World, priority: Priority,
                                                   tags: tuple[str, ...]) -> None:
    ticket = hs_world.ticket(source=SourceKind.HELPSCOUT)
    d = Decision(ignored=False, reason=None, priority=priority, tags=("billing",),
                 rules=("billing",),
                 actions=(Action(A.ACKNOWLEDGE, (REQUESTER,), "acknowledge", "billing"),))
    hs_world.act(ticket, inbound(), d, "hs:1")
    found = [ops.parse_op(r.payload) for r in hs_world.outbox(ticket) if r.kind == K.TAGS]
    assert found == [ops.TagsOp(7001, tags)]
