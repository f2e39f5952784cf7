"""Turning a decision's actions into planned sends (outbox rows) for one ticket.

Everything here runs inside the caller's store transaction: rows are rendered, composed
and recorded with an idempotency key before anything is sent, so a crash can neither
lose a planned message nor plan it twice. Loop safety lives here too: the bot's own
addresses, undeliverable addresses and the per-recipient daily cap turn a send into a
recorded `suppressed` row, never a silent drop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from bot.config import Settings
from bot.expand import About, context, original_text
from bot.helpscout import ops
from bot.mail.attachments import File
from bot.mail.compose import ComposeError, compose, make_message_id, ticket_subject
from bot.model import Message
from bot.rules.ruleset import RuleSet
from bot.rules.team import Team
from bot.store import Store, Ticket
from bot.templates import Rendered, Templates
from bot.vocab import (
    ALERT_KINDS,
    REQUESTER_KINDS,
    ChannelName,
    HelpScoutStatus,
    MessageKind,
    OutboxStatus,
    SourceKind,
    spec,
)

log = structlog.get_logger(__name__)

MAX_REFS = 20  # Message-IDs a ticket keeps for threading (its root is kept apart)

# Beyond `settings.limits.per_recipient_per_day` (per mailbox): automatic messages to one
# recipient domain per hour (the bot's own domain aside), and to one team address per day.
PER_DOMAIN_PER_HOUR = 30
TEAM_PER_DAY = 200
# Mail providers whose domain is shared by millions of strangers: the per-mailbox cap
# protects their users; a per-domain cap would only silence the help desk.
SHARED_PROVIDERS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com",
    "gmx.de", "gmx.net", "web.de", "mail.com", "proton.me", "protonmail.com", "yandex.ru",
    "mail.ru", "qq.com", "163.com", "fastmail.com", "zoho.com", "orange.fr", "free.fr",
    "t-online.de", "libero.it", "comcast.net"})


class Planner:
    """Renders templates, composes mail or Help Scout operations, records outbox rows."""

    def __init__(self, settings: Settings, store: Store, *, mail_channel: str | None,
                 helpscout: bool, alert_webhook: bool) -> None:
        self.settings = settings
        self.store = store
        self.mail_channel = mail_channel
        self.helpscout = helpscout
        self.alert_webhook = alert_webhook
        # loop-safety settings; the worker sets them from the rules in force (and on reload)
        self.cap: int | None = 5
        self.team = Team()

    # -- template context ---------------------------------------------------------------
    def context(self, ticket: Ticket, ruleset: RuleSet, *, kind: MessageKind, rule: str | None,
                owner: str | None = None, original_text: str = "",
                extra: dict[str, object] | None = None) -> dict[str, object]:
        return context(About.ticket(ticket), ruleset, kind=kind, rule=rule, owner=owner,
                       original=original_text, extra=extra)

    # -- planning -----------------------------------------------------------------------
    def plan(self, *, ticket: Ticket, kind: MessageKind, to: list[str], trigger: str,
             now: datetime, ruleset: RuleSet, templates: Templates, template: str | None = None,
             rule: str | None = None, original: Message | None = None,
             owner: str | None = None, extra: dict[str, object] | None = None,
             helpscout_status: HelpScoutStatus | None = None,
             files: Sequence[File] = ()) -> list[int]:
        """Plan one logical message; returns the new outbox ids (empty if planned before)."""
        if kind == MessageKind.FORWARD and len(to) == 1:
            # a forward to two owners is two copies: each needs its own idempotency key
            trigger = f"{trigger}:{to[0].lower()}"
        name = template or spec(kind).template or kind.value
        ctx = self.context(ticket, ruleset, kind=kind, rule=rule, owner=owner,
                           original_text=original_text(original), extra=extra)
        rendered = templates.render(name, ctx)
        if ticket.source == SourceKind.HELPSCOUT and self.helpscout and (
                kind in REQUESTER_KINDS or kind == MessageKind.FORWARD):
            return self._plan_helpscout(ticket=ticket, kind=kind, to=to, trigger=trigger,
                                        now=now, rendered=rendered, rule=rule, owner=owner,
                                        status=helpscout_status, team_text=ctx)
        ids = self._plan_mail(ticket=ticket, kind=kind, to=to, trigger=trigger, now=now,
                              rendered=rendered, rule=rule, original=original, files=files)
        if kind in ALERT_KINDS and self.mail_channel is not None:
            # mail itself may be what is failing: alerts also go to the log and the webhook
            log.error("alert", ticket=ticket.id, kind=kind, subject=ticket.subject)
            if self.alert_webhook:
                ids += self._plan_webhook(ticket, kind, f"t{ticket.id}:{kind}:{trigger}:webhook",
                                          rendered, now, rule)
        return ids

    def _plan_mail(self, *, ticket: Ticket, kind: MessageKind, to: list[str], trigger: str,
                   now: datetime, rendered: Rendered, rule: str | None,
                   original: Message | None, files: Sequence[File] = ()) -> list[int]:
        key = f"t{ticket.id}:{kind}:{trigger}"
        if self.mail_channel is None:
            return self._plan_without_mail(ticket, kind, key, rendered, now, rule, to)
        to_requester = kind in REQUESTER_KINDS
        message_id = make_message_id(ticket.id, kind, self.settings.from_domain)
        if to_requester:
            ticket = self.store.get_ticket(ticket.id) or ticket  # its thread may have grown
            subject = ticket_subject(ticket.subject, ticket.id)
            in_reply_to = ticket.last_message_id
            references = list(ticket.refs)
            if ticket.root_message_id and ticket.root_message_id not in references:
                references.insert(0, ticket.root_message_id)
            if in_reply_to and in_reply_to not in references:
                references.append(in_reply_to)
        else:
            label = spec(kind).label or kind.value
            subject = f"[#{ticket.id}] {label}: {ticket.subject or 'support request'}"
            in_reply_to, references = None, []
        auto = spec(kind).auto_submitted
        # the team's answer to a team message comes back to us, so it reaches the requester
        reply_to = None if to_requester else self.settings.from_header
        recipients, suppressed = self._screen(to, to_requester=to_requester, now=now)
        attached = (original.raw if original is not None and spec(kind).attach_original
                    else None)
        try:
            payload = compose(
                kind=kind, from_header=self.settings.from_header, to=recipients or to,
                subject=subject, text=rendered.text, html=rendered.html,
                message_id=message_id, date=now, in_reply_to=in_reply_to,
                references=references, auto_submitted=auto, reply_to=reply_to,
                attach_original=attached, files=files,
                extra_headers={"X-Supportbot-Ticket": str(ticket.id), "X-Supportbot-Kind": kind},
            )
        except ComposeError as exc:  # e.g. no valid address: recorded, never a crash
            self.store.log(now, ticket.id, "not sent", f"{kind}: {exc}", rule=rule)
            log.error("cannot compose", ticket=ticket.id, kind=kind, error=str(exc))
            return []
        status, error = ((OutboxStatus.PENDING, None) if recipients
                         else (OutboxStatus.SUPPRESSED, "; ".join(suppressed)))
        outbox_id = self.store.add_outbox(
            idem_key=key, ticket_id=ticket.id, kind=kind, channel=self.mail_channel,
            message_id=message_id, envelope_from=self.settings.from_addr,
            recipients=recipients, payload=payload, now=now, rule=rule, status=status,
            error=error, original=attached)
        if outbox_id is None:
            return []
        self.store.add_thread_id(message_id, ticket.id)
        if to_requester and recipients:
            # the whole chain, ours included, so the next message threads under all of it
            self.store.update_ticket(ticket.id, now, refs=[*ticket.refs, message_id][-MAX_REFS:])
        if suppressed:
            self.store.log(now, ticket.id, "suppressed", f"{kind}: " + "; ".join(suppressed),
                           rule=rule)
            log.info("send suppressed", kind=kind, ticket=ticket.id, channel=self.mail_channel,
                     message_id=message_id, why=suppressed)
        if recipients:
            self.store.log(now, ticket.id, "planned",
                           f"{kind} to {', '.join(recipients)}", rule=rule)
        return [outbox_id]

    def _plan_without_mail(self, ticket: Ticket, kind: MessageKind, key: str, rendered: Rendered,
                           now: datetime, rule: str | None, to: list[str]) -> list[int]:
        """Help Scout-only deployments have no mail: a team message (an owner's reminder, an
        on-call alert) becomes a note on the conversation, where the team works, and goes to
        the alert webhook; with neither it is logged."""
        if kind in REQUESTER_KINDS:
            self.store.log(now, ticket.id, "suppressed", f"{kind}: no channel to the requester",
                           rule=rule)
            log.error("no channel for requester message", ticket=ticket.id, kind=kind)
            return []
        if kind in ALERT_KINDS:
            log.error("alert", ticket=ticket.id, kind=kind, text=rendered.text[:500])
        ids = self._plan_team_note(ticket, kind, key, rendered, now, rule, to)
        if not self.alert_webhook:
            if not ids:
                self.store.log(now, ticket.id, "logged", f"{kind}: no mail channel; logged only",
                               rule=rule)
            return ids
        return ids + self._plan_webhook(ticket, kind, key, rendered, now, rule)

    def _plan_team_note(self, ticket: Ticket, kind: MessageKind, key: str, rendered: Rendered,
                        now: datetime, rule: str | None, to: list[str]) -> list[int]:
        if ticket.source != SourceKind.HELPSCOUT or not self.helpscout \
                or ticket.conversation_id is None:
            return []
        label = spec(kind).label or kind.value
        text = f"supportbot - {label} (for {', '.join(to) or 'the team'}):\n\n{rendered.text}"
        outbox_id = self.store.add_outbox(
            idem_key=f"{key}:note", ticket_id=ticket.id, kind=kind,
            channel=ChannelName.HELPSCOUT, message_id=f"helpscout:{key}:note", envelope_from="",
            recipients=to, payload=ops.note_op(ticket.conversation_id, text, f"sb:{key}:note"),
            now=now, rule=rule)
        if outbox_id:
            self.store.log(now, ticket.id, "planned",
                           f"{kind} as a Help Scout note for {', '.join(to)}", rule=rule)
        return [outbox_id] if outbox_id else []

    def _plan_webhook(self, ticket: Ticket, kind: MessageKind, key: str, rendered: Rendered,
                      now: datetime,
                      rule: str | None) -> list[int]:
        payload = json.dumps({"text": f"[#{ticket.id}] {ticket.subject}\n\n{rendered.text}",
                              "ticket": ticket.id, "kind": kind}).encode()
        outbox_id = self.store.add_outbox(
            idem_key=key, ticket_id=ticket.id, kind=kind, channel=ChannelName.WEBHOOK,
            message_id=f"webhook:{key}", envelope_from="", recipients=["webhook"],
            payload=payload, now=now, rule=rule)
        if outbox_id:
            self.store.log(now, ticket.id, "planned", f"{kind} to the alert webhook", rule=rule)
        return [outbox_id] if outbox_id else []

    def _plan_helpscout(self, *, ticket: Ticket, kind: MessageKind, to: list[str], trigger: str,
                        now: datetime, rendered: Rendered, rule: str | None, owner: str | None,
                        status: HelpScoutStatus | None,
                        team_text: dict[str, object]) -> list[int]:
        assert ticket.conversation_id is not None
        conv = ticket.conversation_id
        planned: list[tuple[str, MessageKind, bytes, list[str]]] = []  # suffix, kind, op, to
        if kind == MessageKind.FORWARD:
            target = owner or (to[0] if to else "")
            if target.isdigit():
                planned.append(("assign", MessageKind.ASSIGN, ops.assign_op(conv, int(target)),
                                [target]))
            note = (f"Assigned by supportbot to {team_text['owner_name'] or target} "
                    f"(rule: {rule or 'n/a'}).")
            marker = f"sb:t{ticket.id}:{kind}:{trigger}:note"
            planned.append(("note", MessageKind.NOTE, ops.note_op(conv, note, marker), [target]))
        else:
            reply_status = status or spec(kind).helpscout_status or HelpScoutStatus.ACTIVE
            recipients, suppressed = self._screen(to, to_requester=True, now=now)
            if suppressed and not recipients:
                self.store.log(now, ticket.id, "suppressed", f"{kind}: " + "; ".join(suppressed),
                               rule=rule)
                log.info("send suppressed", kind=kind, ticket=ticket.id,
                         channel=ChannelName.HELPSCOUT, why=suppressed)
                return []
            marker = f"sb:t{ticket.id}:{kind}:{trigger}"
            planned.append(("reply", kind, ops.reply_op(
                conv, ticket.customer_id or 0, rendered.text, rendered.html,
                reply_status, marker), to))
        ids: list[int] = []
        for suffix, op_kind, payload, recipients in planned:
            key = f"t{ticket.id}:{kind}:{trigger}:{suffix}"
            outbox_id = self.store.add_outbox(
                idem_key=key, ticket_id=ticket.id, kind=op_kind if suffix != "reply" else kind,
                channel=ChannelName.HELPSCOUT, message_id=f"helpscout:{key}",
                envelope_from="", recipients=recipients, payload=payload, now=now, rule=rule)
            if outbox_id:
                ids.append(outbox_id)
                self.store.log(now, ticket.id, "planned",
                               f"Help Scout {suffix} ({kind})", rule=rule)
        return ids

    def plan_team_mail(self, *, key: str, kind: MessageKind, to: list[str], subject: str,
                       template: str, context: dict[str, object], now: datetime,
                       ruleset: RuleSet,
                       templates: Templates) -> int | None:
        """A message to the team that belongs to no ticket (the scheduled report)."""
        if self.mail_channel is None:
            log.info("no mail channel for a team message", kind=kind)
            return None
        s = ruleset.settings
        ctx = {"team_name": s.team_name, "signature": s.signature, **context}
        rendered = templates.render(template, ctx)
        message_id = make_message_id(0, kind, self.settings.from_domain)
        payload = compose(kind=kind, from_header=self.settings.from_header, to=to,
                          subject=subject, text=rendered.text, html=rendered.html,
                          message_id=message_id, date=now, auto_submitted="auto-generated",
                          extra_headers={"X-Supportbot-Kind": kind})
        outbox_id = self.store.add_outbox(
            idem_key=key, ticket_id=None, kind=kind, channel=self.mail_channel,
            message_id=message_id, envelope_from=self.settings.from_addr, recipients=to,
            payload=payload, now=now)
        if outbox_id:
            self.store.log(now, None, "planned", f"{kind} to {', '.join(to)}")
        return outbox_id

    def plan_tags(self, ticket: Ticket, tags: list[str], trigger: str, now: datetime) -> None:
        """Help Scout has no priority field: priority and rule tags are merged into its tags."""
        if ticket.source != SourceKind.HELPSCOUT or not self.helpscout or not tags:
            return
        assert ticket.conversation_id is not None
        key = f"t{ticket.id}:tags:{trigger}"
        self.store.add_outbox(
            idem_key=key, ticket_id=ticket.id, kind=MessageKind.TAGS,
            channel=ChannelName.HELPSCOUT,
            message_id=f"helpscout:{key}", envelope_from="", recipients=[],
            payload=ops.tags_op(ticket.conversation_id, sorted(set(tags))), now=now)

    # -- loop safety --------------------------------------------------------------------
    def _screen(self, to: list[str], *, to_requester: bool,
                now: datetime) -> tuple[list[str], list[str]]:
        """Split recipients into those we may write to and reasons for the others."""
        ok: list[str] = []
        why: list[str] = []
        for address in to:
            a = address.lower()
            if a == self.settings.from_addr:
                why.append(f"{a} is the bot's own address")
            elif self.store.is_undeliverable(a):
                why.append(f"{a} is undeliverable (bounced)")
            elif (capped := self._capped(a, to_requester=to_requester, now=now)) is not None:
                why.append(capped)
            else:
                ok.append(a)
        return ok, why

    def _capped(self, address: str, *, to_requester: bool, now: datetime) -> str | None:
        """Why ``address`` may not get another automatic message now, or None.

        Counted per mailbox (`cap_key`: case, +tags, ignored dots), so the bot cannot be
        made to mail one victim through address variants; per recipient domain an hour
        (shared mail providers aside), so it cannot flood one company; and the team's own
        addresses too, higher, so a flood of tickets cannot flood on-call without end."""
        day = now - timedelta(hours=24)
        if self.team.is_team(address):
            if self.store.recent_sends_to(address, day) >= TEAM_PER_DAY:
                return f"{address} reached the team cap of {TEAM_PER_DAY} messages per 24 h"
            return None
        if not to_requester:
            return None
        if self.cap is not None and self.store.recent_sends_to(address, day) >= self.cap:
            return f"{address} reached the cap of {self.cap} automatic messages per 24 h"
        domain = address.rpartition("@")[2]
        if (domain not in SHARED_PROVIDERS and domain != self.settings.from_domain
                and self.store.recent_sends_to_domain(
                    domain, now - timedelta(hours=1)) >= PER_DOMAIN_PER_HOUR):
            return (f"{domain} reached the cap of {PER_DOMAIN_PER_HOUR} automatic messages "
                    "per hour to one domain")
        return None
