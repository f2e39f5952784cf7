"""`supportbot check`, `explain` and `test`, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.rules.helpers import REPO, SETTINGS

EML = b"""From: Dana Whitfield <dana@whitfieldhomes.example>
To: Support <support@example.com>
Subject: My emails aren't sending!!
Message-ID: <t1@whitfieldhomes.example>

None of my emails to clients are going out since 8am.
"""


@pytest.fixture(autouse=True)
def _repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # default rules.yaml, templates/ and tests/rules/cases


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_passes_on_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check")
    assert code == 0 and out.startswith("ok: 9 rules, ")


@pytest.mark.parametrize(("rules", "message"), [
    ("rules:\n  - name: a\n    actoin: acknowledge\n", ":6: rule 'a': unknown key 'actoin'"),
    ("rules:\n  - name: a\n    when: {body: {matches: '(x'}}\n    action: acknowledge\n",
     ":6: rule 'a' (when.body.matches): bad regular expression '(x'"),
    ("rules:\n  - name: a\n    action: answer\n    template: answer-nothing\n",
     ":7: rule 'a': template 'answer-nothing' not found"),
    ("rules:\n  - name: a\n    action: escalate\n", ":6: rule 'a': unknown action 'escalate'"),
    ("rules:\n  - name: a\n   action: acknowledge\n", ":6: YAML syntax error"),
])
def test_check_fails_precisely(capsys: pytest.CaptureFixture[str], tmp_path: Path, rules: str,
                               message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SETTINGS + rules)
    code, out, _ = run(capsys, "check", "--rules", str(path))
    assert code == 1
    assert f"{path}{message}" in out


def test_check_reports_template_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO / "templates", tmp_path / "t")
    (tmp_path / "t" / "closure.txt").write_text("{% if %}\n")
    code, out, _ = run(capsys, "check", "--templates", str(tmp_path / "t"))
    assert code == 1 and f"{tmp_path / 't' / 'closure.txt'}:1:" in out


def test_explain_json_contract(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.eml"
    path.write_bytes(EML)
    code, out, _ = run(capsys, "explain", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ignored"] is False and data["reason"] is None
    assert data["priority"] == "critical" and data["topic"] == "deliverability"
    assert data["rules"] == ["deliverability"]
    assert data["actions"][0] == {
        "kind": "forward", "to": ["deliverability@example.com"], "template": "forward",
        "rule": "deliverability", "notify": ["dana@whitfieldhomes.example"],
        "notice_template": "forwarded-urgent"}
    assert data["actions"][1]["kind"] == "alert" and data["actions"][1]["to"] == [
        "oncall@example.com"]
    assert data["owner"] == "deliverability@example.com" and data["followup"] is False
    assert data["tags"] == ["email-delivery"]
    assert [s["rule"] for s in data["trace"]][:3] == ["automated", "mobile-app", "deliverability"]
    kinds = [p["kind"] for p in data["previews"]]
    assert kinds == ["forward", "forwarded", "alert"]
    assert data["previews"][1]["text"].startswith("Hi Dana,")


def test_explain_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.eml"
    path.write_bytes(EML)
    code, out, _ = run(capsys, "explain", str(path))
    assert code == 0
    assert "HIT   deliverability" in out and "skip  billing" in out
    assert "--- forwarded to dana@whitfieldhomes.example (template forwarded-urgent)" in out


def test_explain_ignored_and_malformed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    auto = tmp_path / "auto.eml"
    auto.write_bytes(EML.replace(b"Subject:", b"Auto-Submitted: auto-replied\nSubject:"))
    code, out, _ = run(capsys, "explain", str(auto), "--json")
    data = json.loads(out)
    assert code == 0 and data["ignored"] is True and data["reason"]
    assert data["priority"] is None and data["actions"] == [] and data["previews"] == []
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"   \n")
    code, out, _ = run(capsys, "explain", str(junk), "--json")
    data = json.loads(out)
    assert code == 0 and data["ignored"] is True and "malformed" in data["reason"]


def test_explain_as_helpscout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.eml"
    path.write_bytes(EML)
    code, out, _ = run(capsys, "explain", str(path), "--json", "--source", "helpscout")
    assert code == 0 and json.loads(out)["source"] == "helpscout"


def test_explain_on_the_corpus(capsys: pytest.CaptureFixture[str], corpus: Path) -> None:
    import yaml

    manifest = yaml.safe_load((corpus / "tickets" / "manifest.yaml").read_text())
    for ticket in manifest["tickets"]:
        code, out, _ = run(capsys, "explain", "--json", str(corpus / "tickets" / ticket["file"]))
        data = json.loads(out)
        first = next(a["kind"] for a in data["actions"] if a["kind"] != "alert")
        assert (code, data["ignored"], data["priority"], first) == (
            0, False, ticket["priority"], ticket["action"]), ticket["file"]
    for path in sorted((corpus / "automated").glob("*.eml"))[::20]:
        code, out, _ = run(capsys, "explain", "--json", str(path))
        data = json.loads(out)
        assert code == 0 and data["ignored"] is True and data["reason"], path.name


def test_explain_prints_exactly_one_json_object_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "t.eml"
    path.write_bytes(EML)
    done = subprocess.run([sys.executable, "-m", "bot", "explain", "--json", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SUPPORTBOT_LOG_FORMAT": "json"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["priority"] == "critical"


def test_test_command_runs_the_shipped_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test")
    assert code == 0, out
    assert out.splitlines() == [out.splitlines()[-1]]  # all pass: the summary alone
    assert " passed, 0 failed" in out.splitlines()[-1]


def test_test_command_fails_on_a_mismatch(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: wrong on purpose\n    message: {subject: refund please}\n"
                     "    expect: {priority: critical, topic: billing}\n"
                     "  - name: right\n    message: {subject: refund please}\n"
                     "    expect: {topic: billing, first_action: forward}\n")
    code, out, _ = run(capsys, "test", str(cases))
    assert code == 1
    assert f"FAIL {cases}: wrong on purpose" in out
    assert "priority: expected 'critical', got 'normal'" in out
    assert "PASS" not in out  # only failures and the summary, unless -v
    code, out, _ = run(capsys, "test", "-v", str(cases))
    assert f"PASS {cases}: right" in out
    assert out.splitlines()[-1].startswith("1 passed, 1 failed, 0 skipped")


def test_each_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("check", "explain", "test"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: supportbot " + command in capsys.readouterr().out
