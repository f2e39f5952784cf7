"""What a new message on an existing ticket leads to: the ticket's whole conversation.

The first message of a ticket is decided by the rules; this module decides on everything
after it, purely (the caller gathers the facts, ``bot.lifecycle`` carries the plan out,
``explain`` prints it), so the worker and ``explain`` cannot disagree:

- **the team's side** (``bot.rules.team``): a message to the requester is a visible update
  (when it asks something, the ball is with the requester: the check-in schedule starts);
  an owner's answer to our forward, written to the support address, is relayed to the
  requester and, as an answer, starts the check-in schedule; anything else the team writes
  to us is a note in the log. Never the requester's reply.
- **the requester's side** (the requester, or a colleague from their domain):
  on a closed ticket a person owned, reopen it for them; on a ticket a person owns, relay
  it to the owner and tell
  the requester (once a day at most) that it reached them; on a ticket nobody owns yet,
  **decide again** with the same rules on the conversation so far, so new details route
  the ticket; still too vague: ask again, at most ``followup.max_asks`` requests in all,
  then hand it to a person (``owners.triage``, else on-call).
- quick successive replies get one message: within ``followup.ack_quiet`` of the bot's
  last message to the requester, the decision waits for the window to end and then looks
  at everything that arrived meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.mail.addresses import reply_recipient
from bot.model import Action, Decision, Message, TraceStep
from bot.rules.decide import decide
from bot.rules.ownwords import read_own_words
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.vocab import (
    CONVERSATION_TEMPLATES,
    ActionKind,
    MessageKind,
    Priority,
    TicketState,
    spec,
)

ASK_AGAIN, ACK_UPDATE, TRIAGE_NOTICE = CONVERSATION_TEMPLATES
UPDATE_NOTICE_EVERY = timedelta(hours=24)  # "your update reached the owner", at most
CONVERSATION_CHARS = 100_000  # what the rules read of a conversation (their own budget)
# An out-of-office reply whose robot headers a relay stripped still reads like one; only
# short replies count, so a person who mentions their holiday in a real answer is heard.
_ABSENT = re.compile(
    r"\b(out of (the )?office|on (vacation|holiday|annual leave|parental leave|leave)\b|"
    r"away (from (my|the) (desk|office)|until|till)\b|limited access to (my )?e-?mail|"
    r"i am (currently )?(away|out)\b|i'?m (currently )?(away|out of)\b|"
    r"abwesend|absent du bureau|fuera de la oficina|automatic reply|auto-?reply)", re.I)
ABSENCE_MAX_WORDS = 80
# "That worked, thank you!": the commonest reply there is. Settles a ticket that waited on
# the requester; never a reason to ask again or escalate. A doubt in it ("thanks, but it
# still fails") or a question makes it an ordinary reply.
_THANKS = re.compile(r"\b(thanks?|thank you|thx|ty|cheers|much appreciated|appreciate it|"
                     r"(that|it|this) (worked|works|helped|did it|fixed it)|works (again|now|fine|"
                     r"great|perfectly)|solved|sorted|resolved|all good|perfect|brilliant|"
                     r"awesome|great, thanks|got it)\b", re.I)
_DOUBT = re.compile(r"\b(not|never|still|but|however|problem|issue|error|broken|fail\w*|"
                    r"wrong|again(?! now| too)|doesn.?t|don.?t|didn.?t|isn.?t|won.?t|can.?t)\b",
                    re.I)
THANKS_MAX_WORDS = 40
_OURS = re.compile(r"<sb\.(\d+)\.([a-z0-9_-]+)\.[0-9a-f]+@", re.ASCII)


class Handling(StrEnum):
    DECIDE_AGAIN = "decide again"
    DEFERRED = "deferred"
    RELAY_TO_OWNER = "relay to owner"
    REOPEN = "reopen"
    TEAM_UPDATE = "team update"
    OWNER_ANSWER = "owner answer"
    TEAM_NOTE = "team note"
    ABSENCE = "absence notice"
    THANKS = "thanks"


class Side(StrEnum):
    REQUESTER = "requester"
    TEAM = "team"


@dataclass(frozen=True)
class TicketFacts:
    """What this module may know about the ticket (from the store, by the caller)."""

    id: int
    state: str
    requester: str
    owner: str | None
    asks: int = 0  # requests for details planned so far
    answered_rules: frozenset[str] = frozenset()  # rules whose known answer went out
    last_to_requester_at: datetime | None = None  # the bot's last message to them
    last_update_notice_at: datetime | None = None


@dataclass(frozen=True)
class ReplyPlan:
    handling: Handling
    side: Side
    reason: str
    sender: str
    decision: Decision | None = None  # DECIDE_AGAIN: what to do now
    notify_requester: bool = False  # RELAY_TO_OWNER: tell them it reached the owner
    waits_on_requester: bool = False  # a team message to the requester: check-ins start
    due: datetime | None = None  # DEFERRED: when the decision is made
    words: str = ""  # the sender's own words (relays quote these, not the quoted thread)
    relay: bool = True  # OWNER_ANSWER: False when they wrote to the requester themselves;
    # THANKS: True when an owner should see it

    @property
    def trace(self) -> tuple[TraceStep, ...]:
        head = TraceStep(f"reply on ticket ({self.side})", True,
                         f"{self.handling}: {self.reason}")
        return (head, *(self.decision.trace if self.decision else ()))


def our_kind(message_ids: tuple[str, ...], ticket_id: int) -> MessageKind | None:
    """The kind of our own message (of this ticket) that a reply answers, if any."""
    for mid in reversed(message_ids):
        m = _OURS.match(mid)
        if m and int(m.group(1)) == ticket_id:
            try:
                return MessageKind(m.group(2))
            except ValueError:
                return None
    return None


def answers_team_mail(msg: Message, ticket_id: int) -> bool:
    """Whether ``msg`` threads under mail of ours that only the team received (a forward,
    relay, reminder or alert of this ticket): the join rule and ``side_of`` both ask."""
    answers = our_kind((*msg.references, *msg.in_reply_to), ticket_id)
    return answers is not None and not spec(answers).to_requester


def side_of(msg: Message, ticket: TicketFacts, team: Team) -> Side:
    """The team's side: a team address, or anyone answering mail only the team received (a
    forward to an owner that is a list or alias is answered from a member's own address;
    our Message-IDs carry 64 random bits, so only its recipients can thread under one)."""
    sender = msg.from_addr.lower()
    requester = ticket.requester.lower()
    if sender == requester or (reply_recipient(msg) or "").lower() == requester:
        return Side.REQUESTER
    if team.is_team(sender):
        return Side.TEAM
    if answers_team_mail(msg, ticket.id):
        return Side.TEAM
    return Side.REQUESTER  # the requester's colleagues, and anyone else they involve


def own_words(text: str) -> str:
    """What the person wrote in this message (``bot.rules.ownwords``: quotes, signatures
    and footers set aside, a pasted bounce kept)."""
    return read_own_words(text).text


def conversation_message(first: Message, replies: list[Message]) -> Message:
    """The conversation so far as one message for the rules: each message's own words
    (read one by one, so one message's signature never hides the next), oldest first."""
    parts = [own_words(m.text[:CONVERSATION_CHARS]) for m in (first, *replies)]
    text = "\n\n".join(p for p in parts if p)
    if len(text) > CONVERSATION_CHARS:  # the opening words and the newest, within budget
        half = CONVERSATION_CHARS // 2
        text = f"{text[:half]}\n\n{text[-half:]}"
    return replace(first, text=text)


def on_reply(msg: Message, ticket: TicketFacts, *, ruleset: RuleSet, team: Team,
             now: datetime, conversation: Message | None) -> ReplyPlan:
    """What the bot does with ``msg``, a new message on ``ticket``; ``conversation`` is the
    whole conversation including ``msg`` (see ``conversation_message``)."""
    side = side_of(msg, ticket, team)
    sender = msg.from_addr.lower()
    words = own_words(msg.text)
    if side == Side.TEAM:
        return _team_message(msg, ticket, sender, words)
    if len(words.split()) <= ABSENCE_MAX_WORDS and (_ABSENT.search(words)
                                                     or _ABSENT.search(msg.subject)):
        return ReplyPlan(Handling.ABSENCE, side, "reads as an out-of-office reply (its robot "
                         "headers are missing): not answered; follow-ups stay as they are",
                         sender, words=words)
    if is_thanks(words) and not _routes(msg, words, ruleset, now):
        owner = ticket.owner if ticket.state != TicketState.CLOSED else None
        return ReplyPlan(Handling.THANKS, side, "a thank-you that asks nothing new: the "
                         "ticket is settled (closed when it waited on the requester)"
                         + (f"; {owner} sees it" if owner else ""), sender, words=words,
                         relay=owner is not None)
    if ticket.state == TicketState.CLOSED and ticket.owner:
        return ReplyPlan(Handling.REOPEN, side, "the requester wrote again on a closed ticket: "
                         f"reopened, and the reply goes to {ticket.owner}", sender, words=words)
    if ticket.owner:
        # told once a day at most, and never right after the bot wrote to them (the
        # forward's notice already said that replies reach the owner)
        quiet = ruleset.settings.ack_quiet
        notify = ((ticket.last_update_notice_at is None
                   or now - ticket.last_update_notice_at >= UPDATE_NOTICE_EVERY)
                  and (ticket.last_to_requester_at is None
                       or now >= ticket.last_to_requester_at + quiet))
        return ReplyPlan(Handling.RELAY_TO_OWNER, side,
                         f"{ticket.owner} owns the ticket; the reply goes to them", sender,
                         notify_requester=notify, words=words)
    quiet = ruleset.settings.ack_quiet
    if ticket.last_to_requester_at is not None and now < ticket.last_to_requester_at + quiet:
        due = ticket.last_to_requester_at + quiet
        return ReplyPlan(Handling.DEFERRED, side,
                         f"the bot wrote to the requester less than {_minutes(quiet)} ago: "
                         "decided again when that window ends, on every reply by then",
                         sender, due=due, words=words)
    return decide_again(conversation or msg, ticket, ruleset=ruleset, now=now, sender=sender,
                        words=words)


def decide_again(conversation: Message, ticket: TicketFacts, *, ruleset: RuleSet,
                 now: datetime, sender: str = "", words: str = "") -> ReplyPlan:
    """The rules on the conversation so far, then the limits of asking again."""
    decision = decide(conversation, None, now, ruleset)
    kinds = {a.kind for a in decision.actions}
    reason = "nobody owns the ticket yet: the rules decided again on the conversation"
    answered = next((a for a in decision.actions if a.kind == ActionKind.ANSWER), None)
    if ActionKind.ASK_INFO in kinds and ticket.asks >= ruleset.settings.max_asks:
        decision = _to_triage(decision, ruleset,
                              f"still too vague after {ticket.asks} request(s) for details "
                              f"(followup.max_asks is {ruleset.settings.max_asks})")
        reason += "; still too vague: a person takes it"
    elif answered is not None and answered.rule in ticket.answered_rules:
        decision = _to_triage(decision, ruleset,
                              f"the known answer of '{answered.rule}' was sent already")
        reason += "; the known answer did not settle it: a person takes it"
    elif ActionKind.ASK_INFO in kinds:
        decision = _ask_again(decision, ticket.asks)
    elif ActionKind.ACKNOWLEDGE in kinds:
        decision = _retemplate(decision, ActionKind.ACKNOWLEDGE, ACK_UPDATE)
    return ReplyPlan(Handling.DECIDE_AGAIN, Side.REQUESTER, reason, sender,
                     decision=decision, words=words)


def is_thanks(words: str) -> bool:
    """A short thank-you or "it works now" with no question and no doubt in it."""
    return (len(words.split()) <= THANKS_MAX_WORDS and "?" not in words
            and _THANKS.search(words) is not None and _DOUBT.search(words) is None)


def _routes(msg: Message, words: str, ruleset: RuleSet, now: datetime) -> bool:
    """Whether the rules would act on these words alone ("Thanks! My emails bounce with 550
    errors" is a report, not a thank-you): a forward, a known answer, or critical."""
    decision = decide(replace(msg, subject="", text=words, html=None), None, now, ruleset)
    return decision.priority == Priority.CRITICAL or any(
        a.kind in (ActionKind.FORWARD, ActionKind.ANSWER) for a in decision.actions)


def asks_something(words: str) -> bool:
    """A team message that asks the requester something leaves the ticket waiting on them."""
    return "?" in words


def _team_message(msg: Message, ticket: TicketFacts, sender: str, words: str) -> ReplyPlan:
    recipients = {a.lower() for a in (*msg.to, *msg.cc)}
    wrote_to_requester = ticket.requester.lower() in recipients
    answers = our_kind((*msg.references, *msg.in_reply_to), ticket.id) \
        or _labelled(msg.subject, ticket.id)
    if answers in OWNER_MAIL and words:
        # an owner's answer is an answer: like the bot's known answers, the check-in asks
        # whether it settled things, and silence closes the ticket kindly
        return ReplyPlan(Handling.OWNER_ANSWER, Side.TEAM,
                         f"{sender} answered our {answers.value} mail"
                         + (", to the requester too: nothing to relay" if wrote_to_requester
                            else ": their words go to the requester"),
                         sender, waits_on_requester=True, words=words,
                         relay=not wrote_to_requester)
    if wrote_to_requester:
        asks = asks_something(words)
        return ReplyPlan(Handling.TEAM_UPDATE, Side.TEAM,
                         f"{sender} wrote to the requester: a visible update"
                         + ("; it asks something, so the ticket waits on the requester"
                            if asks else ""), sender, waits_on_requester=asks, words=words)
    return ReplyPlan(Handling.TEAM_NOTE, Side.TEAM,
                     f"{sender} is the team and did not write to the requester: logged only",
                     sender, words=words)


OWNER_MAIL = (MessageKind.FORWARD, MessageKind.RELAY, MessageKind.ASSIGNED_REMINDER)


def _labelled(subject: str, ticket_id: int) -> MessageKind | None:
    """Which of our owner mails a subject answers, for a client that dropped the threading
    headers but kept "Re: [#7] Assigned to you: ..."."""
    for kind in OWNER_MAIL:
        if f"[#{ticket_id}] {spec(kind).label}:".lower() in subject.lower():
            return kind
    return None


def _to_triage(decision: Decision, ruleset: RuleSet, why: str) -> Decision:
    target = ruleset.settings.triage
    requester_actions = [a for a in decision.actions if a.kind in
                         (ActionKind.ASK_INFO, ActionKind.ANSWER, ActionKind.ACKNOWLEDGE)]
    to = requester_actions[0].to if requester_actions else ()
    others = tuple(a for a in decision.actions if a not in requester_actions)
    if target is None:  # nobody to hand it to: acknowledge, the team's queue has it
        ack = Action(ActionKind.ACKNOWLEDGE, to, ACK_UPDATE, "triage")
        return replace(decision, actions=(*others, ack), trace=(
            *decision.trace, TraceStep("triage", True, f"{why}; no owners.triage and no "
                                       "on-call: acknowledged for the team's queue")))
    forward = Action(ActionKind.FORWARD, (target,), "forward", "triage",
                     notice_template=TRIAGE_NOTICE)
    return replace(decision, actions=(forward, *others), owner=target, followup=False,
                   trace=(*decision.trace, TraceStep("triage", True, f"{why}: handed to "
                                                     f"{target}")))


def _ask_again(decision: Decision, asks: int) -> Decision:
    if asks == 0:
        return decision
    return _retemplate(decision, ActionKind.ASK_INFO, ASK_AGAIN)


def _retemplate(decision: Decision, kind: ActionKind, template: str) -> Decision:
    """A second message of the same kind reads as a follow-up, unless a rule chose its own."""
    default = kind.value
    actions = tuple(replace(a, template=template) if a.kind == kind and a.template == default
                    else a for a in decision.actions)
    return replace(decision, actions=actions)


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


__all__ = ["Handling", "ReplyPlan", "Side", "TicketFacts", "answers_team_mail",
           "conversation_message",
           "decide_again", "on_reply", "our_kind", "side_of"]
