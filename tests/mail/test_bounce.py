"""read_bounce: who bounced, permanently or not, and which of our messages it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.mail.bounce import Bounce, read_bounce
from bot.mail.parse import parse_message
from bot.model import Message
from tests.mail._fixtures import fixture, fixture_names


def test_rfc3464_permanent_names_the_address_we_wrote_and_our_message() -> None:
    bounce = read_bounce(fixture("bounce/dsn-permanent.eml"))
    # Original-Recipient wins over the alias the remote side expanded it to
    assert bounce == Bounce(recipients=("ann@customer.example",), permanent=True,
                            original_message_ids=("<sb.42.ack.Zx81kq@example.com>",),
                            status="5.1.1")


def test_rfc3464_delayed_is_temporary_with_ids_from_returned_headers() -> None:
    bounce = read_bounce(fixture("bounce/dsn-delayed.eml"))
    assert bounce == Bounce(recipients=("bob@slow.example",), permanent=False,
                            original_message_ids=("<sb.43.checkin.Q2w3e4@example.com>",),
                            status="4.4.1")


def test_failed_after_a_4xx_expiry_is_not_a_dead_address() -> None:
    bounce = read_bounce(fixture("bounce/dsn-expired.eml"))
    assert bounce is not None
    assert (bounce.recipients, bounce.permanent, bounce.status) == (
        ("cara@down.example",), False, "4.4.7")


def test_successful_delivery_report_is_not_a_bounce() -> None:
    assert read_bounce(fixture("bounce/dsn-delivered.eml")) is None


def test_exim_free_text_bounce_uses_x_failed_recipients() -> None:
    bounce = read_bounce(fixture("bounce/exim-freetext.eml"))
    assert bounce == Bounce(recipients=("eve@gone.example",), permanent=True,
                            original_message_ids=("<sb.44.answer.Mn0pQr@example.com>",),
                            status="5.1.1")


def test_qmail_free_text_bounce_reads_the_report_not_the_returned_headers() -> None:
    bounce = read_bounce(fixture("bounce/qmail-freetext.eml"))
    assert bounce == Bounce(recipients=("frank@nowhere.example",), permanent=True,
                            original_message_ids=("<sb.45.ack.Ab12Cd@example.com>",),
                            status="5.1.1")


@pytest.mark.parametrize("folder", ["human", "parse"])
def test_people_and_ordinary_mail_are_not_bounces(folder: str) -> None:
    for name in fixture_names(folder):
        assert read_bounce(fixture(f"{folder}/{name}")) is None, name


def test_out_of_office_reply_is_not_a_bounce() -> None:
    msg = parse_message(b"From: ann@customer.example\nReturn-Path: <>\n"
                        b"Auto-Submitted: auto-replied\nSubject: Automatic reply: hi\n"
                        b"In-Reply-To: <sb.1.ack.x@example.com>\n\nI am away.\n")
    assert read_bounce(msg) is None


def test_help_scout_message_without_raw_bytes() -> None:
    msg = Message(source="helpscout", message_id=None, from_addr="ann@customer.example",
                  text="Hi, my emails bounce with 550 5.1.1 User unknown.")
    assert read_bounce(msg) is None


# Real bounces from ../shared/corpus: (file, permanent, status, first recipient)
CORPUS_BOUNCES = [
    ("sisimai-lhost-postfix-01.eml", True, "5.1.1", "kijitora@example.org"),
    ("sisimai-lhost-sendmail-01.eml", True, "5.1.1", "userunknown@bouncehammer.jp"),
    ("sisimai-lhost-office365-01.eml", True, "5.1.10", "kijitora@example.com"),
    ("sisimai-lhost-exim-03.eml", True, "5.7.0", "kijitora@example.jp"),
    ("flanker-bounce-mailbox-full.eml", True, "5.2.2", "user@aol.com"),
    ("flanker-bounce-gmail-invalid-address.eml", True, "5.1.0",
     "awfawfawfawfawfaw@someserverhere.com"),
    ("flanker-bounce-delayed.eml", False, "4.0.0", "foo@example.com"),
    ("sisimai-lhost-gmail-06.eml", False, "4.2.2", "kijitora@example.jp"),
    ("sisimai-rfc3464-09.eml", False, "4.3.0", "kijitora-nyaaaaaan@example.co.jp"),
    ("sisimai-lhost-exim-38.eml", False, "450", "kijitora@example.co.jp"),
]


@pytest.mark.parametrize("name,permanent,status,recipient", CORPUS_BOUNCES)
def test_corpus_bounces(corpus: Path, name: str, permanent: bool, status: str,
                        recipient: str) -> None:
    bounce = read_bounce(parse_message((corpus / "automated" / name).read_bytes()))
    assert bounce is not None
    assert (bounce.permanent, bounce.status, bounce.recipients[0]) == (
        permanent, status, recipient)


def test_corpus_delay_notices_are_never_permanent(corpus: Path) -> None:
    for path in sorted((corpus / "automated").glob("*.eml")):
        msg = parse_message(path.read_bytes())
        if "delay" in msg.subject.lower():
            bounce = read_bounce(msg)
            assert bounce is None or not bounce.permanent, path.name


def test_corpus_tickets_are_not_bounces(corpus: Path) -> None:
    for path in sorted((corpus / "tickets").glob("*.eml")):
        assert read_bounce(parse_message(path.read_bytes())) is None, path.name
