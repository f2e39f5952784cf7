"""The replay of a ticket's steps: one case per row, the state machine and the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.rebuild.replay import Step, replay
from bot.rules.load import load_ruleset
from bot.vocab import MessageKind as K
from bot.vocab import TicketEvent as E
from bot.vocab import TicketState as S
from bot.vocab import TimerKind as T
from tests.helpers import REPO

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
RULESET = load_ruleset(REPO / "rules.yaml", REPO / "templates")

CASES: list[tuple[str, list[Step], S, tuple[T, datetime] | None]] = [
    ("acknowledged", [Step(T0, K.ACKNOWLEDGE)], S.ACKNOWLEDGED, None),
    ("asked: check-in 24 h after the question", [Step(T0, K.ASK_INFO)], S.WAITING,
     (T.CHECK_IN, T0 + 24 * H)),
    ("answered: the same schedule", [Step(T0, K.ANSWER)], S.ANSWERED, (T.CHECK_IN, T0 + 24 * H)),
    ("checked in: closure 24 h after the check-in",
     [Step(T0, K.ASK_INFO), Step(T0 + 24 * H, K.CHECK_IN)], S.WAITING, (T.CLOSE, T0 + 48 * H)),
    ("closed", [Step(T0, K.ASK_INFO), Step(T0 + 24 * H, K.CHECK_IN),
                Step(T0 + 48 * H, K.CLOSURE)], S.CLOSED, None),
    ("forwarded: notice and forward", [Step(T0, K.FORWARD), Step(T0, K.FORWARDED),
                                       Step(T0, K.ALERT)], S.FORWARDED, None),
    ("reopened after closure", [Step(T0, K.ANSWER), Step(T0 + 24 * H, K.CHECK_IN),
                                Step(T0 + 48 * H, K.CLOSURE), Step(T0 + 50 * H, K.REOPENED)],
     S.OPEN, None),
    ("a relay means the requester wrote: no check-in", [Step(T0, K.ASK_INFO),
                                                        Step(T0 + H, K.RELAY)], S.OPEN, None),
    ("Help Scout: the customer replied", [Step(T0, K.ASK_INFO),
                                          Step(T0 + H, event=E.REQUESTER_REPLIED)], S.OPEN, None),
    ("Help Scout: an agent's pending reply starts the schedule",
     [Step(T0, K.ACKNOWLEDGE), Step(T0 + 2 * H, event=E.AGENT_ASKED)], S.WAITING,
     (T.CHECK_IN, T0 + 26 * H)),
    ("Help Scout: an agent closed it", [Step(T0, K.ASK_INFO),
                                        Step(T0 + H, event=E.AGENT_CLOSED)], S.CLOSED, None),
    ("a refused transition is skipped, not fatal",
     [Step(T0, K.FORWARD), Step(T0 + H, K.ANSWER)], S.FORWARDED, None),
]


@pytest.mark.parametrize(("name", "steps", "state", "followup"), CASES,
                         ids=[c[0] for c in CASES])
def test_replay(name: str, steps: list[Step], state: S,
                followup: tuple[T, datetime] | None) -> None:
    result = replay(steps, RULESET)
    assert result.state == state
    assert result.followup == followup


def test_visible_updates_and_alerts() -> None:
    result = replay([Step(T0, K.FORWARD), Step(T0 + H, K.FORWARDED), Step(T0 + H, K.ALERT),
                     Step(T0 + 3 * H, K.ASSIGNED_REMINDER)], RULESET)
    assert (result.first_visible, result.last_visible) == (T0 + H, T0 + H)
    assert result.critical and result.reminders == 1
