"""The one vocabulary: ticket states, message kinds, timer kinds, priorities, actions, sources.

Every name the bot stores or sends is a member of one of these enums, and every property of
a message kind lives in one row of ``KINDS`` (as GNU Mailman keeps its whole default policy
in one table): a reader sees at once what each message is, who sees it and what it starts.
They are ``StrEnum``s, so they are stored, logged and compared as their plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITIES: tuple[Priority, ...] = tuple(Priority)  # most severe first


class SourceKind(StrEnum):
    EMAIL = "email"
    IMAP = "imap"
    MAILDIR = "maildir"
    HELPSCOUT = "helpscout"


class ActionKind(StrEnum):
    """What a rule (or the defaults) asks for; ``alert`` is added for critical tickets."""

    ACKNOWLEDGE = "acknowledge"
    ASK_INFO = "ask_info"
    ANSWER = "answer"
    FORWARD = "forward"
    ALERT = "alert"


REQUESTER_ACTIONS: tuple[ActionKind, ...] = (
    ActionKind.ACKNOWLEDGE, ActionKind.ASK_INFO, ActionKind.ANSWER)


class TicketState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    FORWARDED = "forwarded"
    WAITING = "waiting"  # on the requester: the bot or an agent asked something
    ANSWERED = "answered"  # a known answer went out; waiting to hear it worked
    OPEN = "open"  # the requester wrote again and the team has the next move
    CLOSED = "closed"


class TicketEvent(StrEnum):
    """What can happen to a ticket; ``bot.tickets`` says which state each one leads to."""

    ACKNOWLEDGED = "acknowledged"
    FORWARDED = "forwarded"
    ASKED = "asked"
    ANSWERED = "answered"
    REQUESTER_REPLIED = "requester replied"
    AGENT_REPLIED = "agent replied"  # the conversation stays active
    AGENT_ASKED = "agent asked"  # the team answered the requester: the ball is with them
    AGENT_CLOSED = "agent closed"
    CLOSED_SILENT = "closed after silence"  # the closure after an unanswered check-in
    REQUESTER_THANKED = "requester thanked"  # "that worked, thanks!": settled
    MERGED = "merged"  # Help Scout: its conversation was merged into another ticket's


class TimerKind(StrEnum):
    CHECK_IN = "check_in"
    CLOSE = "close"
    FIRST_RESPONSE = "first_response"
    ASSIGNED_REMINDER = "assigned_reminder"
    REDECIDE = "redecide"  # replies within followup.ack_quiet wait for one decision


FOLLOWUP_TIMERS: tuple[TimerKind, ...] = (TimerKind.CHECK_IN, TimerKind.CLOSE)


class ChannelName(StrEnum):
    SMTP = "smtp"
    MAILDIR = "maildir"
    HELPSCOUT = "helpscout"
    WEBHOOK = "webhook"


class OutboxStatus(StrEnum):
    """Where a planned send is; ``sending`` is claimed and in flight (in doubt after a crash)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # recorded, deliberately never sent (cap, bounce, own address)


class SendStatus(StrEnum):
    """What a channel reports for one item: ``retry`` is temporary, ``failed`` permanent."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class TimerStatus(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"  # the ticket moved on: nothing was sent
    FAILED = "failed"  # its handler raised; kept for the operator, never retried blindly


class Author(StrEnum):
    """Who wrote a Help Scout thread: the customer, a person on the team, or the bot."""

    CUSTOMER = "customer"
    AGENT = "agent"
    SELF = "self"


class HealthPart(StrEnum):
    """What `health` and `status` judge: each can stop the bot doing its job."""

    SOURCE = "source"  # reading tickets (IMAP, Help Scout, Maildir)
    CHANNEL = "channel"  # sending (SMTP, outbox Maildir, Help Scout, webhook)
    RULES = "rules"  # the last reload of rules.yaml and templates
    TIMERS = "timers"  # follow-ups and promises due, not fired
    WORKER = "worker"  # the heartbeat of the last successful cycle


class HelpScoutStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    CLOSED = "closed"
    SPAM = "spam"


class LineItem(StrEnum):
    """The Help Scout line items (`lineitem` threads) the bot acts on: people's changes."""

    STATUS = "changed-ticket-status"
    ASSIGNEE = "changed-ticket-assignee"
    MERGED = "merged"


class MessageKind(StrEnum):
    # to the requester
    ACKNOWLEDGE = "acknowledge"
    ASK_INFO = "ask_info"
    ANSWER = "answer"
    FORWARDED = "forwarded"  # the notice that tells the requester who has the ticket
    CHECK_IN = "check_in"
    CLOSURE = "closure"
    REOPENED = "reopened"
    OWNER_REPLY = "owner_reply"  # the owner's answer, relayed to the requester
    UPDATE_RELAYED = "update_relayed"  # "your update reached the owner", once a day at most
    # to the team
    FORWARD = "forward"
    RELAY = "relay"
    ALERT = "alert"
    ASSIGNED_REMINDER = "assigned_reminder"
    FIRST_RESPONSE_OVERDUE = "first_response_overdue"
    UNDELIVERABLE = "undeliverable"
    REPORT = "report"
    # Help Scout operations that are not messages
    ASSIGN = "assign"
    NOTE = "note"
    TAGS = "tags"


