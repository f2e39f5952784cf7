"""One expansion of a decision into sends, and the one template context builder.

The worker (through the planner), ``run --dry-run``, ``explain``, ``explain --json`` and the
template previews all call these two functions, so what ``explain`` shows is what the
worker sends. This is also the one place where a forward tells the requester who has the
ticket: every forward expands into the owner's copy *and* the notice to the requester.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import RulesError
from bot.mail.addresses import reply_recipient
from bot.mail.echo import echo_subject, greeting_name
from bot.mail.html2text import html_to_text
from bot.model import Decision, Message
from bot.rules.details import missing_details
from bot.rules.durations import humanise
from bot.rules.ruleset import RuleSet
from bot.store import Ticket
from bot.templates import Templates
from bot.vocab import ActionKind, MessageKind, Priority, spec

ORIGINAL_CHARS = 20_000  # of the requester's text quoted to an owner or on-call


@dataclass(frozen=True)
class Send:
    """One message a decision sends: to whom, with which template, naming which owner."""

    kind: MessageKind
    to: tuple[str, ...]
    template: str
    rule: str
    owner: str | None = None


def expand(decision: Decision, requester: str | None) -> list[Send]:
    """The messages ``decision`` sends, in order; a forward gives one copy per owner and
    then the notice that tells the requester who has it."""
    sends: list[Send] = []
    for action in decision.actions:
        if action.kind == ActionKind.FORWARD:
            for target in action.to:
                sends.append(Send(MessageKind.FORWARD, (target,), action.template,
                                  action.rule, owner=target))
            notice = MessageKind.FORWARDED
            sends.append(Send(notice, (requester,) if requester else (),
                              action.notice_template or spec(notice).template or notice.value,
                              action.rule, owner=action.to[0] if action.to else None))
        else:
            sends.append(Send(MessageKind(action.kind), action.to, action.template,
                              action.rule, owner=decision.owner))
    return sends


@dataclass(frozen=True)
class About:
    """What a template may say about the ticket; ``ticket_id`` is None before it exists."""

    ticket_id: int | None
    requester: str
    requester_name: str
    subject: str
    topic: str | None
    priority: str | None
    owner: str | None

    @classmethod
    def ticket(cls, ticket: Ticket) -> About:
        return cls(ticket.id, ticket.requester, ticket.requester_name, ticket.subject,
                   ticket.topic, ticket.priority, ticket.owner)

    @classmethod
    def message(cls, message: Message, decision: Decision) -> About:
        """A ticket not yet opened: what ``explain`` and previews render with."""
        requester = reply_recipient(message) or message.from_addr
        return cls(None, requester, message.from_name, message.subject, decision.topic,
                   decision.priority, decision.owner)


def original_text(message: Message | None) -> str:
    """The requester's words as an owner reads them: the text part, else the HTML as text."""
    if message is None:
        return ""
    text = message.text[:ORIGINAL_CHARS]
    if not text.strip() and message.html:
        text = html_to_text(message.html[: ORIGINAL_CHARS * 4])[:ORIGINAL_CHARS]
    return text


def context(about: About, ruleset: RuleSet, *, kind: MessageKind | str, rule: str | None,
            owner: str | None = None, original: str = "",
            extra: dict[str, object] | None = None) -> dict[str, object]:
    """The variables every template sees (docs/rules.md lists them)."""
    s = ruleset.settings
    owner = owner or about.owner
    ctx: dict[str, object] = {
        "name": greeting_name(about.requester_name or "") or "there",
        "requester": about.requester,
        "requester_name": about.requester_name or about.requester,
        "ticket_id": about.ticket_id or 0,
        "ticket_ref": f"[#{about.ticket_id}]" if about.ticket_id else "[#new]",
        "subject": echo_subject(about.subject or "") or "your request",
        "owner": owner or "",
        "owner_name": s.owner_name(owner) if owner else "",
        "topic": about.topic or "",
        "priority": about.priority or Priority.NORMAL,
        "rule": rule or "",
        "team_name": s.team_name,
        "signature": s.signature,
        "original_text": original,
        "check_in_after": humanise(s.check_in_after),
        "close_after": humanise(s.close_after),
        "kind": str(kind),
        "missing": missing_details(original),
        "sender": about.requester,
        "sender_name": about.requester_name or about.requester,
        "words": "",
    }
    if extra:
        ctx.update(extra)
    return ctx


@dataclass(frozen=True)
class Preview:
    """One message a decision would send, rendered: what ``explain`` prints."""

    kind: MessageKind
    to: tuple[str, ...]
    template: str
    text: str
    html: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "to": list(self.to), "template": self.template,
                "text": self.text, "html": self.html, "error": self.error}


def previews(message: Message, decision: Decision, ruleset: RuleSet,
             templates: Templates) -> list[Preview]:
    """Every send of ``decision``, rendered as the planner renders it for a new ticket."""
    about = About.message(message, decision)
    original = original_text(message)
    out: list[Preview] = []
    for send in expand(decision, reply_recipient(message)):
        ctx = context(about, ruleset, kind=send.kind, rule=send.rule, owner=send.owner,
                      original=original)
        try:
            rendered = templates.render(send.template, ctx)
        except RulesError as exc:
            out.append(Preview(send.kind, send.to, send.template, "",
                               error="; ".join(exc.errors)))
            continue
        out.append(Preview(send.kind, send.to, send.template, rendered.text, rendered.html))
    return out
