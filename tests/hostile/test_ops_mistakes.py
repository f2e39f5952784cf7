"""Ops mistakes (catastrophic patterns, template and YAML bombs) are refused by `check` or
bounded at run time: outcomes are asserted, with budgets that make each bomb fail for sure."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.errors import RulesError
from bot.rules.reload import RulesHolder, load_set
from bot.runtime import open_worker
from bot.store import Store
from bot.templates import Templates
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail
from tests.hostile.opsmistakes import TEMPLATE_BOMBS, rules_with, yaml_bomb

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)*!", r"(x*)*y", r"(ab+c)+"])
def test_check_refuses_nested_quantifiers(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_set(rules_with(tmp_path, pattern), REPO / "templates")
    assert any("refused" in e and "repeat" in e for e in caught.value.errors)


@pytest.mark.parametrize("pattern", [r"(a++b)+", r"(?>\w+\.)+com", r"(ab){1,5}", r"a+b+"])
def test_check_accepts_patterns_that_cannot_explode(tmp_path: Path, pattern: str) -> None:
    load_set(rules_with(tmp_path, pattern), REPO / "templates")


def test_a_pattern_that_explodes_at_run_time_quarantines_that_message_alone(
        tmp_path: Path) -> None:
    """`(a|aa)+$` has no nested quantifier, passes `check`, and is exponential on a run of
    a's that fails to match at the end: that message is held with the reason."""
    settings = embedded_settings(tmp_path, SUPPORTBOT_RULES=str(rules_with(tmp_path,
                                                                          r"(a|aa)+$")))
    inbox = tmp_path / "inbox"
    deliver(inbox, make_mail(message_id="<before@x.example>", subject="Export",
                             body="How do I export my contacts to a CSV file?"), T0)
    deliver(inbox, make_mail(message_id="<bomb@x.example>", subject="Hi",
                             body="a" * 80 + "!"), T0 + timedelta(seconds=1))
    deliver(inbox, make_mail(message_id="<after@x.example>", sender="kim@lee.example",
                             subject="Training", body="Do you offer onboarding sessions?"),
            T0 + timedelta(seconds=2))

    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0)) as worker:
            await worker.cycle()
    asyncio.run(go())
    assert sorted(s.to for s in outbox_mail(tmp_path / "outbox")) == [
        "ann@customer.example", "kim@lee.example"]
    [held] = Store(settings.state).quarantined()
    assert "BudgetExceeded" in held.error and "took more than" in held.error


@pytest.mark.parametrize("bomb", sorted(TEMPLATE_BOMBS))
def test_check_refuses_template_bombs(tmp_path: Path, bomb: str) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "acknowledge.txt").write_text(TEMPLATE_BOMBS[bomb])
    errors = Templates(templates, render_seconds=0.2).check()
    assert [e for e in errors if e.startswith(str(templates / "acknowledge.txt"))]
    assert any("template budget" in e or "BudgetExceeded" in e for e in errors)


def test_a_template_bomb_saved_while_the_worker_runs_is_rejected_at_reload(
        tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    holder = RulesHolder(REPO / "rules.yaml", templates)
    (templates / "acknowledge.txt").write_text(TEMPLATE_BOMBS["power"])
    assert holder.maybe_reload() is False
    assert any("template budget" in e for e in holder.last_errors)
    assert holder.current[1].check() == []  # the old, good set stays in force


def test_check_refuses_a_yaml_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml_bomb())
    with pytest.raises(RulesError) as caught:
        load_set(path, REPO / "templates")
    assert any("expands to more than" in e for e in caught.value.errors)
