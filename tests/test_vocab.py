"""The one vocabulary holds together: every kind has its row, and the words rules.yaml and
the rule test cases accept are the enums' words.

``bot/rules/schema.py`` spells the accepted words as ``Literal`` types so pydantic's errors
name them ("unknown priority 'urgent' (expected 'critical', 'high', 'normal' or 'low')");
these tests are what keeps those spellings and ``bot/vocab.py`` the same.
"""

from __future__ import annotations

import ast
from typing import get_args

import pytest

from bot.rules import cases, load, schema
from bot.tickets import awaiting_requester, next_state
from bot.vocab import (
    ALERT_KINDS,
    CONVERSATION_TEMPLATES,
    KINDS,
    REPLY_STATUSES,
    REQUESTER_ACTIONS,
    REQUESTER_KINDS,
    ActionKind,
    Author,
    ChannelName,
    HelpScoutStatus,
    MessageKind,
    OutboxStatus,
    Priority,
    SendStatus,
    SourceKind,
    TicketState,
    TimerKind,
    TimerStatus,
    spec,
)
from tests.helpers import REPO


def values(enum: type[object]) -> set[str]:
    return {str(member) for member in enum}  # type: ignore[attr-defined]


def test_every_message_kind_has_its_row() -> None:
    assert set(KINDS) == set(MessageKind)


# an answer's template is always named by its rule (schema.py refuses an answer without one)
@pytest.mark.parametrize("kind", [k for k in MessageKind
                                  if spec(k).template and k != MessageKind.ANSWER])
def test_each_kinds_default_template_ships(kind: MessageKind) -> None:
    assert (REPO / "templates" / f"{spec(kind).template}.txt").is_file()


def test_the_templates_every_rules_file_needs_are_the_kinds_defaults() -> None:
    defaults = {spec(k).template for k in MessageKind} - {None}
    # an answer always names its template; the report's is needed only with settings.report
    # ... and those the conversation after the first message names
    assert set(load.REQUIRED_TEMPLATES) == (defaults - {"answer", "report"}
                                            | set(CONVERSATION_TEMPLATES))


@pytest.mark.parametrize("kind", list(MessageKind))
def test_auto_submitted_follows_rfc_3834(kind: MessageKind) -> None:
    """A direct answer to the requester's mail is auto-replied; what no mail of theirs
    prompted (team mail, the timers' check-in and closure) is auto-generated."""
    row = spec(kind)
    assert row.auto_submitted in {"auto-replied", "auto-generated"}
    if not row.to_requester or kind in {MessageKind.CHECK_IN, MessageKind.CLOSURE}:
        assert row.auto_submitted == "auto-generated"
    if row.to_requester and row.event is not None:
        assert row.auto_submitted == "auto-replied"


@pytest.mark.parametrize("kind", [k for k in MessageKind if spec(k).starts_followup])
def test_a_kind_that_starts_follow_ups_leaves_the_ticket_waiting_on_the_requester(
        kind: MessageKind) -> None:
    event = spec(kind).event
    assert event is not None
    assert awaiting_requester(next_state(TicketState.NEW, event))
    assert spec(kind).helpscout_status == HelpScoutStatus.PENDING


def test_every_message_to_the_requester_can_be_a_help_scout_reply() -> None:
    assert all(spec(k).helpscout_status in REPLY_STATUSES for k in REQUESTER_KINDS)
    assert HelpScoutStatus.SPAM not in REPLY_STATUSES
    assert not any(spec(k).helpscout_status for k in MessageKind if k not in REQUESTER_KINDS)


def test_alerts_go_to_the_team_only() -> None:
    assert ALERT_KINDS and not ALERT_KINDS & REQUESTER_KINDS


def test_every_requester_action_sends_its_own_kind() -> None:
    for action in REQUESTER_ACTIONS:
        assert spec(MessageKind(action)).to_requester


# -- the words rules.yaml and the rule test cases accept ----------------------------------
def test_rules_yaml_priorities_are_the_vocabularys() -> None:
    assert set(get_args(schema.Priority)) == values(Priority)


def test_rules_yaml_sources_are_the_vocabularys() -> None:
    assert set(get_args(schema.SourceName)) == values(SourceKind)


def test_rules_yaml_actions_are_the_vocabularys_less_the_alert_it_adds_itself() -> None:
    assert set(get_args(schema.RuleAction)) == values(ActionKind) - {ActionKind.ALERT}


def test_rule_test_cases_name_every_action() -> None:
    assert set(get_args(cases.ActionName)) == values(ActionKind)


# -- no string stands in for a member -----------------------------------------------------
# attribute name -> the enums whose words it holds
WORDS_OF: dict[str, tuple[type[object], ...]] = {
    "kind": (MessageKind, ActionKind, TimerKind), "state": (TicketState,),
    "status": (OutboxStatus, SendStatus, TimerStatus, HelpScoutStatus), "source": (SourceKind,),
    "priority": (Priority,), "author": (Author,), "channel": (ChannelName,)}
# where a plain word is right, and why
SPOKEN_AS_TEXT = {
    "bot/demo/fake_helpscout.py": "a fake of Help Scout's API speaks the API's own words",
    "bot/rules/load.py": "it compares schema.py's Literal words (tied to the enums above)",
}


def _words(node: ast.expr) -> list[str]:
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def test_no_kind_state_or_status_is_compared_with_a_string() -> None:
    """``row.status == "sent"`` drifts from the vocabulary unseen; compare with the member."""
    found = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        if name == "bot/vocab.py" or name in SPOKEN_AS_TEXT:
            continue
        for node in ast.walk(ast.parse(path.read_text(), name)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            for side in sides:
                if not (isinstance(side, ast.Attribute) and side.attr in WORDS_OF):
                    continue
                members = {str(m) for enum in WORDS_OF[side.attr] for m in enum}  # type: ignore[attr-defined]
                found += [f"{name}:{node.lineno}: .{side.attr} compared with {word!r}"
                          for other in sides for word in _words(other) if word in members]
    assert not found, "use the bot.vocab member instead:\n" + "\n".join(found)
