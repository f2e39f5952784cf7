"""What a decision would send, rendered, without a ticket in the store: for `explain`.

The context mirrors the one the planner renders with for a real ticket; the ticket number
is not known yet, so the reference reads ``[#new]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.errors import RulesError
from bot.mail.addresses import reply_recipient
from bot.model import Action, Decision, Message
from bot.rules.durations import humanise
from bot.rules.match import Facts
from bot.rules.ruleset import RuleSet
from bot.templates import Templates


@dataclass(frozen=True)
class Preview:
    kind: str  # acknowledge, ask_info, answer, forward (to the owner), forwarded, alert
    to: tuple[str, ...]
    template: str
    text: str
    html: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "to": list(self.to), "template": self.template,
                "text": self.text, "html": self.html, "error": self.error}


def preview_context(message: Message, decision: Decision, ruleset: RuleSet, *, kind: str,
                    rule: str, owner: str | None) -> dict[str, Any]:
    s = ruleset.settings
    requester = reply_recipient(message) or message.from_addr
    first = message.from_name.split()
    return {
        "name": first[0] if first else "there",
        "requester": requester,
        "requester_name": message.from_name or requester,
        "ticket_id": 0,
        "ticket_ref": "[#new]",
        "subject": message.subject or "your request",
        "owner": owner or "",
        "owner_name": s.owner_name(owner) if owner else "",
        "topic": decision.topic or "",
        "priority": decision.priority or "normal",
        "rule": rule,
        "team_name": s.team_name,
        "signature": s.signature,
        "original_text": Facts(message).body[:20000],
        "check_in_after": humanise(s.check_in_after),
        "close_after": humanise(s.close_after),
        "kind": kind,
    }


def previews(message: Message, decision: Decision, ruleset: RuleSet,
             templates: Templates) -> list[Preview]:
    """One rendered message per send: a forward gives the owner's copy and the notice."""
    out: list[Preview] = []
    for action in decision.actions:
        owner = decision.owner if action.kind != "forward" else None
        if action.kind == "forward":
            for target in action.to:
                out.append(_render(message, decision, ruleset, templates, action, "forward",
                                   (target,), action.template, target))
            requester = reply_recipient(message)
            out.append(_render(message, decision, ruleset, templates, action, "forwarded",
                               (requester,) if requester else (),
                               action.notice_template or "forwarded",
                               action.to[0] if action.to else None))
        else:
            out.append(_render(message, decision, ruleset, templates, action, action.kind,
                               action.to, action.template, owner))
    return out


def _render(message: Message, decision: Decision, ruleset: RuleSet, templates: Templates,
            action: Action, kind: str, to: tuple[str, ...], template: str,
            owner: str | None) -> Preview:
    ctx = preview_context(message, decision, ruleset, kind=kind, rule=action.rule, owner=owner)
    try:
        rendered = templates.render(template, ctx)
    except RulesError as exc:
        return Preview(kind, to, template, "", error="; ".join(exc.errors))
    return Preview(kind, to, template, rendered.text, rendered.html)
