"""Conditions: each field, each operator, the combinators, and the reasons they give."""

from __future__ import annotations

from typing import Any

import pytest

from bot.model import Message
from bot.rules.match import Facts, compile_condition, count_words
from bot.rules.schema import Condition
from tests.rules.helpers import message


def evaluate(condition: dict[str, Any], msg: Message) -> tuple[bool, str]:
    return compile_condition(Condition.model_validate(condition)).test(Facts(msg))


@pytest.mark.parametrize(("condition", "expected"), [
    ({"subject": {"contains": "BOUNCE"}}, True),               # case-insensitive by default
    ({"subject": "bounce"}, True),                             # shorthand: contains
    ({"subject": ["refund", "bounce"]}, True),                 # a list: any of them
    ({"subject": {"contains": "BOUNCE", "case_sensitive": True}}, False),
    ({"subject": {"equals": "emails bounce"}}, True),
    ({"subject": {"equals": "emails"}}, False),
    ({"subject": {"matches": r"\bboun\w+"}}, True),            # search, not full match
    ({"subject": {"matches": "^bounce"}}, False),
    ({"subject": {"matches": "BOUNCE"}}, True),                # upper case still ignores case
    ({"subject": {"one_of": ["emails bounce", "x"]}}, True),
    ({"body": {"contains": "gmail"}}, True),
    ({"body": {"contains": "emails bounce"}}, False),
    ({"text": {"contains": "emails bounce"}}, True),           # text = subject + body
    ({"text": {"contains": "don't"}}, True),                   # curly quote straightened
    ({"from": "ann@customer.example"}, True),                  # shorthand: one_of
    ({"from": {"contains": "@customer"}}, True),
    ({"from_domain": ["customer.example", "other.example"]}, True),
    ({"from_domain": "customer"}, False),
    ({"to": "support@example.com"}, True),
    ({"cc": "boss@customer.example"}, True),
    ({"recipients": {"contains": "boss@"}}, True),
    ({"source": "email"}, True),
    ({"source": ["imap", "helpscout"]}, False),
    ({"mailbox": 42}, False),
    ({"tags": "vip"}, True),
    ({"tags": {"contains": "VI"}}, True),
    ({"header": {"name": "x-mailer"}}, True),                  # exists
    ({"header": {"name": "X-Nope"}}, False),
    ({"header": {"name": "X-Nope", "exists": False}}, True),
    ({"header": {"name": "X-Mailer", "contains": "outlook"}}, True),
    ({"header": {"name": "X-Mailer", "matches": "^thunderbird"}}, False),
    ({"attachments": True}, True),
    ({"attachments": {"has": False}}, False),
    ({"attachments": {"filename": {"matches": r"\.pdf$"}}}, True),
    ({"attachments": {"content_type": "image/"}}, True),
    ({"attachments": {"filename": "invoice", "content_type": "image/"}}, False),
    ({"words": {"less_than": 10}}, True),
    ({"words": {"more_than": 3, "less_than": 10}}, True),
    ({"words": {"less_than": 3, "in": "text"}}, False),
    ({"all": [{"subject": "bounce"}, {"body": "gmail"}]}, True),
    ({"all": [{"subject": "bounce"}, {"body": "yahoo"}]}, False),
    ({"any": [{"subject": "nope"}, {"body": "gmail"}]}, True),
    ({"not": {"subject": "bounce"}}, False),
    ({"subject": "bounce", "body": "yahoo"}, False),            # several keys: all must hold
])
def test_operators_and_fields(condition: dict[str, Any], expected: bool) -> None:
    msg = message("Emails bounce", "All my mail to gmail don\u2019t arrive.",
                  cc=("boss@customer.example",), tags=("VIP",),
                  headers={"X-Mailer": "Microsoft Outlook 16.0"},
                  attachments=[("invoice.pdf", "application/pdf"), ("shot.png", "image/png")])
    assert evaluate(condition, msg)[0] is expected


def test_reasons_say_what_matched() -> None:
    msg = message("Emails bounce", "Getting 550 5.7.1 from gmail")
    assert evaluate({"subject": ["refund", "bounce"]}, msg) == (True, "subject contains 'bounce'")
    ok, why = evaluate({"body": {"matches": r"\b5\d\d \d\.\d\.\d\b"}}, msg)
    assert ok and '(found "550 5.7.1")' in why
    assert evaluate({"subject": "refund"}, msg) == (False, "subject does not contain 'refund'")
    assert evaluate({"not": {"subject": "bounce"}}, msg) == (
        False, "excluded: subject contains 'bounce'")
    ok, why = evaluate({"any": [{"subject": "zz"}, {"body": "yy"}]}, msg)
    assert not ok and "none of its 2 conditions matched" in why
    ok, why = evaluate({"all": [{"subject": "bounce"}, {"words": {"less_than": 2}}]}, msg)
    assert not ok and why == "body: 5 words, not fewer than 2"


def test_html_only_bodies_are_reduced_to_text() -> None:
    msg = message("Help", "", html="<p>My <b>emails</b> are <i>bouncing</i></p>")
    assert evaluate({"body": {"contains": "emails are bouncing"}}, msg)[0]


def test_helpscout_mailbox_and_tags() -> None:
    msg = message("x", "y", source="helpscout", mailbox_id=1234, tags=("billing",))
    assert evaluate({"mailbox": 1234, "source": "helpscout", "tags": "billing"}, msg)[0]


@pytest.mark.parametrize(("body", "words"), [
    ("help\n\nSent from my iPhone", 1),
    ("???\n\nAmy", 1),
    ("Not working.\n\nOn Mon, 16 Nov 2026, Support wrote:\n> Thanks for writing in", 2),
    ("Thanks for the fix!\n-- \nAnn Example\nCEO, Example Homes", 4),
    ("", 0),
])
def test_words_count_what_the_requester_wrote(body: str, words: int) -> None:
    assert count_words(body) == words


def test_facts_are_computed_once() -> None:
    facts = Facts(message("Subject", "Body"))
    assert facts.text_lc is facts.text_lc
    assert facts.body_lc == "body"
