"""Loading rules.yaml: the shipped files pass; each kind of mistake is named with file:line."""

from __future__ import annotations

import shutil
from datetime import time, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import RulesError
from bot.rules.load import load_ruleset
from bot.templates import Templates
from tests.rules.helpers import REPO, TEMPLATES, ruleset, write_rules

CATCH_ALL = """\
  - name: catch-all
    action: acknowledge
"""


def errors_of(tmp: Path, body: str, **kw: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        load_ruleset(write_rules(tmp, body, **kw), TEMPLATES)
    return info.value.errors


def test_the_shipped_rules_and_templates_load() -> None:
    rs = load_ruleset(REPO / "rules.yaml", REPO / "templates")
    assert [r.name for r in rs.rules][-1] == "catch-all"
    assert rs.settings.oncall == "oncall@example.com"
    assert rs.settings.check_in_after == timedelta(hours=24)
    assert rs.settings.close_after == timedelta(hours=24)
    assert rs.settings.first_response_after == timedelta(hours=1)
    assert rs.settings.assigned_reminder_after == timedelta(hours=48)
    assert rs.settings.per_recipient_per_day == 5
    assert rs.settings.calendar is None and rs.settings.report is None
    assert "deliverability@example.com" in rs.settings.team_addresses
    assert len(rs.digest) == 16 and rs.path == REPO / "rules.yaml"


def test_settings_are_typed(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, "rules:\n" + CATCH_ALL, settings="""\
settings:
  team: {name: Acme, signature: "Acme team", addresses: [Lead@Example.com]}
  oncall: oncall@example.com
  owners: {billing: billing@example.com, sam: 123}
  followup: {check_in_after: 1d 12h, close_after: 30m}
  business_hours:
    {timezone: Europe/Berlin, days: [mon, tue], hours: "08:30-16:00", holidays: [2026-12-25]}
  limits: {per_recipient_per_day: 3}
  first_response: {alert_after: 2h}
  assigned_reminder_after: off
  report: {every: 1w, at: "08:00", to: [team@example.com]}
""")
    s = rs.settings
    assert s.team_name == "Acme" and s.check_in_after == timedelta(hours=36)
    assert s.close_after == timedelta(minutes=30) and s.first_response_after == timedelta(hours=2)
    assert s.assigned_reminder_after is None and s.per_recipient_per_day == 3
    assert s.owners == {"billing": "billing@example.com", "sam": "123"}
    assert s.calendar is not None and s.calendar.days == {0, 1}
    assert s.calendar.open == time(8, 30) and s.calendar.timezone == "Europe/Berlin"
    assert s.report is not None and s.report.at == time(8) and s.report.timezone == "Europe/Berlin"
    assert s.team_addresses == {"lead@example.com", "oncall@example.com", "billing@example.com",
                                "team@example.com"}
    assert s.owner_name("billing@example.com") == "our billing team"
    assert s.owner_name("someone@example.com") == "someone@example.com"


@pytest.mark.parametrize(("body", "line", "words"), [
    # unknown key, with a suggestion
    ("rules:\n  - name: a\n    priorty: high\n    action: acknowledge\n",
     6, ["rule 'a'", "unknown key 'priorty'", "did you mean 'priority'"]),
    # unknown condition field
    ("rules:\n  - name: a\n    when:\n      subjct: x\n    action: acknowledge\n",
     7, ["rule 'a' (when)", "unknown key 'subjct'", "'subject'"]),
    # bad regex
    ("rules:\n  - name: a\n    when:\n      body: {matches: 'refund(('}\n    action: acknowledge\n",
     7, ["rule 'a' (when.body.matches)", "bad regular expression 'refund(('"]),
    # a regex Python warns about ("possible nested set"): refused, with the fix
    ("rules:\n  - name: a\n    when:\n      body: {matches: 'get(ting[[^.]){0,3}'}\n"
     "    action: acknowledge\n",
     7, ["rule 'a' (when.body.matches)", "ambiguous regular expression", "'\\['"]),
    # unknown action
    ("rules:\n  - name: a\n    action: reply\n",
     6, ["rule 'a'", "unknown action 'reply'", "'acknowledge'"]),
    # missing template
    ("rules:\n  - name: a\n    action: answer\n    template: answer-nope\n",
     7, ["rule 'a'", "template 'answer-nope' not found"]),
    # unknown owner
    ("rules:\n  - name: a\n    action: forward\n    to: biling\n",
     7, ["rule 'a'", "unknown owner 'biling'", "did you mean 'billing'"]),
    # forward without a target
    ("rules:\n  - name: a\n    action: forward\n",
     5, ["rule 'a'", "needs 'to'"]),
    # two operators in one test
    ("rules:\n  - name: a\n    when:\n      subject: {contains: x, equals: y}\n"
     "    action: acknowledge\n",
     7, ["rule 'a' (when.subject)", "exactly one of"]),
    # unknown source
    ("rules:\n  - name: a\n    when: {source: pop3}\n    action: acknowledge\n",
     6, ["unknown source 'pop3'"]),
    # a bad duration in settings
    ("rules:\n  - name: a\n    action: acknowledge\n", 1, []),
])
def test_each_mistake_names_line_and_rule(tmp_path: Path, body: str, line: int,
                                          words: list[str]) -> None:
    if not words:  # the control case: the same file without a mistake loads
        ruleset(tmp_path, body)
        return
    errors = errors_of(tmp_path, body)
    assert errors, body
    first = errors[0]
    assert first.startswith(f"{tmp_path / 'rules.yaml'}:{line}: "), errors
    for word in words:
        assert word in first, errors


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "rules:\n  - name: a\n    action: [acknowledge\n")
    assert len(errors) == 1
    assert "YAML syntax error" in errors[0]
    assert errors[0].startswith(f"{tmp_path / 'rules.yaml'}:")


