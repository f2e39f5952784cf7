"""The ticket's whole conversation (issue 13) on the real mail path: Dovecot in, aiosmtpd out.

People answer as mail clients do (tests/conversation_helpers.py): the requester replies to
the request for details, the owner presses Reply or Reply All on the forward, an agent of
the team writes to the requester with support on Cc. One worker runs several cycles on a
fake clock; after every cycle no ticket may be open with no owner and nothing pending.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import structlog

from bot.cli import main
from bot.tickets import stranded
from tests.conversation_helpers import (
    ANN,
    REQUESTER,
    SUPPORT,
    Story,
    addresses,
    bounce_of,
    compose_new,
    compose_reply,
    text_of,
)
from tests.crash_helpers import KILLS, Kill, run_killed
from tests.imap_helpers import crlf
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
PRODUCT = "product-support@example.com"
ONCALL = "oncall@example.com"
TRIAGE = "triage@example.com"
VAGUE_ID = "<vague@customer.example>"
VAGUE_TEXT = "Help, it is broken again!!"
DETAILS = ("When I click Save the page goes blank, every time, Chrome on Windows 11.")
OWNER_WORDS = ("Thanks for the details, Ann. We found it: a fix for the blank page after Save "
               "goes out tonight, and clearing the browser cache works around it until then.")


def vague(subject: str = "Editor broken", body: str = VAGUE_TEXT) -> bytes:
    return compose_new(sender=ANN, to=f"Acme Support <{SUPPORT}>", subject=subject,
                       body=body, message_id=VAGUE_ID, when=T0)


def asked(tmp: Path, mailbox: Mailbox, smtp: SmtpServer, *, first: bytes | None = None,
          settings: dict[str, object] | None = None, state: Path | str | None = None) -> Story:
    """A vague ticket at T0, asked for details (``state``: where the store lives)."""
    story = Story(tmp, mailbox, smtp, T0, settings=settings,
                  SUPPORTBOT_STATE=str(state or tmp / "state.db"))
    story.run((timedelta(0), first or vague()))
    assert story.kinds() == ["ask_info"]
    return story


def cli(story: Story, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        *argv: str) -> list[str]:
    """`supportbot ARGV` on the story's state; the lines it printed."""
    for key, value in story.env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    try:
        assert main(list(argv)) == 0
    finally:  # the command bound structlog to this test's captured stderr
        structlog.reset_defaults()
    return capsys.readouterr().out.splitlines()


def ann_replies(story: Story, body: str, n: int, *, to: str = "ask_info") -> bytes:
    """Ann presses Reply on the bot's last message of kind ``to``."""
    return compose_reply(story.last(to), sender=ANN, body=body,
                         message_id=f"<ann.{n}@customer.example>", when=story.now)


def forwarded_to_product(tmp: Path, mailbox: Mailbox, smtp: SmtpServer,
                         state: Path | str | None = None) -> Story:
    """Story 1: vague -> ask -> the details -> forward to the product team + notice."""
    story = asked(tmp, mailbox, smtp, state=state)
    story.clock.advance(timedelta(hours=1))
    story.run((timedelta(0), ann_replies(story, DETAILS, 1)))
    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    return story


def test_details_after_the_ask_forward_the_whole_conversation_and_name_the_owner(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str) -> None:
    story = forwarded_to_product(tmp_path, mailbox, smtp_server, state)

    forward, notice = story.sent("forward")[-1], story.sent("forwarded")[-1]
    assert addresses(forward, "To") == [PRODUCT]
    whole = text_of(forward)
    assert VAGUE_TEXT in whole and "the page goes blank" in whole  # the whole conversation
    assert addresses(notice, "To") == [REQUESTER]
    assert "product" in text_of(notice)  # names who has it
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None
        assert (ticket.state, ticket.owner) == ("forwarded", PRODUCT)
    story.assert_threads_well()



