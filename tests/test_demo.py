"""`supportbot demo` as a newcomer reads it: a story on the simulated clock, top to bottom."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.commands._common import invoked_as
from bot.demo.narrate import WIDTH
from tests.helpers import REPO

QUOTE = "       | "  # how the demo shows the lines of a message its recipient receives


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """One run of the demo shared by the tests here: (stdout, stderr, its directory)."""
    directory = tmp_path_factory.mktemp("demo")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(["demo", "--dir", str(directory)]) == 0
    return out.getvalue(), err.getvalue(), directory


def test_each_ticket_ends_with_its_outcome(demo: tuple[str, str, Path]) -> None:
    out, _, directory = demo
    outcome = out.split("== Outcome per ticket", 1)[1]
    assert re.search(r"#1 +dana@whitfieldhomes\.example +critical +first forward +now forwarded",
                     outcome)
    assert re.search(r"#3 +chris@adamsrealty\.example +normal +first ask_info +now closed",
                     outcome)
    assert "ignored: tom@bakerhomes.example" in outcome
    assert list((directory / "outbox" / "new").iterdir())


def test_what_requesters_and_owners_receive_is_shown(demo: tuple[str, str, Path]) -> None:
    out, _, _ = demo
    assert "-> dana@whitfieldhomes.example receives forwarded: Re: My emails aren't sending!!" \
        in out
    assert f"{QUOTE}Hi Dana,\n" in out
    assert "-> deliverability@example.com receives forward: [#1] Assigned to you" in out
    assert "-> chris@adamsrealty.example receives check_in: Re: broken again [#3]" in out
    assert "-> chris@adamsrealty.example receives closure: Re: broken again [#3]" in out


def test_the_whole_conversation_is_told(demo: tuple[str, str, Path]) -> None:
    out, _, _ = demo
    # the owner's Reply reaches the requester, in his thread, and a check-in follows it
    assert "-> marcus@leeproperties.example receives owner_reply: Re: Charged twice this " \
        "month [#2]" in out
    assert f"{QUOTE}Jordan Blake from Acme Support has an answer for you" in out
    assert "-> marcus@leeproperties.example receives check_in: Re: Charged twice" in out
    # Priya's details are decided on again: the product team has it, and she is told
    second_turn = out.split("Priya replies with details", 1)[1].split("\n== ", 1)[0]
    assert "-> product-support@example.com receives forward: [#4]" in second_turn
    assert "-> priya@natarajangroup.example receives forwarded: Re: not working [#4]" \
        in second_turn


def test_the_story_is_on_the_simulated_clock_in_short_lines(
        demo: tuple[str, str, Path]) -> None:
    out, err, directory = demo
    assert err == ""  # the worker's log (real clock) goes to a file, not into the story
    assert '"event": "sent"' in (directory / "worker.log").read_text()
    assert not re.search(r"\d\d:\d\d:\d\d", out)  # no real-clock timestamps
    assert re.search(r"^== Mon \d\d \w{3} 09:00 - the bot reads the inbox", out, re.M)
    long = [line for line in out.splitlines()
            if len(line) > WIDTH and not line.startswith(QUOTE)]
    assert long == []


def test_the_help_scout_part_names_who_receives_what(demo: tuple[str, str, Path]) -> None:
    out, _, _ = demo
    part = out.split("Part two: the same desk working inside Help Scout", 1)[1]
    assert re.search(r"-> sam@harbourhomes\.example receives a reply in Help Scout #\d+ "
                     r"\(status active\)", part)
    assert re.search(r"-> agents see a note in Help Scout #\d+", part)
    assert re.search(r"'help' from lee@northside\.example: status closed", part)
    assert "priority-critical" in part
    assert " to  via" not in part


def test_the_closing_hint_is_a_command_that_works_from_here(
        demo: tuple[str, str, Path]) -> None:
    out, _, directory = demo
    hint = out.split("Try:", 1)[1]
    assert f"export SUPPORTBOT_STATE={directory / 'supportbot.db'}\n" in hint
    assert re.search(r"^   \S+ -m bot log 3$", hint, re.M)  # how pytest runs us


def test_a_command_not_on_path_is_quoted_with_its_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / ".venv" / "bin" / "supportbot"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("sys.argv", [str(script)])
    assert invoked_as() == ".venv/bin/supportbot"
