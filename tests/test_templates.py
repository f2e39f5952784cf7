"""Templates: strict, sandboxed, plain text plus optional HTML, and the shipped wording."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.errors import RulesError
from bot.templates import Templates, sample_context

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "templates"
CHECK_IN = ("Hi Dana,\n\nWe're just checking in to see whether this is still an issue for you. "
            "To keep things tidy, we'll close the ticket tomorrow if we haven't heard from you")


def folder(tmp: Path, **files: str) -> Templates:
    for name, text in files.items():
        (tmp / name.replace("__", ".")).write_text(text)
    return Templates(tmp)


def test_shipped_templates_all_render() -> None:
    templates = Templates(SHIPPED)
    assert templates.check() == []
    for name in ("acknowledge", "forwarded", "forward", "ask_info", "check_in", "closure",
                 "alert", "assigned_reminder", "first_response_overdue", "report"):
        assert name in templates.names()
    assert any(n.startswith("answer-") for n in templates.names())
    assert templates.has_html("acknowledge")


def test_check_in_keeps_its_wording() -> None:
    rendered = Templates(SHIPPED).render("check_in", sample_context())
    assert rendered.text.startswith(CHECK_IN)
    assert rendered.html is not None and "checking in to see whether this is still an issue" \
        in rendered.html


def test_requester_messages_are_kind_and_personal() -> None:
    templates = Templates(SHIPPED)
    ctx = sample_context(name="Priya", ticket_ref="[#7]")
    for name in ("acknowledge", "forwarded", "ask_info", "closure", "answer-password-reset"):
        text = templates.render(name, ctx).text
        assert text.startswith("Hi Priya") and "[#7]" in text, name
        assert "The Acme Support team" in text, name
    forwarded = templates.render("forwarded", sample_context(owner_name="our billing team")).text
    assert "our billing team" in forwarded
    ask = templates.render("ask_info", ctx).text
    for question in ("trying to do", "steps", "When did it start", "exact text"):
        assert question in ask


def test_forward_to_owner_carries_the_original_and_the_rule() -> None:
    text = Templates(SHIPPED).render("forward", sample_context(original_text="THE ORIGINAL",
                                                               rule="billing")).text
    assert "THE ORIGINAL" in text and "billing" in text


def test_optional_variables_switch_wording() -> None:
    templates = Templates(SHIPPED)
    assert "reopened" in templates.render("acknowledge", sample_context(reopened=True)).text
    assert "bounced" in templates.render("alert", sample_context(undeliverable="a@b.c")).text
    assert "replied" in templates.render("forward", sample_context(is_reply=True)).text


def test_html_is_escaped_text_is_not(tmp_path: Path) -> None:
    t = folder(tmp_path, hi__txt="Re: {{ subject }}\n", hi__html="<p>{{ subject }}</p>\n")
    rendered = t.render("hi", {"subject": "<b>&</b>"})
    assert rendered.text == "Re: <b>&</b>\n"
    assert rendered.html == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>\n"


def test_undefined_variables_fail_with_file_and_line(tmp_path: Path) -> None:
    t = folder(tmp_path, hi__txt="Hello\n\n{{ nmae }}\n")
    with pytest.raises(RulesError) as info:
        t.render("hi", sample_context())
    assert info.value.errors[0].startswith(f"{tmp_path / 'hi.txt'}:3: ")
    assert "nmae" in info.value.errors[0]
    assert t.check()[0].startswith(f"{tmp_path / 'hi.txt'}:3: ")


def test_syntax_errors_are_reported_by_check(tmp_path: Path) -> None:
    t = folder(tmp_path, ok__txt="fine\n", bad__txt="one\n{% if name %}\nno end\n")
    errors = t.check()
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'bad.txt'}:")


def test_the_sandbox_blocks_escapes(tmp_path: Path) -> None:
    t = folder(tmp_path, evil__txt="{{ name.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(RulesError) as info:
        t.render("evil", sample_context())
    assert "SecurityError" in info.value.errors[0] or "unsafe" in info.value.errors[0]


def test_context_values_are_not_templates(tmp_path: Path) -> None:
    t = folder(tmp_path, hi__txt="{{ subject }}\n")
    assert t.render("hi", {"subject": "{{ 7 * 7 }}"}).text == "{{ 7 * 7 }}\n"


def test_snapshot_ignores_later_edits(tmp_path: Path) -> None:
    t = folder(tmp_path, hi__txt="one\n")
    (tmp_path / "hi.txt").write_text("two {{ broken\n")
    assert t.render("hi", {}).text == "one\n" and t.check() == []


def test_partials_html_without_text_and_missing_names(tmp_path: Path) -> None:
    t = folder(tmp_path, _sig__txt="-- {{ team_name }}\n", a__txt="A\n{% include '_sig.txt' %}",
               orphan__html="<p>x</p>")
    assert t.names() == ["a"]
    assert t.render("a", sample_context()).text == "A\n-- Acme Support\n"
    assert any("HTML alternative without a plain-text orphan.txt" in e for e in t.check())
    with pytest.raises(RulesError):
        t.render("nope", {})


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RulesError):
        Templates(tmp_path / "nope")


def test_digest_changes_with_content(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "t")
    before = Templates(tmp_path / "t").digest
    (tmp_path / "t" / "closure.txt").write_text("Bye {{ name }}\n")
    assert Templates(tmp_path / "t").digest != before