def test_details_that_turn_out_critical_page_on_call(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server)
    story.run((timedelta(hours=1), ann_replies(
        story, "Since this morning none of my emails to clients are going out, they bounce "
        "with 550 5.7.1.", 1)))
    assert story.kinds() == ["ask_info", "forward", "forwarded", "alert"]
    assert addresses(story.last("forward"), "To") == ["deliverability@example.com"]
    assert addresses(story.last("alert"), "To") == [ONCALL]
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.priority == "critical"

def test_still_vague_twice_goes_to_triage_after_two_asks(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server, first=vague("help", "help"),
                  settings={"owners": {"triage": TRIAGE}})
    first_ask = text_of(story.last("ask_info"))

    story.clock.advance(timedelta(hours=1))
    story.run((timedelta(0), ann_replies(story, "still not working", 1)))
    assert story.kinds() == ["ask_info", "ask_info"]
    again = text_of(story.last("ask_info"))
    assert again != first_ask
    assert "browser" in again  # what is still missing, by name

    story.clock.advance(timedelta(hours=1))
    story.run((timedelta(0), ann_replies(story, "Still not working. Please help", 2)))
    assert story.kinds() == ["ask_info", "ask_info", "forward", "forwarded"]
    assert addresses(story.last("forward"), "To") == [TRIAGE]
    assert addresses(story.last("forwarded"), "To") == [REQUESTER]
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and (ticket.state, ticket.owner) == ("forwarded", TRIAGE)

    story.wait(timedelta(days=3))
    assert story.kinds().count("ask_info") == 2  # never a third
    story.assert_threads_well()
    story.assert_reads_well()


def test_without_a_triage_owner_on_call_takes_the_still_vague_ticket(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server, first=vague("help", "help"))
    for n, words in enumerate(("still not working", "Still not working. Please help"), 1):
        story.clock.advance(timedelta(hours=1))
        story.run((timedelta(0), ann_replies(story, words, n)))
    assert story.kinds() == ["ask_info", "ask_info", "forward", "forwarded"]
    assert addresses(story.last("forward"), "To") == [ONCALL]
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.owner == ONCALL



