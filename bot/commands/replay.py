"""`supportbot replay --rules CANDIDATE.yaml [--days N]`: review a rules change on real tickets.

Re-decides every ticket the bot opened in the last N days with the rules in force and with
the candidate, and prints what would change, ticket by ticket. Sends nothing and writes
nothing: it reads the store's copy of each original message.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.commands._common import open_store, positive_days, setup
from bot.lifecycle.history import ledger_message
from bot.model import Decision
from bot.rules.decide import decide
from bot.rules.load import load_ruleset
from bot.templates import Templates
from bot.vocab import ActionKind

ORDER = 33


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="show how a candidate rules file would change past tickets",
                       description="Re-decide the tickets of the last N days with a candidate "
                       "rules file and print what would change. Nothing is sent or stored.")
    p.add_argument("--rules", type=Path, required=True, help="the candidate rules.yaml")
    p.add_argument("--templates", type=Path, help="templates folder for the candidate")
    p.add_argument("--days", type=positive_days, default=7.0, help="how far back (default 7)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def summary(d: Decision) -> dict[str, Any]:
    primary = next((a for a in d.actions if a.kind != ActionKind.ALERT), None)
    return {"ignored": d.ignored, "priority": d.priority, "topic": d.topic,
            "action": primary.kind if primary else None, "owner": d.owner,
            "rules": list(d.rules)}


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    current_templates = Templates(settings.templates_path)
    current = load_ruleset(settings.rules_path, current_templates)
    candidate_templates = Templates(args.templates or settings.templates_path)
    candidate = load_ruleset(args.rules, candidate_templates)
    now = datetime.now(UTC)
    store = open_store(settings)
    own = frozenset({settings.from_addr})
    changes: list[dict[str, Any]] = []
    total = 0
    try:
        for row in store.messages_since(now - timedelta(days=args.days)):
            total += 1
            msg = ledger_message(row)
            before = summary(decide(msg, None, now, current, own_addresses=own,
                                    own_domain=settings.from_domain))
            after = summary(decide(msg, None, now, candidate, own_addresses=own,
                                   own_domain=settings.from_domain))
            diff = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
            if diff:
                changes.append({"ticket": row.entry.ticket_id, "from": row.entry.from_addr,
                                "subject": row.entry.subject, "changes": diff})
    finally:
        store.close()
    if args.json:
        print(json.dumps({"tickets": total, "changed": len(changes), "changes": changes},
                         indent=2))
        return 0
    for c in changes:
        print(f"#{c['ticket']} {c['from']} {c['subject']!r}")
        for key, (old, new) in c["changes"].items():
            print(f"    {key}: {old} -> {new}")
    print(f"{len(changes)} of {total} ticket(s) from the last {args.days:g} day(s) would change "
          f"with {args.rules}")
    return 0
