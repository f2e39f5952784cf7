"""Every shipped rule case (tests/rules/cases/*.yaml) passes with the shipped rules.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import RulesError
from bot.model import Action, Decision
from bot.rules.cases import Expect, compare, load_case_file, run_cases
from bot.rules.load import load_ruleset
from tests.rules.helpers import REPO

CASES = sorted((REPO / "tests" / "rules" / "cases").glob("*.yaml"))
SHIPPED = load_ruleset(REPO / "rules.yaml", REPO / "templates")


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_shipped_cases_pass(path: Path) -> None:
    results = run_cases([path], SHIPPED)
    failures = [f"{r.name}: " + "; ".join(r.problems) for r in results if r.status == "fail"]
    assert not failures, "\n".join(failures)
    if all(r.status == "skip" for r in results):
        pytest.skip("; ".join(r.problems[0] for r in results))


def test_there_are_enough_own_phrasings() -> None:
    own = [c for path in CASES for c in load_case_file(path) if c.raw is not None
           and path.name != "corpus.yaml"]
    assert len(own) >= 80


def test_a_mismatch_is_described() -> None:
    decided = Decision(ignored=False, reason=None, priority="normal", topic="billing",
                       rules=("billing",), actions=(Action("forward", ("b@x.example",),
                                                           "forward", "billing"),))
    problems = compare(Expect.model_validate(
        {"priority": "critical", "actions": [{"kind": "forward", "to": ["d@x.example"]}]}),
        decided)
    assert "priority: expected 'critical', got 'normal'" in problems
    assert any("expected {'kind': 'forward', 'to': ['d@x.example']}" in p for p in problems)
    assert any("unexpected forward to ['b@x.example']" in p for p in problems)


def test_missing_corpus_is_skipped_not_failed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("manifest: nowhere/manifest.yaml\n"
                    "folders: [{path: nowhere, expect: {ignored: true}}]\n"
                    "cases:\n  - {name: gone, eml: gone.eml, expect: {ignored: true}}\n")
    assert [r.status for r in run_cases([path], SHIPPED)] == ["skip", "skip", "skip"]


def test_a_malformed_case_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n  - name: x\n    message: {subject: hi}\n    expect: {priorty: low}\n")
    with pytest.raises(RulesError) as info:
        load_case_file(path)
    assert info.value.errors[0].startswith(f"{path}:4: ")
