"""`supportbot log TICKET`: the time-stamped activity log of one ticket."""

from __future__ import annotations

import argparse
import json

from bot.clock import to_iso
from bot.commands._common import open_store, record_id, setup
from bot.terminal import safe
from bot.vocab import REQUESTER_KINDS, OutboxStatus

ORDER = 40
# A message to the requester in one of these has not reached them (failed: never will).
_UNSENT = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("log", help="print a ticket's activity log",
                       description="Every decision and action for one ticket, time-stamped, "
                       "with the rule and the actor. TICKET is our id (42 or #42) or a Help "
                       "Scout conversation number.")
    p.add_argument("ticket", type=record_id,
                   help="ticket id or Help Scout conversation number")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        ticket = store.find_ticket(str(args.ticket))
        if ticket is None:
            print(f"supportbot: no ticket {args.ticket}")
            return 1
        entries = store.activity(ticket.id)
        if args.json:
            print(json.dumps({
                "ticket": ticket.id, "state": ticket.state, "subject": ticket.subject,
                "unsent": [{"kind": r.kind, "status": r.status, "error": r.last_error}
                           for r in store.ticket_outbox(ticket.id)
                           if r.kind in REQUESTER_KINDS and r.status in _UNSENT],
                "requester": ticket.requester, "priority": ticket.priority, "topic": ticket.topic,
                "owner": ticket.owner, "conversation_number": ticket.conversation_number,
                "activity": [{"at": to_iso(e.at), "actor": e.actor, "action": e.action,
                              "rule": e.rule, "detail": e.detail} for e in entries]}, indent=2))
            return 0
        unsent = [r for r in store.ticket_outbox(ticket.id)
                  if r.kind in REQUESTER_KINDS and r.status in _UNSENT]
        # the state says what the bot decided; say too when the requester has not heard it
        state = ticket.state + "".join(f"; {r.kind} not sent yet ({r.status}"
                                       + (f": {r.last_error})" if r.last_error else ")")
                                       for r in unsent)
        print(safe(f"Ticket #{ticket.id} [{state}] {ticket.subject!r} from {ticket.requester}"))
        print(f"  priority={ticket.priority} topic={ticket.topic} owner={ticket.owner or '-'}"
              + (f" helpscout=#{ticket.conversation_number}" if ticket.conversation_number else ""))
        for e in entries:
            rule = f" [rule {e.rule}]" if e.rule else ""
            print(safe(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<8} {e.action:<18} {e.detail}{rule}"))
        return 0
    finally:
        store.close()
