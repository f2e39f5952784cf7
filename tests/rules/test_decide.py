"""decide(): automated mail first, replies to tickets, first match, continue, critical alerts,
and never an exception, whatever the message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import MalformedMessage
from bot.mail.parse import parse_message
from bot.model import Action, TicketView
from bot.rules import decide as decide_module
from bot.rules.decide import decide
from bot.rules.load import load_ruleset
from bot.rules.ruleset import RuleSet
from tests.rules.helpers import NOW, REPO, message, ruleset

RULES = """\
rules:
  - name: vip
    when: {from_domain: customer.example}
    tags: [vip]
    priority: high
    continue: true
  - name: bounce
    when: {text: bounce}
    priority: critical
    topic: deliverability
    tags: [email]
    action: forward
    to: deliverability
  - name: billing
    when: {text: [refund, invoice]}
    topic: billing
    action: forward
    to: [billing, cfo@example.com]
  - name: reset
    when: {subject: password}
    action: answer
    template: answer-password-reset
  - name: catch-all
    action: acknowledge
"""


@pytest.fixture
def rs(tmp_path: Path) -> RuleSet:
    return ruleset(tmp_path, RULES)


def test_automated_mail_is_ignored_with_its_reason(rs: RuleSet) -> None:
    msg = message("Out of office", "Back Monday", headers={"Auto-Submitted": "auto-replied"})
    d = decide(msg, None, NOW, rs)
    assert d.ignored and d.reason and "auto-submitted" in d.reason.lower()
    assert d.actions == () and d.priority is None and d.rules == ()
    assert d.trace[0].rule == "automated" and d.trace[0].matched


def test_our_own_address_is_ignored(rs: RuleSet) -> None:
    msg = replace(message("Re: hello", "Thanks"), from_addr="support@example.com")
    assert decide(msg, None, NOW, rs, own_addresses=frozenset({"support@example.com"})).ignored


def test_a_reply_to_a_known_ticket_runs_no_rules(rs: RuleSet) -> None:
    ticket = TicketView(id=7, state="waiting", source="email", requester="ann@customer.example",
                        priority="high", topic="billing", owner="billing@example.com")
    d = decide(message("Re: refund [#7]", "Here are the details"), ticket, NOW, rs)
    assert not d.ignored and d.actions == () and d.rules == ()
    assert (d.priority, d.topic, d.owner) == ("high", "billing", "billing@example.com")
    assert "reply to ticket #7" in d.trace[-1].reason


def test_first_match_wins_and_later_rules_are_traced_as_skipped(rs: RuleSet) -> None:
    msg = replace(message("Refund", "please refund me"), from_addr="bob@other.example")
    d = decide(msg, None, NOW, rs)
    assert d.rules == ("billing",)
    assert d.actions == (Action("forward", ("billing@example.com", "cfo@example.com"), "forward",
                                "billing", notice_template="forwarded"),)
    assert d.owner == "billing@example.com" and d.priority == "normal" and not d.followup
    steps = {s.rule: s for s in d.trace}
    assert not steps["vip"].matched and "from_domain" in steps["vip"].reason
    assert steps["billing"].matched and "refund" in steps["billing"].reason
    assert steps["catch-all"].reason == "not evaluated: 'billing' matched first"


def test_continue_adds_tags_and_priority(rs: RuleSet) -> None:
    d = decide(message("Invoice", "Where is my invoice?"), None, NOW, rs)
    assert d.rules == ("vip", "billing")
    assert d.tags == ("vip",) and d.priority == "high" and d.topic == "billing"


def test_critical_alerts_oncall_and_keeps_the_most_severe_priority(rs: RuleSet) -> None:
    d = decide(message("Everything bounces", "help"), None, NOW, rs)
    assert d.priority == "critical" and d.topic == "deliverability"
    assert d.tags == ("vip", "email")
    assert [(a.kind, a.to) for a in d.actions] == [("forward", ("4711",)),
                                                    ("alert", ("oncall@example.com",))]
    assert d.actions[1].rule == "bounce" and d.actions[1].template == "alert"


def test_answer_starts_the_followup_and_goes_to_the_requester(rs: RuleSet) -> None:
    msg = replace(message("Password?", "how"), from_addr="x@other.example",
                  reply_to=("replies@other.example",))
    d = decide(msg, None, NOW, rs)
    assert d.actions == (Action("answer", ("replies@other.example",), "answer-password-reset",
                                "reset"),)
    assert d.followup


def test_catch_all_acknowledges(rs: RuleSet) -> None:
    d = decide(replace(message("Hello", "A question"), from_addr="z@z.example"), None, NOW, rs)
    assert d.rules == ("catch-all",) and [a.kind for a in d.actions] == ["acknowledge"]
    assert d.actions[0].to == ("z@z.example",) and d.actions[0].template == "acknowledge"


def test_default_action_when_no_rule_matches(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, "defaults: {action: ask_info, priority: low}\nrules:\n"
                           "  - name: a\n    when: {subject: zzz}\n    action: acknowledge\n")
    d = decide(message("Hello", "?"), None, NOW, rs)
    assert d.rules == () and d.priority == "low" and d.followup
    assert [(a.kind, a.rule) for a in d.actions] == [("ask_info", "defaults")]


def test_a_forward_replaces_a_plain_acknowledgement(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """\
rules:
  - name: ack-first
    when: {subject: hello}
    action: acknowledge
    continue: true
  - name: then-forward
    when: {subject: hello}
    action: forward
    to: billing
  - name: catch-all
    action: acknowledge
""")
    d = decide(message("hello", "x"), None, NOW, rs)
    assert [a.kind for a in d.actions] == ["forward"]
    assert any("acknowledge dropped" in s.reason for s in d.trace)


def test_an_internal_error_still_acknowledges(rs: RuleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(decide_module, "detect_automated", boom)
    d = decide(message("x", "y"), None, NOW, rs)
    assert not d.ignored and [a.kind for a in d.actions] == ["acknowledge"]
    assert d.actions[0].to == ("ann@customer.example",)
    assert "detector exploded" in d.trace[0].reason


SHIPPED = load_ruleset(REPO / "rules.yaml", REPO / "templates")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_never_raises_on_any_bytes(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except MalformedMessage:
        return
    d = decide(msg, None, NOW, SHIPPED)
    assert d.ignored or d.actions


@settings(max_examples=200, deadline=None)
@given(subject=st.text(max_size=200), text=st.text(max_size=2000),
       html=st.none() | st.text(max_size=500), from_addr=st.text(max_size=40))
def test_never_raises_on_any_fields(subject: str, text: str, html: str | None,
                                    from_addr: str) -> None:
    d = decide(replace(message(subject, text), html=html, from_addr=from_addr), None, NOW,
               SHIPPED)
    assert d.ignored or d.actions


@pytest.mark.parametrize("raw", [
    b"Subject: cr only\rFrom: a@b.example\r\rmy emails are not sending\r",
    b"Content-Type: text/plain; charset=x-klingon\nFrom: a@b.example\n\n\xff\xfe emails bounce",
    b"Content-Type: multipart/mixed; boundary=zz\nFrom: a@b.example\n\n--zz\nbroken",
    b"From: a@b.example\nSubject: big\n\n" + b"my emails are not sending " * 200_000,
])
def test_malformed_and_huge_input(raw: bytes) -> None:
    d = decide(parse_message(raw), None, NOW, SHIPPED)
    assert d.ignored or d.actions
