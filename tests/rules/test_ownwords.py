"""Rules read the requester's own words: quotes, forwards, footers, signatures and blobs are
set aside; a bounce the person pasted or forwarded stays in."""

from __future__ import annotations

import json

import pytest
import structlog

from bot.cli import main
from bot.mail.parse import parse_message
from bot.rules.match import Facts, compile_condition
from bot.rules.ownwords import BASE64, FOOTER, FORWARDED, QUOTED, SIGNATURE, read_own_words
from bot.rules.schema import Condition
from tests.helpers import REPO

UU = "begin 644 report.txt\n" + "M" + "X" * 60 + "\nM spf dkim dmarc " + "Y" * 44 + "\n`\nend"


def kinds(body: str) -> list[str]:
    return [why for why, _ in read_own_words(body).set_aside]


def test_outlook_block_and_its_footer_are_not_the_requesters_words() -> None:
    body = ("Hello, what is this?\n\nFrom: xxx@app.example [mailto:xxx@app.example]\n"
            "Sent: March-09-12 4:22 PM\nTo: Dan\nSubject: The manager has commented\n\n"
            "If you did not sign up to receive emails from us, unsubscribe.\n")
    reading = read_own_words(body)
    assert reading.own == "Hello, what is this?"
    assert kinds(body) == [QUOTED]


def test_gmail_quote_wrapped_over_two_lines() -> None:
    body = ("Thanks!\n\nOn Mon, Apr 2, 2012 at 5:44 PM, Bob <bob@x.example>\nwrote:\n"
            "> Our newsletter bounced\n")
    assert read_own_words(body).own == "Thanks!"
    yahoo = "Sounds great.\n\n--- On Wed, 4/4/12, x@y.example <x@y.example> wrote:\n\nspam folder"
    assert read_own_words(yahoo).own == "Sounds great."


def test_uuencoded_and_base64_blobs_are_set_aside() -> None:
    b64 = "\n".join(["QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9w"] * 4)
    body = f"See attached.\n\n{UU}\n\n{b64}\nThanks"
    reading = read_own_words(body)
    assert "spf" not in reading.own
    assert reading.own.split() == ["See", "attached.", "Thanks"]
    assert kinds(body) == ["uuencoded attachment report.txt", BASE64]


def test_signature_footer_and_forward_are_set_aside() -> None:
    body = ("Please help with my invoice.\nSent from my iPhone\n\n---------- Forwarded "
            "message ---------\nFrom: Billing <b@x.example>\nour SPF record\n")
    assert kinds(body) == [SIGNATURE, FORWARDED]
    group = ("Login fails.\n\n-- \nYou received this message because you are subscribed to "
             "the Google Groups \"Support\" group.\nTo unsubscribe from this group and stop "
             "receiving emails from it, send an email to support+unsubscribe@example.com.\n")
    assert read_own_words(group).own == "Login fails."
    footer = "Hi.\nYou are receiving this email because your emails are not delivered.\n"
    assert kinds(footer) == [FOOTER]


def test_a_pasted_bounce_stays_and_a_forwarded_one_is_kept() -> None:
    inline = "My mail came back with:\n550-5.7.26 This mail is unauthenticated\nWhy?"
    assert read_own_words(inline).own == inline
    forwarded = ("Forward the message.\n\nBegin forwarded message:\n\n> From: Mail Delivery "
                 "Subsystem <MAILER-DAEMON>\n> Subject: Returned mail: see transcript\n"
                 ">    (reason: 550 5.1.1 <kijitora@example.com>... User unknown)\n")
    reading = read_own_words(forwarded)
    assert reading.own == "Forward the message."
    assert "550 5.1.1" in reading.pasted and not reading.set_aside
    quoted = "Look:\n> Final-Recipient: rfc822; ann@example.com\n> Status: 5.1.1\n"
    assert "Status: 5.1.1" in read_own_words(quoted).pasted


def explain(condition: dict[str, object], body: str) -> tuple[bool, str]:
    msg = parse_message(f"From: ann@customer.example\nSubject: Hello\n\n{body}".encode())
    return compile_condition(Condition.model_validate(condition)).test(Facts(msg))


def test_explain_says_which_text_matched_and_why() -> None:
    spf = {"text": {"matches": r"\bspf\b"}}
    assert explain(spf, "Our SPF fails") == (
        True, "text matches '\\bspf\\b' (found \"spf\") (in the requester's own words)")
    hit, why = explain(spf, f"Lost attachment.\n{UU}")
    assert not hit
    assert why == ("text does not match '\\bspf\\b' in the requester's own words (it matches "
                   "'\\bspf\\b' (found \"spf\") only in text they did not write: uuencoded "
                   "attachment)")
    bounce = {"body": {"contains": "550 5.1.1"}}
    assert explain(bounce, "FYI\n\n> From: MAILER-DAEMON@mx.example\n> 550 5.1.1 unknown") == (
        True, "body contains '550 5.1.1' (in a bounce the requester pasted or forwarded)")


def test_a_rule_of_many_conditions_shows_the_miss_that_matched_set_aside_text() -> None:
    rule = {"any": [{"text": "invoice"}, {"text": {"matches": r"\bspf\b"}}]}
    hit, why = explain(rule, f"Lost attachment.\n{UU}")
    assert not hit and "only in text they did not write: uuencoded attachment" in why
    assert explain(rule, "Lost attachment.") == (False, "none of its 2 conditions matched (text)")


def test_quote_headers_in_any_order_and_language_and_bylines() -> None:
    hotmail = ("Hi. I am fine.\n\nDate: Thu, 26 Jun 2014 13:53:45 +0400\nSubject: Test\n"
               "From: abc@example.com\nTo: alex@example.com\n\nour emails bounce\n")
    # Windows Mail's Russian field names: От (From), Отправлено (Sent), Кому (To)
    russian = ("Hi. I am fine.\n\n\u041e\u0442: Alexander L\n\u041e\u0442\u043f\u0440\u0430"
               "\u0432\u043b\u0435\u043d\u043e: 26.06.2014\n\u041a\u043e\u043c\u0443: Alex\n\n"
               "our emails bounce\n")
    byline = ("Hi. I am fine.\n\n26.06.2014, 14:41, \"Alexander L\" <abc@example.com>:\n\n"
              "our emails bounce\n")
    for body in (hotmail, russian, byline):
        assert read_own_words(body).own == "Hi. I am fine.", body
    person = "Date: tomorrow\nSubject: billing\nPlease call me."
    assert read_own_words(person).own == person  # field-like lines, but no From: no quote


def test_explain_json_names_what_was_set_aside(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    eml = REPO / "tests" / "fixtures" / "wider" / "files" / "written-person-notes-uuencoded.eml"
    try:
        assert main(["explain", str(eml), "--json"]) == 0
    finally:
        structlog.reset_defaults()
    out = json.loads(capsys.readouterr().out)
    steps = {s["rule"]: s for s in out["trace"]}
    assert out["priority"] != "critical"
    assert "uuencoded attachment Head.jpg" in steps["own words"]["reason"]
    assert "only in text they did not write: uuencoded attachment" in (
        steps["deliverability"]["reason"])
