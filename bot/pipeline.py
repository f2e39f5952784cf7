"""One inbound item -> ledger entry, ticket, decision, planned sends and timers.

Each item of a batch is recorded in its own transaction, so one bad message is quarantined
without costing its neighbours and a killed worker loses at most the item in hand; the
source's cursor is stored after the batch (an item recorded before a crash is "known" when
it is read again). Nothing here sends: the outbox does, afterwards.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from bot.config import Settings
from bot.conversation import answers_team_mail
from bot.errors import MalformedMessage, StoreError
from bot.lifecycle.agents import AgentActions
from bot.lifecycle.followup import Lifecycle
from bot.lifecycle.merges import Merges
from bot.mail.addresses import reply_recipient
from bot.mail.bounce import read_bounce
from bot.mail.parse import parse_message
from bot.mail.ticketref import find_ticket_ref
from bot.model import Decision, Message
from bot.plan import Planner
from bot.rules.decide import decide
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.sources.base import Batch, Inbound
from bot.store import Store, Ticket
from bot.templates import Templates
from bot.ticket_join import may_join
from bot.vocab import Author, SourceKind, TicketState

log = structlog.get_logger(__name__)


@dataclass
class Outcome:
    """What happened to one item, for logs, the demo timeline and dry-run output."""

    ref: str
    status: str  # ticket | reply | ignored | backfill | duplicate | quarantined | own | known
    ticket_id: int | None = None
    decision: Decision | None = None
    message: Message | None = None
    detail: str = ""
    outbox_ids: list[int] = field(default_factory=list)


def message_summary(msg: Message) -> dict[str, Any]:
    """What replay needs to re-decide a Help Scout message (email keeps its raw bytes)."""
    return {
        "from_addr": msg.from_addr, "from_name": msg.from_name, "subject": msg.subject,
        "text": msg.text[:50000], "to": list(msg.to), "tags": list(msg.tags),
        "mailbox_id": msg.mailbox_id, "conversation_id": msg.conversation_id,
        "conversation_number": msg.conversation_number, "thread_id": msg.thread_id,
        "customer_id": msg.customer_id,
    }


class RulesInForce(Protocol):
    """What the pipeline reads the rules from (``RulesHolder``: they change on reload)."""

    @property
    def current(self) -> tuple[RuleSet, Templates]: ...


class Record(Protocol):
    def __call__(self, status: str, ticket_id: int | None = None,
                 reason: str | None = None) -> None: ...


class Pipeline:
    """Records and decides inbound items; the worker hands it batches."""

    def __init__(self, settings: Settings, store: Store, planner: Planner,
                 lifecycle: Lifecycle, rules: RulesInForce) -> None:
        self.settings = settings
        self.store = store
        self.planner = planner
        self.lifecycle = lifecycle
        self.rules = rules
        self.agents = AgentActions(store, lifecycle)
        self.merges = Merges(store)

    # -- batches ------------------------------------------------------------------------
    def ingest_batch(self, source_key: str, batch: Batch, now: datetime) -> list[Outcome]:
        outcomes = [self._ingest_safely(item, now, initial=batch.initial)
                    for item in batch.items]
        with self.store.transaction():
            if batch.cursor is not None:
                self.store.set_cursor(source_key, batch.cursor, now)
            if source_key != "quarantine":
                self.store.set_meta(f"source:{source_key}:last_read", now.isoformat())
        for outcome in outcomes:
            if outcome.status not in {"known", "duplicate"}:
                d = outcome.decision
                log.info("message processed", ref=outcome.ref, ticket=outcome.ticket_id,
                         outcome=outcome.status, rules=list(d.rules) if d else [],
                         actions=[a.kind.value for a in d.actions] if d else [],
                         reason=(d.reason if d else None) or outcome.detail or None)
        return outcomes

    def _ingest_safely(self, item: Inbound, now: datetime, *, initial: bool) -> Outcome:
        if self.store.has_ref(item.ref):
            return Outcome(item.ref, "known")
        try:
            with self.store.transaction():
                return self._ingest(item, now, initial=initial)
        except StoreError:
            raise  # the database failed, not the message: the batch is rolled back, not shunted
        except Exception as exc:  # noqa: BLE001 - the item is kept raw; the bot carries on
            error = f"{type(exc).__name__}: {exc}"
            log.warning("message quarantined", ref=item.ref, source=item.source, reason=error,
                        where=traceback.format_exc(limit=3)[-600:])
            with self.store.transaction():
                self._quarantine(item, now, error)
            return Outcome(item.ref, "quarantined", detail=error)

    def _quarantine(self, item: Inbound, now: datetime, error: str) -> None:
        raw = item.raw if item.raw is not None else (item.message.raw if item.message else None)
        self.store.quarantine(ref=item.ref, source=item.source, raw=raw, error=error, now=now)
        self.store.record_message(
            ref=item.ref, source=item.source, received_at=item.received_at, now=now,
            status="quarantined", content_hash="", reason=error, folder=item.folder,
            uidvalidity=item.uidvalidity, uid=item.uid)
        self.store.log(now, None, "quarantined", f"{item.ref}: {error}")

    # -- one item -----------------------------------------------------------------------
    def _ingest(self, item: Inbound, now: datetime, *, initial: bool) -> Outcome:
        if item.error is not None:
            log.warning("message quarantined", ref=item.ref, source=item.source,
                        reason=item.error)
            self._quarantine(item, now, item.error)
            return Outcome(item.ref, "quarantined", detail=item.error)
        if item.message is not None:
            msg = item.message
        else:
            try:
                msg = parse_message(item.raw or b"", source=item.source,
                                    received_at=item.received_at)
            except MalformedMessage as exc:
                log.warning("message quarantined", ref=item.ref, source=item.source,
                            reason=f"malformed message: {exc}")
                self._quarantine(item, now, f"malformed message: {exc}")
                return Outcome(item.ref, "quarantined", detail=str(exc))

        def record(status: str, ticket_id: int | None = None, reason: str | None = None) -> None:
            self.store.record_message(
                ref=item.ref, source=item.source, received_at=item.received_at, now=now,
                status=status, content_hash=msg.content_hash, message_id=msg.message_id,
                from_addr=msg.from_addr, subject=msg.subject, reason=reason, ticket_id=ticket_id,
                raw=msg.raw, summary=message_summary(msg) if msg.raw is None else None,
                folder=item.folder, uidvalidity=item.uidvalidity, uid=item.uid,
                conversation_id=msg.conversation_id, thread_id=msg.thread_id)

        if item.source != SourceKind.HELPSCOUT:
            same = self.store.find_same_message(msg.message_id, msg.content_hash)
            if same is not None:
                record("duplicate", same.ticket_id, f"same as ledger entry {same.id}")
                return Outcome(item.ref, "duplicate", same.ticket_id, message=msg)
        else:  # a thread a Help Scout merge moved is not a new reply (bot/lifecycle/merges.py)
            moved = self.merges.moved(msg)
            if moved is not None:
                into = self.merges.apply(moved, msg, now)
                record("duplicate", into.id if into else None,
                       f"moved here by a merge of conversation {moved}")
                return Outcome(item.ref, "duplicate", into.id if into else None, message=msg)

        if item.author == Author.SELF:
            record("own", None, "our own Help Scout thread")
            return Outcome(item.ref, "own", message=msg)

        ruleset, templates = self.rules.current
        ticket, refused_claim = self._joinable_ticket(msg)
        if item.author == Author.AGENT:
            return self._agent_thread(item, msg, ticket, now, record)

        decision = decide(msg, ticket.view() if ticket else None, now, ruleset,
                          own_addresses=frozenset({self.settings.from_addr}),
                          own_domain=self.settings.from_domain)
        if decision.ignored:
            record("ignored", ticket.id if ticket else None, decision.reason)
            self.store.log(now, ticket.id if ticket else None, "ignored",
                           f"{msg.from_addr or '(no sender)'}: {decision.reason}")
            self._handle_bounce(msg, now)
            return Outcome(item.ref, "ignored", ticket.id if ticket else None, decision, msg)

        if ticket is not None:
            record("reply", ticket.id)
            ids = self.lifecycle.on_message(ticket, msg, item.ref, now, ruleset, templates)
            return Outcome(item.ref, "reply", ticket.id, decision, msg, outbox_ids=ids)

        cutoff = now - timedelta(hours=self.settings.backfill_hours)
        if initial and item.received_at < cutoff:
            record("backfill", None, "older than SUPPORTBOT_BACKFILL_HOURS on first start")
            return Outcome(item.ref, "backfill", None, decision, msg,
                           detail="recorded, not acted on (first start)")

        ticket = self._open_ticket(msg, item, now)
        if refused_claim:
            self.store.log(now, ticket.id, "claimed reference refused", refused_claim)
        record("ticket", ticket.id)
        ids = self.act(ticket, msg, decision, item.ref, now, ruleset, templates)
        return Outcome(item.ref, "ticket", ticket.id, decision, msg, outbox_ids=ids)

    def _find_ticket(self, msg: Message) -> Ticket | None:
        ruleset = self.rules.current[0]
        return find_ticket(self.store, msg, Team.of(ruleset.settings, self.settings.from_addr))

    def _joinable_ticket(self, msg: Message) -> tuple[Ticket | None, str | None]:
        ruleset = self.rules.current[0]
        return joinable_ticket(self.store, msg, Team.of(ruleset.settings,
                                                        self.settings.from_addr))

    def _open_ticket(self, msg: Message, item: Inbound, now: datetime) -> Ticket:
        requester = (reply_recipient(msg) if msg.source != SourceKind.HELPSCOUT
                     else msg.from_addr) or ""
        ticket = self.store.create_ticket(
            source=msg.source, requester=requester or msg.from_addr,
            requester_name=msg.from_name, subject=msg.subject, now=now,
            root_message_id=msg.message_id, refs=list(msg.references),
            mailbox_id=msg.mailbox_id, conversation_id=msg.conversation_id,
            conversation_number=msg.conversation_number, customer_id=msg.customer_id,
            created_at=item.received_at if item.received_at <= now else now)
        self.store.log(now, ticket.id, "opened",
                       f"from {msg.from_addr}: {msg.subject!r} via {item.source}")
        return ticket

    def act(self, ticket: Ticket, msg: Message, decision: Decision, trigger: str, now: datetime,
            ruleset: RuleSet, templates: Templates) -> list[int]:
        """Record the decision on the new ticket and plan what it sends (``Lifecycle.act``)."""
        return self.lifecycle.act(ticket, msg, decision, trigger, now, ruleset, templates)

    def _agent_thread(self, item: Inbound, msg: Message, ticket: Ticket | None, now: datetime,
                      record: Record) -> Outcome:
        """A Help Scout agent wrote: visible update; a pending status starts follow-ups."""
        if ticket is None:
            record("agent", None, "agent thread on a conversation we do not track")
            return Outcome(item.ref, "agent", message=msg)
        record("agent", ticket.id)
        self.agents.thread(ticket, item, now, self.rules.current[0])
        return Outcome(item.ref, "agent", ticket.id, message=msg)

    def _handle_bounce(self, msg: Message, now: datetime) -> None:
        """A permanent bounce of one of our messages: that recipient gets no more mail."""
        bounce = read_bounce(msg)
        if bounce is None or not bounce.permanent:
            return
        ours = self.store.outbox_by_message_ids(list(bounce.original_message_ids))
        if not ours:
            return
        ruleset, templates = self.rules.current
        for row in ours:
            sent_to = [a.lower() for a in row.recipients]
            # free-text bounces are read best effort: only an address we wrote to counts
            named = [a for a in bounce.recipients if a.lower() in sent_to]
            for address in named or sent_to:
                if not self.store.mark_undeliverable(address, bounce.status or "bounced", now):
                    continue
                ticket = None if row.ticket_id is None else self.store.get_ticket(row.ticket_id)
                if ticket is None:
                    continue
                self.lifecycle.recipient_undeliverable(ticket, address, now, ruleset, templates)


def find_ticket(store: Store, msg: Message, team: Team | None = None) -> Ticket | None:
    """The ticket ``msg`` belongs to: its Help Scout conversation, its threading headers,
    or a ``[#N]`` subject tag from the requester's own domain or from the team (an owner's
    client that drops the threading headers keeps the subject); ``explain`` asks the same."""
    if msg.source == SourceKind.HELPSCOUT and msg.conversation_id is not None:
        return store.ticket_by_conversation(msg.conversation_id)
    ticket = store.ticket_by_thread([*msg.in_reply_to, *reversed(msg.references)])
    if ticket is not None:
        return ticket
    number = find_ticket_ref(msg.subject)
    if number is not None:
        candidate = store.get_ticket(number)
        # A subject tag alone is easy to forge: only the requester's own domain may use it.
        if candidate and (_domain(candidate.requester) == _domain(msg.from_addr)
                          or (team is not None and team.is_team(msg.from_addr))):
            return candidate
    return None


def joinable_ticket(store: Store, msg: Message,
                    team: Team) -> tuple[Ticket | None, str | None]:
    """The claimed ticket if ``msg``'s sender may join it (`bot.ticket_join`); else no
    ticket, and why the claim was refused (for the new ticket's log). ``explain`` asks the
    same, so it explains a forged reference as the new ticket the worker opens."""
    ticket = find_ticket(store, msg, team)
    if ticket is None or msg.source == SourceKind.HELPSCOUT:
        return ticket, None
    verdict = may_join(
        requester=ticket.requester, closed=ticket.state == TicketState.CLOSED,
        sender=msg.from_addr, recipients=(*msg.to, *msg.cc),
        participants={m.from_addr for m in store.ticket_messages(ticket.id)},
        is_team=team.is_team(msg.from_addr),
        answers_team_message=answers_team_mail(msg, ticket.id))
    if verdict.joins:
        return ticket, None
    log.warning("claimed ticket refused", ticket=ticket.id, sender=msg.from_addr,
                reason=verdict.reason)
    return None, f"claimed ticket #{ticket.id} from {msg.from_addr}: {verdict.reason}"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()

