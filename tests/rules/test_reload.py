"""Hot reload: a valid change is swapped in, an invalid one is rejected loudly, old rules stay."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bot.errors import RulesError
from bot.rules.reload import RulesHolder
from bot.templates import sample_context
from tests.rules.helpers import SETTINGS, TEMPLATES

RULES = SETTINGS + "rules:\n  - name: catch-all\n    action: acknowledge\n"


def setup_files(tmp: Path) -> tuple[Path, Path]:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    templates = tmp / "templates"
    shutil.copytree(TEMPLATES, templates)
    return rules, templates


def touch_later(path: Path) -> None:
    """Move the mtime forward so the change is seen even on a coarse file system clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_unchanged_files_are_not_reloaded(tmp_path: Path) -> None:
    holder = RulesHolder(*setup_files(tmp_path))
    before = holder.current
    assert holder.maybe_reload() is False
    assert holder.current is before and holder.reloads_ok == 0


def test_a_valid_change_is_swapped_in(tmp_path: Path) -> None:
    rules, _ = setup_files(tmp_path)
    holder = RulesHolder(rules, tmp_path / "templates")
    rules.write_text(RULES.replace("catch-all", "everything"))
    touch_later(rules)
    with capture_logs() as logs:
        assert holder.maybe_reload() is True
    assert holder.current[0].rules[0].name == "everything"
    assert holder.last_reload_ok and holder.reloads_ok == 1
    assert logs[-1]["event"] == "rules reloaded"


def test_an_invalid_change_keeps_the_old_rules(tmp_path: Path) -> None:
    rules, _ = setup_files(tmp_path)
    holder = RulesHolder(rules, tmp_path / "templates")
    digest = holder.current[0].digest
    rules.write_text(RULES + "  - name: late\n    priorty: high\n")
    touch_later(rules)
    with capture_logs() as logs:
        assert holder.maybe_reload() is False
    assert holder.current[0].digest == digest
    assert not holder.last_reload_ok and holder.reloads_failed == 1
    error = next(e for e in logs if e["log_level"] == "error")
    assert any("unknown key 'priorty'" in line for line in error["errors"])
    # reported once, not every cycle; SIGHUP (force) tries again
    assert holder.maybe_reload() is False and holder.reloads_failed == 1
    assert holder.maybe_reload(force=True) is False and holder.reloads_failed == 2
    # fixing the file brings reloads back
    rules.write_text(RULES)
    touch_later(rules)
    assert holder.maybe_reload() is True and holder.last_reload_ok


def test_a_broken_template_is_rejected_too(tmp_path: Path) -> None:
    rules, templates = setup_files(tmp_path)
    holder = RulesHolder(rules, templates)
    (templates / "closure.txt").write_text("Bye {{ nam }}\n")
    assert holder.maybe_reload() is False
    assert any("closure.txt:1:" in e for e in holder.last_errors)
    assert holder.current[1].render("closure", sample_context()).text.startswith("Hi Dana")


def test_a_new_template_file_triggers_a_reload(tmp_path: Path) -> None:
    rules, templates = setup_files(tmp_path)
    holder = RulesHolder(rules, templates)
    (templates / "answer-hours.txt").write_text("Hi {{ name }}, we are open 9-5.\n")
    assert holder.maybe_reload() is True
    assert "answer-hours" in holder.current[1].names()


def test_invalid_rules_at_start_raise(tmp_path: Path) -> None:
    rules, templates = setup_files(tmp_path)
    rules.write_text("rules: [")
    with pytest.raises(RulesError):
        RulesHolder(rules, templates)