def test_max_asks_and_ack_quiet_are_settings(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """followup.max_asks: 1 hands the first still-vague reply to a person; followup.ack_quiet:
    30m holds a reply 15 minutes after the ask until the half hour is over."""
    story = asked(tmp_path, mailbox, smtp_server, first=vague("help", "help"),
                  settings={"followup": {"max_asks": 1, "ack_quiet": "30m"}})
    story.run((timedelta(minutes=15), ann_replies(story, "still not working", 1)),
              (timedelta(minutes=14), None))
    assert story.kinds() == ["ask_info"]
    story.run((timedelta(minutes=1), None))
    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    assert addresses(story.last("forward"), "To") == [ONCALL]


def test_thanks_after_a_known_answer_is_not_escalated(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = Story(tmp_path, mailbox, smtp_server, T0)
    story.run((timedelta(0), compose_new(
        sender=ANN, to=SUPPORT, subject="Password", body="Hi, how do I reset my password?",
        message_id="<pw@customer.example>", when=T0)))
    assert story.kinds() == ["answer"]
    story.run((timedelta(hours=1), ann_replies(story, "That worked, thank you so much!", 1,
                                               to="answer")))
    story.wait(timedelta(days=3))
    assert "forward" not in story.kinds()
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.owner is None


def test_thanks_after_the_closure_keeps_it_closed(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server)
    story.wait(timedelta(hours=50))
    assert story.kinds() == ["ask_info", "check_in", "closure"]
    story.run((timedelta(hours=2), ann_replies(story, "Thanks, it works again now!", 1,
                                               to="closure")))
    story.wait(timedelta(days=3))
    assert story.kinds()[3:].count("ask_info") == 0
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.state == "closed"


@pytest.mark.parametrize(("words", "owner"), [
    (f"Thanks for the quick reply. {DETAILS}", PRODUCT),
    ("Thank you! It happens when I click Save: the page goes blank, in Chrome.", PRODUCT),
    ("Thank you. My invoice shows three seats, I only have two", "billing@example.com"),
    ("Thanks for getting back to me. My emails are bouncing with 550 errors since this "
     "morning", "deliverability@example.com"),
], ids=["thanks-first", "thank-you", "billing", "critical"])
def test_thanks_with_the_details_is_not_a_thank_you(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, words: str,
        owner: str) -> None:
    story = asked(tmp_path, mailbox, smtp_server)
    story.run((timedelta(hours=1), ann_replies(story, words, 1)))
    assert story.kinds()[1:3] == ["forward", "forwarded"]
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and (ticket.state, ticket.owner) == ("forwarded", owner)

@pytest.mark.parametrize("reply_all", [False, True], ids=["reply", "reply-all"])
def test_the_owners_answer_reaches_the_requester(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str,
        reply_all: bool, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    story = forwarded_to_product(tmp_path, mailbox, smtp_server, state)
    forward = story.last("forward")
    assert addresses(forward, "Reply-To") == [SUPPORT]
    details_id = story.timeline[-3][1]  # Ann's reply, before the forward and the notice
    assert details_id == "<ann.1@customer.example>"

    story.clock.advance(timedelta(hours=2))
    answer = compose_reply(forward, sender=f"Pat Product <{PRODUCT}>", body=OWNER_WORDS,
                           message_id="<pat.1@example.com>", when=story.now,
                           reply_all=reply_all)
    story.run((timedelta(0), answer))
    answered_at = story.now

    assert story.kinds() == ["ask_info", "forward", "forwarded", "owner_reply"]
    reply = story.last("owner_reply")
    assert addresses(reply, "To") == [REQUESTER]
    assert reply["In-Reply-To"] == details_id
    text = text_of(reply)
    assert "clearing the browser cache works around it" in text
    assert "Assigned to you" not in text and "> " not in text  # not the quoted forward
    with story.store() as store:
        assert any(PRODUCT in a.detail for a in store.activity(1) if a.at >= answered_at)
    assert any(PRODUCT in line and "owner" in line for line in cli(story, capsys, monkeypatch,
                                                                   "log", "1"))

    story.wait(timedelta(hours=23, minutes=58), every=timedelta(hours=4))
    assert "check_in" not in story.kinds()
    story.run((timedelta(minutes=3), None))
    assert story.kinds()[-1] == "check_in"
    assert addresses(story.last("check_in"), "To") == [REQUESTER]
    story.wait(timedelta(days=3))
    assert "assigned_reminder" not in story.kinds()
    assert story.kinds().count("owner_reply") == 1
    story.assert_threads_well()
    story.assert_reads_well()




def test_an_owner_who_adds_the_requester_gets_no_relay_on_top(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Pat presses Reply on the forward and adds Ann herself: Ann has the answer already, so
    the bot relays nothing (no second copy), and the answer still counts as the update."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    answer = compose_reply(story.last("forward"), sender=f"Pat Product <{PRODUCT}>",
                           body=OWNER_WORDS, message_id="<pat.1@example.com>", when=story.now,
                           extra_cc=[ANN])
    story.run((timedelta(hours=2), answer))
    story.wait(timedelta(hours=47))  # past the forward's own reminder (48 h after it)

    assert "owner_reply" not in story.kinds()
    assert "assigned_reminder" not in story.kinds()
    with story.store() as store:
        assert any(PRODUCT in a.detail and a.action == "team reply"
                   for a in store.activity(1))

def test_an_outlook_style_answer_reaches_the_requester_without_the_forward(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Outlook top-posts above a From/Sent/To/Subject block and quotes nothing with "> "."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    forward = story.last("forward")
    quoted = (f"From: Acme Support <{SUPPORT}>\nSent: Monday, November 23, 2026 10:00 AM\n"
              f"To: Product Support <{PRODUCT}>\nSubject: {forward['Subject']}\n\n"
              + text_of(forward))
    answer = compose_new(
        sender=f"Pat Product <{PRODUCT}>", to=SUPPORT, subject=f"RE: {forward['Subject']}",
        body=f"{OWNER_WORDS}\n\nPat\n\n{'_' * 32}\n{quoted}", message_id="<pat.1@example.com>",
        when=story.now, in_reply_to=str(forward["Message-ID"]))
    story.run((timedelta(hours=2), answer))

    assert story.kinds()[3:] == ["owner_reply"]
    text = text_of(story.last("owner_reply"))
    assert "clearing the browser cache works around it" in text
    assert "Priority:" not in text and "Sent: Monday" not in text and VAGUE_TEXT not in text

def test_a_list_members_answer_to_the_forward_reaches_the_requester(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Owners are often lists: the forward goes to product-support@, Pat answers it from her
    own address. Only the team ever received the forward, so her answer is the team's."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    answer = compose_reply(story.last("forward"), sender="Pat Product <pat@example.com>",
                           body=OWNER_WORDS, message_id="<pat.1@example.com>", when=story.now)
    story.run((timedelta(hours=2), answer))

    assert story.kinds()[3:] == ["owner_reply"]
    assert "clearing the browser cache" in text_of(story.last("owner_reply"))
    with story.store() as store:
        assert not [a for a in store.activity(1) if a.action == "requester replied"
                    and a.actor == "pat@example.com"]


def test_the_owners_attachment_reaches_the_requester(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    raw = compose_reply(story.last("forward"), sender=f"Pat Product <{PRODUCT}>",
                        body="We fixed it; the corrected invoice is attached.",
                        message_id="<pat.1@example.com>", when=story.now)
    answer = message_from_bytes(raw, policy=policy.default)
    assert isinstance(answer, EmailMessage)
    answer.add_attachment(b"%PDF-1.4 a corrected invoice", maintype="application",
                          subtype="pdf", filename="invoice-1234.pdf")
    story.run((timedelta(hours=2), crlf(answer.as_bytes())))

    reply = story.last("owner_reply")
    assert [a.get_filename() for a in reply.iter_attachments()] == ["invoice-1234.pdf"]


def test_an_addition_right_after_the_notice_gets_no_second_message(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """The notice said "just reply, it will reach them": an addition two minutes later goes
    to the owner, and Ann hears nothing more in that quiet window."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    story.run((timedelta(minutes=2), ann_replies(story, "Also, Firefox does the same.", 2,
                                                 to="forwarded")),
              (timedelta(minutes=10), None))
    assert story.kinds()[3:] == ["relay"]


def test_the_owners_answer_without_threading_headers_still_reaches_the_requester(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Some clients drop In-Reply-To and References; the subject keeps the ticket's tag."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    answer = compose_new(sender=f"Pat Product <{PRODUCT}>", to=SUPPORT,
                         subject=f"Re: {story.last('forward')['Subject']}", body=OWNER_WORDS,
                         message_id="<pat.1@example.com>", when=story.now)
    story.run((timedelta(hours=2), answer))

    assert story.kinds()[3:] == ["owner_reply"]
    with story.store() as store:
        assert store.tickets_by_state() == {"waiting": 1}

def test_an_agent_of_the_team_domain_writing_to_the_requester_is_not_the_requester(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = Story(tmp_path, mailbox, smtp_server, T0,
                  settings={"team": {"domains": ["example.com"]}})
    question = compose_new(
        sender=ANN, to=f"Acme Support <{SUPPORT}>", subject="Exporting contacts",
        body="How do I export my contacts to a CSV file? I looked in the settings page but "
             "could not find a button for it.", message_id="<export@customer.example>",
        when=T0)
    story.run((timedelta(0), question))
    assert story.kinds() == ["acknowledge"]

    story.clock.advance(timedelta(hours=2))
    agent = compose_new(
        sender="Jo Agent <jo@example.com>", to=ANN, cc=f"Acme Support <{SUPPORT}>",
        subject="Re: Exporting contacts", message_id="<jo.1@example.com>", when=story.now,
        in_reply_to="<export@customer.example>",
        body="Hi Ann, it is under Contacts > More > Export. Does that find it for you?")
    story.run((timedelta(0), agent))
    agent_at = story.now

    assert story.kinds() == ["acknowledge"]  # nothing to Ann, nothing relayed as Ann's
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.state == "waiting"
        assert ticket.requester == REQUESTER
        assert any("jo@example.com" in (a.detail + a.actor) for a in store.activity(1))

    story.wait(timedelta(hours=23, minutes=58), every=timedelta(hours=4))
    assert story.kinds() == ["acknowledge"]
    story.run((timedelta(minutes=3), None))
    assert story.kinds() == ["acknowledge", "check_in"]
    assert addresses(story.last("check_in"), "To") == [REQUESTER]
    assert story.now - agent_at < timedelta(hours=24, minutes=5)
    story.assert_threads_well()


def test_a_colleague_of_the_requester_on_cc_is_the_requesters_side(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server,
                  settings={"team": {"domains": ["example.com"]}})
    story.clock.advance(timedelta(hours=1))
    bob = compose_reply(story.last("ask_info"), sender="Bob Colleague <bob@customer.example>",
                        body=DETAILS, message_id="<bob.1@customer.example>", when=story.now,
                        extra_cc=[ANN])
    story.run((timedelta(0), bob))

    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    assert addresses(story.last("forwarded"), "To") == [REQUESTER]
    with story.store() as store:
        assert any(a.action == "requester replied" and a.actor == "bob@customer.example"
                   for a in store.activity(1))
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.owner == PRODUCT




def test_a_relay_names_its_real_sender(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Bob, Ann's colleague on Cc, adds to a forwarded ticket: the owner reads that Bob wrote
    (and who the requester is), and Ann is the one told it arrived."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    bob = compose_reply(story.last("forwarded"), sender="Bob Colleague <bob@customer.example>",
                        body="Same here since this morning, in Safari on a Mac.",
                        message_id="<bob.1@customer.example>", when=story.now, extra_cc=[ANN])
    story.run((timedelta(hours=1), bob))

    assert story.kinds()[3:] == ["relay", "update_relayed"]
    relay = text_of(story.last("relay"))
    assert "bob@customer.example" in relay and REQUESTER in relay
    assert "Safari on a Mac" in relay
    assert addresses(story.last("update_relayed"), "To") == [REQUESTER]
    with story.store() as store:
        assert any(a.actor == "bob@customer.example" for a in store.activity(1))

def test_the_requesters_replies_reach_the_owner_and_the_owners_answers_reach_her(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Back and forth on a forwarded ticket: each of Ann's replies is relayed to the owner
    (she hears once a day at most that it arrived), each answer of the owner to a relay
    reaches her."""
    story = forwarded_to_product(tmp_path, mailbox, smtp_server)
    story.run((timedelta(hours=1), ann_replies(story, "It started on Monday.", 2,
                                               to="forwarded")),
              (timedelta(hours=1), ann_replies(story, "Firefox does the same.", 3,
                                               to="forwarded")))
    assert story.kinds()[3:] == ["relay", "update_relayed", "relay"]
    relays = story.sent("relay")
    assert all(addresses(r, "To") == [PRODUCT] for r in relays)
    assert "Firefox does the same." in text_of(relays[-1])
    assert addresses(story.last("update_relayed"), "To") == [REQUESTER]

    answer = compose_reply(relays[-1], sender=f"Pat Product <{PRODUCT}>", body=OWNER_WORDS,
                           message_id="<pat.2@example.com>", when=story.now)
    story.run((timedelta(minutes=30), answer))
    assert story.kinds()[-1] == "owner_reply"
    assert story.last("owner_reply")["In-Reply-To"] == "<ann.3@customer.example>"

    story.run((timedelta(hours=25), ann_replies(story, "Clearing the cache helped with the "
                                                "editor; the export button is still grey.", 4,
                                                to="owner_reply")))
    assert story.kinds()[-2:] == ["relay", "update_relayed"]  # a day later: told again
    assert story.kinds().count("owner_reply") == 1
    story.assert_threads_well()
    story.assert_reads_well()


@pytest.mark.parametrize("team", [{"domains": ["example.com"]},
                                  {"addresses": ["jo@example.com"]}], ids=["domain", "listed"])
@pytest.mark.parametrize("asks", [False, True], ids=["update", "question"])
def test_an_agent_writing_to_the_requester_on_a_forwarded_ticket_stops_the_reminder(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, asks: bool,
        team: dict[str, list[str]]) -> None:
    """The 48 h reminder asks the owner to update the requester; an agent who did is that
    update (the agent's domain is the team's, or the agent is listed). A question leaves the
    ball with the requester (check-in, no reminder at all); news leaves it with the team."""
    story = Story(tmp_path, mailbox, smtp_server, T0, settings={"team": team})
    story.run((timedelta(0), vague()))
    story.run((timedelta(hours=1), ann_replies(story, DETAILS, 1)))
    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    notice = story.last("forwarded")
    body = "Hi Ann, our product team reproduced it; a fix is on its way this week."
    agent = compose_new(
        sender="Jo Agent <jo@example.com>", to=ANN, cc=f"Acme Support <{SUPPORT}>",
        subject=f"Re: {notice['Subject']}", message_id="<jo.2@example.com>", when=story.now,
        in_reply_to=str(notice["Message-ID"]),
        body=body + (" Does clearing the browser cache help meanwhile?" if asks else ""))
    story.run((timedelta(hours=3), agent))
    # past the reminder the forward scheduled (48 h after it), short of 48 h after Jo
    story.wait(timedelta(hours=47))

    assert "assigned_reminder" not in story.kinds()
    assert "relay" not in story.kinds()  # Jo is not the requester: nothing relayed as hers
    assert story.kinds()[3:] == (["check_in"] if asks else [])
    with story.store() as store:
        assert any("jo@example.com" in a.detail for a in store.activity(1))
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.owner == PRODUCT
        assert ticket.state == ("waiting" if asks else "forwarded")
    if asks:
        story.wait(timedelta(days=2))
        assert "assigned_reminder" not in story.kinds()



def test_a_bounced_ask_leaves_the_ticket_with_someone(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server)
    story.run((timedelta(minutes=5), bounce_of(story.last("ask_info"), REQUESTER)))
    assert "undeliverable" in story.kinds()
    story.wait(timedelta(days=2))  # the invariant, after every cycle
    assert len(story.to_requester()) == 1  # nothing more to an address that bounced

def test_three_quick_replies_get_one_message(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    story = asked(tmp_path, mailbox, smtp_server)
    parts = ("It's the editor.", "When I click Save the page goes blank.",
             "Every time, Chrome on Windows 11.")
    story.run(*[(timedelta(minutes=1), ann_replies(story, words, n))
                for n, words in enumerate(parts, 1)])
    story.run((timedelta(minutes=3), None), (timedelta(minutes=4), None))  # T0 + 10 min
    assert story.now == T0 + timedelta(minutes=10)

    assert len(story.to_requester()) == 2  # the ask, then one message for the three
    story.wait(timedelta(hours=1), every=timedelta(minutes=10))
    assert len(story.to_requester()) == 2
    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    whole = text_of(story.last("forward"))
    assert all(p in whole for p in ("the editor", "the page goes blank", "Chrome on Windows"))
    story.assert_threads_well()


def test_status_lists_a_stranded_ticket(tmp_path: Path, mailbox: Mailbox,
                                        smtp_server: SmtpServer,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariant's other half: when something does strand a ticket, status says so."""
    story = asked(tmp_path, mailbox, smtp_server)
    with story.store() as store, store.transaction():
        store.cancel_timers(1, [t.kind for t in store.pending_timers(1)], story.now)
    with story.store() as store:
        assert stranded(store) == [1]

    status = json.loads("\n".join(cli(story, capsys, monkeypatch, "status", "--json")))
    assert status["stranded"] == [1]
    assert "#1" in next(line for line in cli(story, capsys, monkeypatch, "status")
                        if "stranded" in line.lower())

def crash_through(story: Story, advance: timedelta, raw: bytes | None = None,
                  kills: tuple[Kill, ...] = ("before-send", "after-send")) -> None:
    """One step of the story in worker processes SIGKILLed at each point of the cycle in
    turn: before the planned messages go out, right after some went out (and, with "end",
    after the whole cycle). The next step's first kill comes before its own sends, so every
    step is also cut between cycles."""
    story.clock.advance(advance)
    if raw is not None:
        story.deliver(raw, team=story.is_team(raw))
    for kill in kills:
        status = run_killed(story.env, story.now, kill, story.tmp)
        assert status == -signal.SIGKILL, (
            f"the {kill} kill did not happen (exit {status}):\n"
            + (story.tmp / "crash-child.log").read_text()[-3000:])
        story.note_sent()
        with story.store() as store:
            story.assert_nobody_stranded(store)


def test_sigkills_between_the_steps_lose_no_decision_and_repeat_no_message(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Stories 1 and 3, each step cut by SIGKILL before, during and after its sends."""
    story = Story(tmp_path, mailbox, smtp_server, T0)
    crash_through(story, timedelta(0), vague())
    assert story.kinds() == ["ask_info"]
    crash_through(story, timedelta(hours=1), ann_replies(story, DETAILS, 1))
    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    crash_through(story, timedelta(hours=2), compose_reply(
        story.last("forward"), sender=f"Pat Product <{PRODUCT}>", body=OWNER_WORDS,
        message_id="<pat.1@example.com>", when=story.now + timedelta(hours=2)))
    assert story.kinds() == ["ask_info", "forward", "forwarded", "owner_reply"]
    crash_through(story, timedelta(hours=24, minutes=1), kills=KILLS)

    assert story.kinds() == ["ask_info", "forward", "forwarded", "owner_reply", "check_in"]
    per_id = Counter(str(m["Message-ID"]) for m in story.sent())
    assert set(per_id.values()) == {1}, per_id
    with story.store() as store:
        ticket = store.get_ticket(1)
        assert ticket is not None and ticket.owner == PRODUCT
        assert store.outbox_counts() == {"sent": 5}
    story.assert_threads_well()



def test_sigkills_around_the_quiet_window_give_one_decision(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """Story 5 with SIGKILLs: the replies wait for the quiet window in the store (a worker
    killed after each keeps that), and the one decision when it ends survives kills too."""
    story = asked(tmp_path, mailbox, smtp_server)  # the ask's own kills: the test above
    parts = ("It's the editor.", "When I click Save the page goes blank.",
             "Every time, Chrome on Windows 11.")
    for n, words in enumerate(parts, 1):
        crash_through(story, timedelta(minutes=1), ann_replies(story, words, n), kills=("end",))
    assert story.kinds() == ["ask_info"]
    crash_through(story, timedelta(minutes=7), kills=KILLS)

    assert story.kinds() == ["ask_info", "forward", "forwarded"]
    assert set(Counter(str(m["Message-ID"]) for m in story.sent()).values()) == {1}
    assert all(p in text_of(story.last("forward")) for p in ("the editor", "Chrome on Windows"))
