"""`supportbot explain FILE.eml [--json]`: what the bot would do with one email, and why.

Runs the same parser and the same `decide()` as the worker, then renders the previews.
The ``--json`` keys are a public contract (scripts and acceptance tests read them):
``ignored``, ``reason``, ``priority``, ``topic``, ``rules``, ``actions`` (each with
``kind`` and ``to``; a forward also ``notify``), plus ``trace``, ``owner``, ``tags``,
``followup``, ``previews`` and ``reply`` (null for a new ticket; for a reply on a ticket
found by its threading headers in the state, or given by ``--ticket N``: its ``ticket``,
``handling``, ``side``, ``reason`` and ``sender``: what the worker does with it as a reply,
never as a new ticket). Exactly one JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.commands._common import setup
from bot.errors import MalformedMessage
from bot.expand import Preview, previews
from bot.lifecycle.history import plan_reply
from bot.mail.addresses import reply_recipient
from bot.mail.parse import parse_message
from bot.model import Decision, Message
from bot.pipeline import joinable_ticket
from bot.rules.decide import decide
from bot.rules.reload import load_set
from bot.rules.team import Team
from bot.store import Store, Ticket
from bot.terminal import safe
from bot.vocab import ActionKind, Priority, SourceKind

ORDER = 31


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explain", help="show how one email would be handled, and why",
                       description="For one raw email: whether it is ignored as automated mail "
                       "and why, every rule with hit or miss and the reason, the decision, and "
                       "the text of every message that would be sent. Sends nothing.")
    p.add_argument("file", type=Path, help="a raw RFC 5322 message (.eml)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--source", choices=[s.value for s in SourceKind],
                   default=SourceKind.EMAIL.value, help="which source the message is treated as "
                   "(default: email)")
    p.add_argument("--ticket", type=_ticket_number, metavar="N",
                   help="explain the message as a reply on ticket N (default: the ticket its "
                   "threading headers name in the state, if any)")
    p.add_argument("--rules", type=Path, help="rules file (default: $SUPPORTBOT_RULES)")
    p.add_argument("--templates", type=Path, help="templates folder (default: "
                   "$SUPPORTBOT_TEMPLATES)")
    p.set_defaults(func=run)


def _ticket_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"'{text}' is not a ticket number")
    return int(text)


def action_json(action: Any, notify: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": action.kind, "to": list(action.to),
                           "template": action.template, "rule": action.rule}
    if action.kind == ActionKind.FORWARD:
        out["notify"] = notify
        out["notice_template"] = action.notice_template
    return out


def as_json(path: Path, source: str, message: Message | None, decision: Decision,
            shown: list[Preview], digest: str) -> dict[str, Any]:
    requester = reply_recipient(message) if message is not None else None
    notify = [requester] if requester else []
    return {
        "file": str(path),
        "source": source,
        "ignored": decision.ignored,
        "reason": decision.reason,
        "priority": decision.priority,
        "topic": decision.topic,
        "tags": list(decision.tags),
        "rules": list(decision.rules),
        "owner": decision.owner,
        "followup": decision.followup,
        "actions": [action_json(a, notify) for a in decision.actions],
        "trace": [{"rule": s.rule, "matched": s.matched, "reason": s.reason}
                  for s in decision.trace],
        "previews": [p.as_dict() for p in shown],
        "message": {
            "from": message.from_addr if message else None,
            "subject": message.subject if message else None,
            "message_id": message.message_id if message else None,
            "defects": list(message.defects) if message else [],
        },
        "rules_digest": digest,
    }


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    ruleset, templates = load_set(args.rules or settings.rules_path,
                                  args.templates or settings.templates_path)
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"supportbot: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    message: Message | None
    try:
        message = parse_message(raw, source=args.source, received_at=now)
    except MalformedMessage as exc:
        message = None
        decision = Decision(ignored=True, reason=f"malformed message (would be quarantined): "
                            f"{exc}")
    else:
        decision = decide(message, None, now, ruleset,
                          own_addresses=frozenset({settings.from_addr}),
                          own_domain=settings.from_domain)
    reply = None
    on: Ticket | None = None
    if message is not None and not decision.ignored:
        found = _reply_ticket(settings.state, message, args.ticket,
                              Team.of(ruleset.settings, settings.from_addr))
        if isinstance(found, str):
            print(f"supportbot: {found}", file=sys.stderr)
            return 2
        if found is not None:
            store, on = found
            try:
                reply = plan_reply(store, on, message, now, ruleset, settings.from_addr,
                                   recorded=False)
            finally:
                store.close()
            decision = reply.decision or Decision(
                ignored=False, reason=None, topic=on.topic, owner=on.owner, rules=on.rules,
                priority=Priority(on.priority) if on.priority else None)
            decision = replace(decision, trace=reply.trace)
    shown = previews(message, decision, ruleset, templates) if message is not None else []
    if args.json:
        out = as_json(args.file, args.source, message, decision, shown, ruleset.digest)
        out["reply"] = None if reply is None or on is None else {
            "ticket": on.id,
            "handling": reply.handling.value, "side": reply.side.value,
            "reason": reply.reason, "sender": reply.sender}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    text = render_text(args.file, args.source, message, decision, shown)
    if reply is not None and on is not None:
        text = text.replace("\nRules:", f"\nReply on ticket #{on.id} "
                            f"({on.state}, owner {on.owner or '-'}): "
                            f"{reply.handling}\n\nRules:", 1)
    print(safe(text))
    return 0


def _reply_ticket(state: Path | str, message: Message, number: int | None,
                  team: Team) -> tuple[Store, Ticket] | str | None:
    """The ticket the message is a reply on, from the state (never created by explain)."""
    if isinstance(state, Path) and not state.exists():
        return f"no state at {state}: cannot look up ticket #{number}" if number else None
    store = Store(state)
    ticket = store.get_ticket(number) if number else joinable_ticket(store, message, team)[0]
    if ticket is None:
        store.close()
        return f"ticket #{number} is not in {state}" if number else None
    return store, ticket


def render_text(path: Path, source: str, message: Message | None, decision: Decision,
                shown: list[Preview]) -> str:
    lines = [f"File:     {path} (as {source})"]
    if message is not None:
        sender = (f"{message.from_name} <{message.from_addr}>" if message.from_name
                  else message.from_addr)
        lines.append(f"From:     {sender}")
        lines.append(f"Subject:  {message.subject}")
    if decision.ignored:
        lines += ["", f"IGNORED: {decision.reason}", "Nothing would be sent."]
        return "\n".join(lines)
    lines += ["", "Rules:"]
    width = max((len(s.rule) for s in decision.trace), default=10)
    for step in decision.trace:
        mark = "HIT " if step.matched else ("skip" if step.reason.startswith("not evaluated")
                                           else "miss")
        lines.append(f"  {mark}  {step.rule:<{width}}  {step.reason}")
    lines += ["", "Decision:",
              f"  priority {decision.priority}, topic {decision.topic or '-'}, "
              f"tags {', '.join(decision.tags) or '-'}",
              f"  rules {', '.join(decision.rules) or '-'}; owner {decision.owner or '-'}; "
              f"follow-up schedule {'starts' if decision.followup else 'no'}"]
    lines += ["", "Would send:"]
    for p in shown:
        header = f"--- {p.kind} to {', '.join(p.to) or '(nobody)'} (template {p.template})"
        lines.append(header)
        if p.error:
            lines.append(f"    TEMPLATE ERROR: {p.error}")
            continue
        lines += [textwrap.indent(p.text.rstrip(), "    ")]
        if p.html is not None:
            lines.append("    (+ HTML alternative)")
    return "\n".join(lines)
