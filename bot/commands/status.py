"""`supportbot status [--json]`: what an operator checks first, the verdict on the first line.

The first line is ``ok`` or ``degraded: <the first cause>``, the same judgement `health`
makes (bot/health.py), said as soon as a part fails rather than after the health window.
Then each source's last successful read or poll (a quiet mailbox is not a broken one) and
last error, each channel's last success and failure, the rules reload, overdue timers,
replies that have not reached their requester, the outbox, and only what is still live.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from bot import health
from bot.clock import SystemClock, to_iso
from bot.commands._common import open_store, setup
from bot.config import Settings
from bot.store import Store, TimerRow
from bot.store.store import WORKER_LEASE
from bot.tickets import stranded
from bot.vocab import REQUESTER_KINDS, ChannelName, HealthPart, OutboxStatus

ORDER = 41
_UNSENT_SHOWN = 20
_LATE = timedelta(minutes=1)  # a timer due this long ago should have fired: it is overdue


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="ok or degraded (and why); sources, channels, backlog",
                       description="First line: 'ok', or 'degraded: <cause>'. Then each "
                       "source's last successful read/poll and last error, each channel's "
                       "last success and failure, a rejected rules reload, overdue timers, "
                       "replies not yet sent, the outbox, failed sends and quarantine.")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def collect(store: Store, settings: Settings | None = None,
            now: datetime | None = None) -> dict[str, Any]:
    now = now or SystemClock().now()
    failing_seconds = settings.health_failing_seconds if settings else 300.0
    max_age = settings.health_max_age_seconds if settings else 300.0
    verdict = health.assess(store, now, failing_seconds=failing_seconds,
                            heartbeat_max_age=max_age)
    cause = verdict.first_cause(unhealthy_only=False)
    outbox = store.outbox_counts()
    last_mail = {k.split(":", 1)[1].rsplit(":last_read", 1)[0]: v
                 for k, v in store.meta_items("source:").items()}
    quarantine_retry = store.quarantined("retry")
    return {
        "state": "ok" if cause is None else "degraded",
        "headline": "ok" if cause is None else f"degraded: {cause.line}",
        "healthy": verdict.healthy,
        "parts": [{"part": f.part, "name": f.name, "ok": f.ok, "unhealthy": f.unhealthy,
                   "line": f.line, "since": f.since, **f.detail} for f in verdict.findings],
        "sources": {name: asdict_record(r) for name, r in
                    health.records(store, HealthPart.SOURCE).items()},
        "last_new_mail": last_mail,
        # several workers on one PostgreSQL: who is alive, and who reads which source
        "workers": workers(store, now),
        "channels": {name: asdict_record(r) for name, r in
                     health.records(store, HealthPart.CHANNEL).items()},
        "tickets": store.tickets_by_state(),
        "messages": {k: v for k, v in store.message_counts().items() if k != "quarantined"},
        "unsent_replies": unsent_replies(store),
        "timers_overdue": [_timer(t) for t in store.due_timers(now - _LATE, limit=_UNSENT_SHOWN)],
        "timers_next": [_timer(t) for t in store.pending_timers(limit=10)],
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
        "quarantine_retry": len(quarantine_retry),
        "undeliverable": [{"address": r.address, "at": to_iso(r.at), "reason": r.reason}
                          for r in store.undeliverable()],
        "heartbeat": store.get_meta(health.HEARTBEAT),
        "rules_reload": {"ok": store.get_meta(health.RULES_OK) != "0",
                         "at": store.get_meta(health.RULES_AT),
                         "errors": json.loads(store.get_meta(health.RULES_ERRORS) or "[]")},
        "promise_missed": len([a for a in store.activity(limit=5000)
                               if a.action == "promise missed"]),
        # open tickets with no owner and nothing pending: nobody will act on them
        "stranded": stranded(store),
    }


def workers(store: Store, now: datetime) -> dict[str, Any]:
    alive, reads = [], {}
    for name, (holder, until) in store.leases().items():
        if until <= now:
            continue  # its holder is gone; the lease is free to take
        if name.startswith(WORKER_LEASE):
            alive.append(holder)
        else:
            reads[name.removeprefix("source:")] = holder
    return {"alive": sorted(alive), "reading": reads}


def asdict_record(record: health.PartRecord) -> dict[str, str | None]:
    return {"last_success": record.last_success, "last_failure": record.last_failure,
            "failing_since": record.failing_since, "error": record.error}


def _timer(row: TimerRow) -> dict[str, Any]:
    return {"ticket": row.ticket_id, "kind": row.kind, "due_at": to_iso(row.due_at)}


def unsent_replies(store: Store) -> list[dict[str, Any]]:
    """Messages to requesters that have not reached them (the ticket's state says answered,
    the requester has not heard yet)."""
    far = SystemClock().now() + timedelta(days=36500)
    rows = [*store.in_doubt_outbox(), *store.due_outbox(far, list(ChannelName), limit=200)]
    result = []
    for row in rows:
        if row.kind not in REQUESTER_KINDS:
            continue
        result.append({"ticket": row.ticket_id, "kind": row.kind, "to": list(row.recipients),
                       "status": row.status, "attempts": row.attempts,
                       "next_attempt_at": to_iso(row.next_attempt_at), "error": row.last_error})
    return result[:_UNSENT_SHOWN]


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        data = collect(store, settings)
    finally:
        store.close()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for line in render(data):
        print(line)
    return 0


def render(data: dict[str, Any]) -> list[str]:
    """The text form, most important first."""
    out = [data["headline"]]
    problems = [p for p in data["parts"] if not p["ok"]]
    for p in problems[1:]:
        out.append(f"  also: {p['line']}")
    out.append("Sources:" if data["sources"] else "Sources: none has been read yet")
    for name, r in data["sources"].items():
        out.append(f"  {name}: last successful read {_at(r['last_success'])}"
                   + _failure(r))
    for name, at in data["last_new_mail"].items():
        out.append(f"  ({name}: last new mail {_at(at)})")
    w = data["workers"]
    if len(w["alive"]) > 1 or any(h not in w["alive"] for h in w["reading"].values()):
        out.append(f"Workers: {len(w['alive'])} alive")
        out += [f"  {source} read by {holder}" for source, holder in w["reading"].items()]
    out.append("Channels:" if data["channels"] else "Channels: nothing sent yet")
    for name, r in data["channels"].items():
        out.append(f"  {name}: last success {_at(r['last_success'])}" + _failure(r))
    rules = data["rules_reload"]
    if rules["ok"]:
        out.append("Rules: ok")
    else:
        out.append(f"Rules: last reload REJECTED at {_at(rules['at'])}; the previous rules "
                   "stay in force, but a restart would fail:")
        out += [f"  {e}" for e in rules["errors"]]
    out.append("Tickets: " + (", ".join(f"{k} {v}" for k, v in sorted(data["tickets"].items()))
                              or "none"))
    for u in data["unsent_replies"]:
        pending = u["status"] == OutboxStatus.PENDING
        out.append(f"  #{u['ticket']}: {u['kind']} to {', '.join(u['to'])} not sent yet "
                   f"({u['status']}, {u['attempts']} attempt(s)"
                   + (f", next {_at(u['next_attempt_at'])}" if pending else "")
                   + (f"): {u['error']}" if u["error"] else ")"))
    out.append("Messages: " + (", ".join(f"{k} {v}" for k, v in sorted(data["messages"].items()))
                               or "none"))
    out.append("Outbox: " + ", ".join(f"{k} {v}" for k, v in data["outbox"].items()))
    out.append(f"Heartbeat (last successful cycle): {_at(data['heartbeat'])}")
    if data["timers_overdue"]:
        out.append("Overdue timers:")
        out += [f"  {t['due_at'][:19]}  {t['kind']:<18} ticket #{t['ticket']}"
                for t in data["timers_overdue"]]
    if data["timers_next"]:
        out.append("Next timers:")
        out += [f"  {t['due_at'][:19]}  {t['kind']:<18} ticket #{t['ticket']}"
                for t in data["timers_next"]]
    for f in data["failed_sends"]:
        out.append(f"Failed/suppressed send #{f['id']} ({f['kind']}, ticket #{f['ticket']}) to "
                   f"{', '.join(f['to'])}: {f['error']}")
    for t in data["timers_failed"]:
        out.append(f"Failed timer {t['kind']} (ticket #{t['ticket']}): {t['reason']}")
    if data["quarantined"] or data["quarantine_retry"]:
        out.append(f"Quarantine: {len(data['quarantined'])} held"
                   + (f", {data['quarantine_retry']} queued for retry"
                      if data["quarantine_retry"] else ""))
        out += [f"  #{q['id']} {q['ref']}: {q['error']}" for q in data["quarantined"]]
    for u in data["undeliverable"]:
        out.append(f"Undeliverable {u['address']} since {u['at']}: {u['reason']}")
    if data["promise_missed"]:
        out.append(f"One-hour promise missed: {data['promise_missed']} ticket(s)")
    if data["stranded"]:
        out.append("Stranded (open, no owner, nothing pending): "
                   + ", ".join(f"#{n}" for n in data["stranded"]))
    return out


def _at(iso: str | None) -> str:
    return "never" if not iso else iso[:19].replace("T", " ")


def _failure(r: dict[str, str | None]) -> str:
    if r["failing_since"]:
        return f"; FAILING since {_at(r['failing_since'])}: {r['error']}"
    if r["last_failure"]:
        return f"; last error {_at(r['last_failure'])}: {r['error']}"
    return "; no error"

