"""`supportbot status [--json]`: what an operator checks first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bot.clock import to_iso
from bot.commands._common import open_store, setup
from bot.store import Store
from bot.tickets import stranded

ORDER = 41


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="open tickets, timers, sources, outbox, failures",
                       description="Open tickets by state, timers due next, last successful "
                       "read per source, outbox backlog, failed sends, quarantined messages.")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def collect(store: Store) -> dict[str, Any]:
    outbox = store.outbox_counts()
    return {
        "tickets": store.tickets_by_state(),
        "messages": store.message_counts(),
        "timers_next": [{"ticket": t.ticket_id, "kind": t.kind, "due_at": to_iso(t.due_at)}
                        for t in store.pending_timers(limit=10)],
        "sources": {k.split(":", 1)[1].rsplit(":last_read", 1)[0]: v
                    for k, v in store.meta_items("source:").items()},
        "outbox": {"pending": outbox.get("pending", 0), "sending": outbox.get("sending", 0),
                   "sent": outbox.get("sent", 0), "failed": outbox.get("failed", 0),
                   "suppressed": outbox.get("suppressed", 0)},
        "failed_sends": [{"id": r.id, "ticket": r.ticket_id, "kind": r.kind,
                          "to": list(r.recipients), "error": r.last_error,
                          "at": to_iso(r.created_at)} for r in store.failed_sends()],
        "timers_failed": [{"ticket": t.ticket_id, "kind": t.kind,
                           "at": to_iso(t.done_at) if t.done_at else None, "reason": t.note}
                          for t in store.failed_timers()],
        "quarantined": [{"id": r.id, "ref": r.ref, "error": r.error, "at": to_iso(r.at)}
                        for r in store.quarantined()],
        "undeliverable": [{"address": r.address, "at": to_iso(r.at), "reason": r.reason}
                          for r in store.undeliverable()],
        "heartbeat": store.get_meta("heartbeat"),
        "rules_reload": {"ok": store.get_meta("rules:last_reload_ok"),
                         "at": store.get_meta("rules:last_reload_at")},
        "promise_missed": len([a for a in store.activity(limit=5000)
                               if a.action == "promise missed"]),
        # open tickets with no owner and nothing pending: nobody will act on them
        "stranded": stranded(store),
    }


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        data = collect(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("Tickets: " + (", ".join(f"{k} {v}" for k, v in sorted(data["tickets"].items()))
                         or "none"))
    print("Messages: " + (", ".join(f"{k} {v}" for k, v in sorted(data["messages"].items()))
                          or "none"))
    print("Outbox: " + ", ".join(f"{k} {v}" for k, v in data["outbox"].items()))
    print(f"Heartbeat: {data['heartbeat'] or 'never'}")
    for name, at in data["sources"].items():
        print(f"Source {name}: last read {at}")
    if data["timers_next"]:
        print("Next timers:")
        for t in data["timers_next"]:
            print(f"  {t['due_at'][:19]}  {t['kind']:<18} ticket #{t['ticket']}")
    for f in data["failed_sends"]:
        print(f"Failed/suppressed send #{f['id']} ({f['kind']}, ticket #{f['ticket']}) to "
              f"{', '.join(f['to'])}: {f['error']}")
    for t in data["timers_failed"]:
        print(f"Failed timer {t['kind']} (ticket #{t['ticket']}): {t['reason']}")
    for q in data["quarantined"]:
        print(f"Quarantined #{q['id']} {q['ref']}: {q['error']}")
    for u in data["undeliverable"]:
        print(f"Undeliverable {u['address']} since {u['at']}: {u['reason']}")
    if data["promise_missed"]:
        print(f"One-hour promise missed: {data['promise_missed']} ticket(s)")
    if data["stranded"]:
        print("Stranded (open, no owner, nothing pending): "
              + ", ".join(f"#{n}" for n in data["stranded"]))
    return 0