def test_settings_errors_name_the_setting(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "rules:\n" + CATCH_ALL, settings="""\
settings:
  oncall: not-an-address
  followup: {check_in_after: 24, close_after: 1d}
  business_hours: {timezone: Mars/Olympus, hours: "17:00-09:00"}
""")
    text = "\n".join(errors)
    assert ":2: settings.oncall: 'not-an-address' is not an email address" in text
    assert ":3: settings.followup.check_in_after: 24 is not a duration" in text
    assert ":4: settings.business_hours.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "settings.business_hours.hours" in text


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, """\
rules:
  - name: a
    priorty: high
    action: acknowledge
  - name: b
    when: {body: {matches: '(('}}
    action: acknowledge
""")
    assert len(errors) == 2


def test_duplicate_rule_names_and_keys(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, """\
rules:
  - name: same
    when: {subject: a}
    action: acknowledge
  - name: same
    action: acknowledge
    action: ask_info
""")
    text = "\n".join(errors)
    assert ":8: rule 'same': duplicate rule name (also rule #1)" in text
    assert ":10: rule 'same': key 'action' is written twice" in text


def test_a_catch_all_or_default_is_required(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "rules:\n  - name: a\n    when: {subject: x}\n"
                                 "    action: acknowledge\n")
    assert "no rule catches every ticket" in errors[0]
    ruleset(tmp_path, "defaults: {action: acknowledge}\nrules:\n  - name: a\n"
                      "    when: {subject: x}\n    action: ask_info\n")


def test_rules_after_a_catch_all_are_unreachable(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "rules:\n" + CATCH_ALL + "  - name: late\n"
                                 "    when: {subject: x}\n    action: ask_info\n")
    assert "can never match" in errors[0] and "late" in errors[0]


def test_critical_needs_oncall(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "rules:\n  - name: a\n    priority: critical\n"
                                 "    action: acknowledge\n", settings="")
    assert ":3: rule 'a': priority critical alerts on-call" in errors[0]


def test_yaml_11_surprises_are_gone(tmp_path: Path) -> None:
    # `no` stays a word (a topic here) and 08:00 stays a time, not the number 480.
    rs = ruleset(tmp_path, "rules:\n  - name: a\n    topic: no\n    action: acknowledge\n",
                 settings=("settings:\n  report: {at: 08:00, to: t@example.com}\n"))
    assert rs.rules[0].topic == "no"
    assert rs.settings.report is not None and rs.settings.report.at == time(8)


def test_required_templates_must_exist(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "check_in.txt").unlink()
    with pytest.raises(RulesError) as info:
        load_ruleset(write_rules(tmp_path, "rules:\n" + CATCH_ALL), folder)
    assert any("template 'check_in' not found" in e for e in info.value.errors)


def test_template_errors_fail_the_load(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "acknowledge.txt").write_text("Hi {{ nme }}\n")
    with pytest.raises(RulesError) as info:
        load_ruleset(write_rules(tmp_path, "rules:\n" + CATCH_ALL), Templates(folder))
    assert any(e.startswith(f"{folder / 'acknowledge.txt'}:1: ") and "nme" in e
               for e in info.value.errors)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as info:
        load_ruleset(tmp_path / "nope.yaml", TEMPLATES)
    assert info.value.errors == [f"{tmp_path / 'nope.yaml'}:1: file not found"]


SHIPPED = Templates(TEMPLATES)
FUZZ_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["rules", "when", "any", "not", "subject", "action", "forward", "name",
                       "matches", "(", "settings", "owners", "24h"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["rules", "settings", "defaults", "name", "when", "any",
                                       "all", "not", "subject", "body", "action", "to",
                                       "priority", "matches", "words", "header"]), inner,
                      max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=FUZZ_CHECKS)
@given(data=YAMLISH)
def test_any_yaml_gives_a_ruleset_or_rules_error(tmp_path: Path, data: object) -> None:
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_ruleset(path, SHIPPED)
    except RulesError as exc:
        assert exc.errors and all(e.startswith(f"{path}:") for e in exc.errors)


@settings(max_examples=150, deadline=None, suppress_health_check=FUZZ_CHECKS)
@given(text=st.text(max_size=200))
def test_any_text_gives_a_ruleset_or_rules_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_ruleset(path, SHIPPED)
    except RulesError as exc:
        assert exc.errors
