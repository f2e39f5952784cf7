"""What the store knows about a ticket's conversation, in the shapes ``bot.conversation``
takes: the facts of what the bot already did, and the messages so far."""

from __future__ import annotations

import json
from datetime import datetime

from bot.conversation import ReplyPlan, Side, TicketFacts, conversation_message, on_reply, side_of
from bot.mail.parse import parse_message
from bot.model import Message
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.store import LedgerMessage, Store, Ticket
from bot.vocab import REQUESTER_KINDS, MessageKind, OutboxStatus

MAX_REPLIES = 20  # replies a re-decision reads, the latest
_NOT_SENT = (OutboxStatus.SUPPRESSED, OutboxStatus.FAILED)


def ledger_message(row: LedgerMessage) -> Message:
    """A message as the rules saw it, from its ledger row (raw mail, or a Help Scout summary)."""
    entry = row.entry
    if row.raw is not None:
        return parse_message(row.raw, source=entry.source)
    s = json.loads(row.summary or "{}")
    return Message(source=entry.source, message_id=entry.message_id,
                   from_addr=s.get("from_addr", entry.from_addr),
                   from_name=s.get("from_name", ""), subject=s.get("subject", entry.subject),
                   text=s.get("text", ""), to=tuple(s.get("to", ())), tags=tuple(s.get("tags", ())),
                   mailbox_id=s.get("mailbox_id"), conversation_id=s.get("conversation_id"),
                   conversation_number=s.get("conversation_number"),
                   thread_id=s.get("thread_id"), customer_id=s.get("customer_id"))


def ticket_facts(store: Store, ticket: Ticket) -> TicketFacts:
    asks = 0
    answered: set[str] = set()
    last_to_requester = None
    last_notice = None
    for row in store.ticket_outbox(ticket.id):
        kind = row.kind
        if row.status in _NOT_SENT:
            continue
        at = row.created_at
        if kind == MessageKind.ASK_INFO:
            asks += 1
        elif kind == MessageKind.ANSWER and row.rule:
            answered.add(row.rule)
        elif kind == MessageKind.UPDATE_RELAYED:
            last_notice = max(last_notice or at, at)
        if kind in REQUESTER_KINDS:
            last_to_requester = max(last_to_requester or at, at)
    return TicketFacts(id=ticket.id, state=ticket.state, requester=ticket.requester,
                       owner=ticket.owner or None, asks=asks, answered_rules=frozenset(answered),
                       last_to_requester_at=last_to_requester, last_update_notice_at=last_notice)


def conversation(store: Store, ticket: Ticket, team: Team,
                 unrecorded: Message | None = None) -> tuple[Message, list[Message]] | None:
    """The opening message and the requester's side's replies in the ledger, oldest first,
    then ``unrecorded`` (what ``explain`` looks at); None when the opening message is no
    longer stored."""
    first: Message | None = None
    replies: list[Message] = []
    facts = TicketFacts(ticket.id, ticket.state, ticket.requester, ticket.owner)
    rows = store.conversation_rows(ticket.id)
    # a flood of replies to one ticket must not make each decision cost more: the opening
    # message and the latest replies are what the rules need
    for row in [*rows[:1], *rows[1:][-MAX_REPLIES:]]:
        if row.raw is None and row.summary is None:
            continue
        msg = ledger_message(row)
        if row.entry.status == "ticket" and first is None:
            first = msg
        elif side_of(msg, facts, team) == Side.REQUESTER:
            replies.append(msg)
    if unrecorded is not None and side_of(unrecorded, facts, team) == Side.REQUESTER:
        replies.append(unrecorded)
    return (first, replies) if first is not None else None


def plan_reply(store: Store, ticket: Ticket, msg: Message, now: datetime, ruleset: RuleSet,
               own_address: str, *, recorded: bool = True) -> ReplyPlan:
    """What ``msg`` on ``ticket`` leads to: the worker (``recorded``: it is in the ledger
    already) and ``explain`` (it is not) both ask here."""
    team = Team.of(ruleset.settings, own_address)
    whole = None
    if not ticket.owner:
        found = conversation(store, ticket, team, None if recorded else msg)
        if found is not None:
            whole = conversation_message(*found)
    return on_reply(msg, ticket_facts(store, ticket), ruleset=ruleset, team=team, now=now,
                    conversation=whole)
