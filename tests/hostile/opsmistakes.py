"""Ops mistakes as data, and their figures for bench/reliability.py: each bomb through the
same `check` an operator runs, with the time it took to be refused."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import RulesError
from bot.rules.reload import load_set
from bot.templates import Templates
from tests.helpers import REPO


def rules_with(tmp: Path, pattern: str) -> Path:
    """The default rules with one more rule, first, matching ``pattern`` in the body."""
    text = (REPO / "rules.yaml").read_text()
    rule = (f"  - name: ops-mistake\n    when:\n      body:\n        matches: '{pattern}'\n"
            "    action: acknowledge\n\n")
    path = tmp / "rules.yaml"
    path.write_text(text.replace("\nrules:\n", "\nrules:\n" + rule, 1))
    return path


TEMPLATE_BOMBS = {
    "power": "{{ 9**(9**9) }}",
    "repetition": "{{ 'A'*10**10 }}",
    "format-width": "{{ '%999999999d' % 1 }}",
    "str-format-width": "{{ '{:999999999}'.format(1) }}",
    "filter-width": "{{ 'x'|center(999999999) }}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
                "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "replace": "{{ ('a'*1000)|replace('a', 'a'*1000) }}",
    "lipsum": "{{ lipsum(n=10**6) }}",
    "big-output": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}"
                  "{% endfor %}",
    "silent-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}Hi {{ name }}",
}


REGEX_BOMBS = [r"(a+)+$", r"(\w+\s?)*!", r"(x*)*y"]


def yaml_bomb() -> str:
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n" + (REPO / "rules.yaml").read_text()


@dataclass
class OpsReport:
    rows_: list[tuple[str, object]] = field(default_factory=list)
    problems_: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, object]]:
        return self.rows_

    def problems(self) -> list[str]:
        return self.problems_


def _timed_check(name: str, report: OpsReport, run: object) -> None:
    started = time.monotonic()
    try:
        errors = run()  # type: ignore[operator]
    except RulesError as exc:
        errors = exc.errors
    seconds = time.monotonic() - started
    if errors:
        report.rows_.append((name, f"refused by check in {seconds:.2f} s"))
    else:
        report.rows_.append((name, "ACCEPTED"))
        report.problems_.append(f"{name}: check accepted it")


def run_ops_mistakes(work: Path) -> OpsReport:
    report = OpsReport()
    for i, pattern in enumerate(REGEX_BOMBS):
        path = rules_with(_fresh(work / f"regex{i}"), pattern)
        _timed_check(f"rule pattern {pattern}", report,
                     lambda path=path: load_set(path, REPO / "templates") and [])
    for name, text in TEMPLATE_BOMBS.items():
        templates = _fresh(work / f"tpl-{name}") / "templates"
        shutil.copytree(REPO / "templates", templates)
        (templates / "acknowledge.txt").write_text(text)
        _timed_check(f"template: {name}", report, Templates(templates).check)
    bomb = _fresh(work / "yaml") / "rules.yaml"
    bomb.write_text(yaml_bomb())
    _timed_check("rules.yaml: nine-level alias bomb", report,
                 lambda: load_set(bomb, REPO / "templates") and [])
    return report


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
