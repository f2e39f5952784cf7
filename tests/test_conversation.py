"""bot.conversation at its seam: what a new message on an existing ticket leads to.

Pure: a message, the facts of the ticket, the shipped rules (with test settings), a time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.conversation import (
    Handling,
    Side,
    TicketFacts,
    conversation_message,
    decide_again,
    on_reply,
    our_kind,
)
from bot.model import ActionKind, Message
from bot.rules.reload import load_set
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.vocab import MessageKind, SourceKind
from tests.helpers import REPO

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANN = "ann@customer.example"
OWNER = "billing@example.com"
RULES = REPO / "rules.yaml"


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    text = RULES.read_text()
    path: Path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(text.replace("    billing: billing@example.com\n",
                                 "    billing: billing@example.com\n"
                                 "    triage: triage@example.com\n", 1))
    rs, _ = load_set(path, REPO / "templates")
    return rs


TEAM = Team(frozenset({"support@example.com", OWNER, "oncall@example.com"}),
            frozenset({"example.com"}))


def mail(text: str, *, sender: str = ANN, to: tuple[str, ...] = ("support@example.com",),
         cc: tuple[str, ...] = (), subject: str = "Re: help",
         in_reply_to: tuple[str, ...] = ()) -> Message:
    return Message(source=SourceKind.EMAIL, message_id="<r@x>", from_addr=sender,
                   subject=subject, text=text, to=to, cc=cc, in_reply_to=in_reply_to)


FIRST = mail("help", subject="help")
UNOWNED = TicketFacts(id=7, state="waiting", requester=ANN, owner=None, asks=1,
                      last_to_requester_at=NOW - timedelta(hours=2))
OWNED = replace(UNOWNED, state="forwarded", owner=OWNER, asks=0)
DETAILS = "When I click Save the page goes blank. Every time, Chrome on Windows 11."


def plan(msg: Message, ticket: TicketFacts, ruleset: RuleSet, *, first: Message = FIRST,
         now: datetime = NOW):  # type: ignore[no-untyped-def]
    return on_reply(msg, ticket, ruleset=ruleset, team=TEAM, now=now,
                    conversation=conversation_message(first, [msg]))


def test_details_on_an_unowned_ticket_route_it(ruleset: RuleSet) -> None:
    p = plan(mail(DETAILS + "\n\nOn Mon, Support wrote:\n> Could you tell us more?"),
             UNOWNED, ruleset)
    assert p.handling == Handling.DECIDE_AGAIN and p.side == Side.REQUESTER
    assert p.decision is not None and p.decision.rules == ("bugs",)
    assert [a.kind for a in p.decision.actions] == [ActionKind.FORWARD]
    assert p.decision.owner == "product-support@example.com"


def test_still_vague_is_asked_again_naming_what_is_missing(ruleset: RuleSet) -> None:
    p = plan(mail("still not working"), UNOWNED, ruleset)
    assert p.decision is not None
    (ask,) = p.decision.actions
    assert ask.kind == ActionKind.ASK_INFO and ask.template == "ask_again"


def test_after_max_asks_a_person_takes_it(ruleset: RuleSet) -> None:
    p = plan(mail("still not working"), replace(UNOWNED, asks=2), ruleset)
    assert p.decision is not None
    (forward,) = p.decision.actions
    assert forward.kind == ActionKind.FORWARD and forward.to == ("triage@example.com",)
    assert forward.notice_template == "forwarded-triage"
    assert p.decision.owner == "triage@example.com"


def test_a_known_answer_that_did_not_settle_it_goes_to_a_person(ruleset: RuleSet) -> None:
    first = mail("How do I reset my password?", subject="password")
    ticket = replace(UNOWNED, state="answered", answered_rules=frozenset(
        {"password-reset-how-to"}))
    p = decide_again(conversation_message(first, [mail("thanks, and how do I reset my "
                                                       "password for the app?")]),
                     ticket, ruleset=ruleset, now=NOW)
    assert p.decision is not None
    assert [a.kind for a in p.decision.actions] == [ActionKind.FORWARD]


def test_replies_within_the_quiet_window_wait_for_one_decision(ruleset: RuleSet) -> None:
    ticket = replace(UNOWNED, last_to_requester_at=NOW - timedelta(minutes=3))
    p = plan(mail(DETAILS), ticket, ruleset)
    assert p.handling == Handling.DEFERRED
    assert p.due == NOW + timedelta(minutes=7)


def test_a_reply_on_an_owned_ticket_is_relayed_and_noticed_once_a_day(
        ruleset: RuleSet) -> None:
    first = plan(mail("Here is the invoice number: 4711"), OWNED, ruleset)
    assert first.handling == Handling.RELAY_TO_OWNER and first.notify_requester
    again = plan(mail("and the date"), replace(OWNED, last_update_notice_at=NOW
                                                - timedelta(hours=3)), ruleset)
    assert again.handling == Handling.RELAY_TO_OWNER and not again.notify_requester


def test_the_team_writing_to_the_requester_is_an_update_never_their_reply(
        ruleset: RuleSet) -> None:
    msg = mail("Hi Ann, which browser do you use?", sender="jo@example.com", to=(ANN,),
               cc=("support@example.com",))
    p = plan(msg, OWNED, ruleset)
    assert (p.handling, p.side, p.waits_on_requester) == (Handling.TEAM_UPDATE, Side.TEAM, True)


def test_a_team_update_that_asks_nothing_leaves_the_ball_with_the_team(
        ruleset: RuleSet) -> None:
    msg = mail("Hi Ann, our product team reproduced it; a fix is on its way this week.",
               sender="jo@example.com", to=(ANN,))
    p = plan(msg, OWNED, ruleset)
    assert (p.handling, p.waits_on_requester) == (Handling.TEAM_UPDATE, False)


def test_the_owner_answering_our_forward_reaches_the_requester(ruleset: RuleSet) -> None:
    msg = mail("We've removed the third seat.\n\nOn Mon, Support wrote:\n> [#7] Assigned",
               sender=OWNER, in_reply_to=("<sb.7.forward.0123abcd@example.com>",))
    p = plan(msg, OWNED, ruleset)
    assert p.handling == Handling.OWNER_ANSWER
    assert p.words == "We've removed the third seat."


def test_a_team_reply_to_an_alert_is_only_a_note(ruleset: RuleSet) -> None:
    msg = mail("on it", sender="oncall@example.com",
               in_reply_to=("<sb.7.alert.0123abcd@example.com>",))
    assert plan(msg, OWNED, ruleset).handling == Handling.TEAM_NOTE


def test_a_colleague_of_the_requester_is_on_their_side(ruleset: RuleSet) -> None:
    msg = mail(DETAILS, sender="bob@customer.example", cc=(ANN,))
    assert plan(msg, UNOWNED, ruleset).side == Side.REQUESTER


def test_an_out_of_office_without_robot_headers_is_not_answered(ruleset: RuleSet) -> None:
    msg = mail("Thanks for your message! I am out of the office and will reply soon.")
    assert plan(msg, OWNED, ruleset).handling == Handling.ABSENCE


def test_a_closed_ticket_a_person_owned_is_reopened_for_them(ruleset: RuleSet) -> None:
    p = plan(mail("It broke again"), replace(OWNED, state="closed"), ruleset)
    assert p.handling == Handling.REOPEN


def test_our_kind_reads_our_message_ids_of_this_ticket_only() -> None:
    assert our_kind(("<sb.7.forward.00ff@example.com>",), 7) == MessageKind.FORWARD
    assert our_kind(("<sb.8.forward.00ff@example.com>",), 7) is None
    assert our_kind(("<other@x>",), 7) is None


def test_the_conversation_reads_each_message_on_its_own() -> None:
    first = mail("help\n-- \nAnn, sent from the road", subject="help")
    whole = conversation_message(first, [mail(DETAILS + "\n\n> help")])
    assert "help" in whole.text and DETAILS in whole.text
    assert "sent from the road" not in whole.text and "> help" not in whole.text


def test_whoever_answers_mail_only_the_team_received_is_the_team(ruleset: RuleSet) -> None:
    """An owner that is a list: a member answers the forward from their own address."""
    msg = mail("Fixed in today's release.", sender="pat@lists.example",
               in_reply_to=("<sb.7.forward.0123abcd@example.com>",))
    p = plan(msg, OWNED, ruleset)
    assert (p.side, p.handling) == (Side.TEAM, Handling.OWNER_ANSWER)
    # ... but threading under what the requester received proves nothing
    msg = mail("Me too!", sender="eve@elsewhere.example",
               in_reply_to=("<sb.7.forwarded.0123abcd@example.com>",))
    assert plan(msg, OWNED, ruleset).side == Side.REQUESTER


@pytest.mark.parametrize(("words", "thanks"), [
    ("That worked, thank you so much!", True),
    ("Thanks, it works again now!", True),
    ("Thanks, but it still fails on the second page.", False),
    ("Thanks! Can I also export the notes?", False),
])
def test_a_thank_you_settles_the_ticket_and_a_doubt_does_not(
        ruleset: RuleSet, words: str, thanks: bool) -> None:
    answered = replace(UNOWNED, state="answered", answered_rules=frozenset(
        {"password-reset-how-to"}))
    p = plan(mail(words), answered, ruleset)
    assert (p.handling == Handling.THANKS) is thanks


def test_an_owners_answer_without_threading_headers_is_read_by_its_subject(
        ruleset: RuleSet) -> None:
    msg = mail("We fixed it tonight.", sender=OWNER, subject="Re: [#7] Assigned to you: help")
    assert plan(msg, OWNED, ruleset).handling == Handling.OWNER_ANSWER


def test_the_conversation_the_rules_read_is_bounded() -> None:
    from bot.conversation import CONVERSATION_CHARS
    first = mail("help " * 30_000, subject="help")
    whole = conversation_message(first, [mail("x " * 40_000), mail(DETAILS)])
    assert len(whole.text) <= CONVERSATION_CHARS + 2
    assert whole.text.startswith("help") and whole.text.endswith(DETAILS)
