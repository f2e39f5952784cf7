"""`supportbot explain FILE.eml [--json]`: what the bot would do with one email, and why.

Runs the same parser and the same `decide()` as the worker, then renders the previews.
The ``--json`` keys are a public contract (scripts and acceptance tests read them):
``ignored``, ``reason``, ``priority``, ``topic``, ``rules``, ``actions`` (each with
``kind`` and ``to``; a forward also ``notify``), plus ``trace``, ``owner``, ``tags``,
``followup`` and ``previews``. Exactly one JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.commands._common import setup
from bot.errors import MalformedMessage
from bot.expand import Preview, previews
from bot.mail.addresses import reply_recipient
from bot.mail.parse import parse_message
from bot.model import Decision, Message
from bot.rules.decide import decide
from bot.rules.reload import load_set

ORDER = 31


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explain", help="show how one email would be handled, and why",
                       description="For one raw email: whether it is ignored as automated mail "
                       "and why, every rule with hit or miss and the reason, the decision, and "
                       "the text of every message that would be sent. Sends nothing.")
    p.add_argument("file", type=Path, help="a raw RFC 5322 message (.eml)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--source", choices=("email", "imap", "maildir", "helpscout"),
                   default="email", help="which source the message is treated as "
                   "(default: email)")
    p.add_argument("--rules", type=Path, help="rules file (default: $SUPPORTBOT_RULES)")
    p.add_argument("--templates", type=Path, help="templates folder (default: "
                   "$SUPPORTBOT_TEMPLATES)")
    p.set_defaults(func=run)


def action_json(action: Any, notify: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": action.kind, "to": list(action.to),
                           "template": action.template, "rule": action.rule}
    if action.kind == "forward":
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
    shown = previews(message, decision, ruleset, templates) if message is not None else []
    if args.json:
        print(json.dumps(as_json(args.file, args.source, message, decision, shown,
                                 ruleset.digest), indent=2, ensure_ascii=False))
        return 0
    print(render_text(args.file, args.source, message, decision, shown))
    return 0


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