@dataclass(frozen=True)
class KindSpec:
    """One row of the policy table: everything the bot needs to know about a message kind."""

    template: str | None  # the default template; None for operations that render nothing
    auto_submitted: str  # RFC 3834: a direct answer is auto-replied, anything else generated
    to_requester: bool  # capped, threaded under their mail, a visible update when sent
    event: TicketEvent | None = None  # what planning it as the decision's answer does
    starts_followup: bool = False  # the 24 h check-in schedule starts when it is planned
    helpscout_status: HelpScoutStatus | None = None  # the reply's status in Help Scout
    label: str = ""  # the subject label of a team message ("[#7] Assigned to you: ...")
    attach_original: bool = False  # the requester's mail goes along as message/rfc822
    alert: bool = False  # also to the error log and the alert webhook: mail may be failing


_REPLIED, _GENERATED = "auto-replied", "auto-generated"
_PENDING, _ACTIVE = HelpScoutStatus.PENDING, HelpScoutStatus.ACTIVE

KINDS: dict[MessageKind, KindSpec] = {
    MessageKind.ACKNOWLEDGE: KindSpec("acknowledge", _REPLIED, True, TicketEvent.ACKNOWLEDGED,
                                      helpscout_status=_ACTIVE),
    MessageKind.ASK_INFO: KindSpec("ask_info", _REPLIED, True, TicketEvent.ASKED,
                                   starts_followup=True, helpscout_status=_PENDING),
    MessageKind.ANSWER: KindSpec("answer", _REPLIED, True, TicketEvent.ANSWERED,
                                 starts_followup=True, helpscout_status=_PENDING),
    MessageKind.FORWARDED: KindSpec("forwarded", _REPLIED, True, helpscout_status=_ACTIVE),
    MessageKind.CHECK_IN: KindSpec("check_in", _GENERATED, True, helpscout_status=_PENDING),
    MessageKind.CLOSURE: KindSpec("closure", _GENERATED, True,
                                  helpscout_status=HelpScoutStatus.CLOSED),
    MessageKind.REOPENED: KindSpec("acknowledge", _GENERATED, True, helpscout_status=_ACTIVE),
    MessageKind.OWNER_REPLY: KindSpec("owner_reply", _GENERATED, True,
                                      helpscout_status=_PENDING),
    MessageKind.UPDATE_RELAYED: KindSpec("update_relayed", _REPLIED, True,
                                         helpscout_status=_ACTIVE),
    MessageKind.FORWARD: KindSpec("forward", _GENERATED, False, TicketEvent.FORWARDED,
                                  label="Assigned to you", attach_original=True),
    MessageKind.RELAY: KindSpec("forward", _GENERATED, False, label="New reply",
                                attach_original=True),
    MessageKind.ALERT: KindSpec("alert", _GENERATED, False, label="Critical", alert=True),
    MessageKind.ASSIGNED_REMINDER: KindSpec("assigned_reminder", _GENERATED, False,
                                            label="Reminder"),
    MessageKind.FIRST_RESPONSE_OVERDUE: KindSpec("first_response_overdue", _GENERATED, False,
                                                 label="Overdue", alert=True),
    MessageKind.UNDELIVERABLE: KindSpec("alert", _GENERATED, False, label="Undeliverable",
                                        alert=True),
    MessageKind.REPORT: KindSpec("report", _GENERATED, False, label="Report"),
    MessageKind.ASSIGN: KindSpec(None, _GENERATED, False),
    MessageKind.NOTE: KindSpec(None, _GENERATED, False),
    MessageKind.TAGS: KindSpec(None, _GENERATED, False),
}


def spec(kind: MessageKind | str) -> KindSpec:
    """The policy row of a kind (a stored kind comes back as a plain string)."""
    return KINDS[MessageKind(kind)]


# The statuses a reply of ours may leave a Help Scout conversation in (never spam).
REPLY_STATUSES: frozenset[HelpScoutStatus] = frozenset(
    s.helpscout_status for s in KINDS.values() if s.helpscout_status is not None)
REQUESTER_KINDS: frozenset[MessageKind] = frozenset(k for k, s in KINDS.items() if s.to_requester)
ALERT_KINDS: frozenset[MessageKind] = frozenset(k for k, s in KINDS.items() if s.alert)


# Templates the conversation after the first message names (bot.conversation): a second
# request for details, the acknowledgement of an update, the hand-over to a person.
CONVERSATION_TEMPLATES: tuple[str, ...] = ("ask_again", "acknowledge-update", "forwarded-triage")
