"""The last look before a reply: what status it may carry, or whether to send it at all.

Between the poll that planned a reply and the moment it is sent, people act in Help Scout.
The reply's status is therefore computed from the conversation as just read, never taken
blindly from the plan: a reply must not undo what an agent did in between.

- closed or spam now: the reply is not sent (sending would reopen it, or answer a spammer);
- an agent answered, or took the conversation, after the customer last wrote (for a
  reply to the customer's words: an acknowledgement, an answer, a question) or after the
  follow-up was planned (a check-in, a closure): a person is on it, the reply is not sent;
- pending now and the plan said active: it stays pending (the agent is waiting on the
  customer; our acknowledgement must not claim the team has the next move);
- otherwise the planned status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.helpscout import marker
from bot.helpscout.client import parse_time
from bot.vocab import HelpScoutStatus, LineItem, MessageKind

ENDED = frozenset({HelpScoutStatus.CLOSED, HelpScoutStatus.SPAM})


FOLLOW_UPS = frozenset({MessageKind.CHECK_IN, MessageKind.CLOSURE})


def reply_status_now(planned: HelpScoutStatus, conversation: dict[str, Any],
                     own_user_id: int | None, *, kind: str,
                     planned_at: datetime | None) -> tuple[HelpScoutStatus | None, str]:
    """The status to send (None: do not send) and why, from the conversation as read now."""
    current = conversation.get("status")
    if current in ENDED:
        return None, f"not sent: the conversation is {current} in Help Scout"
    follow_up = kind in FOLLOW_UPS
    person = _agent_after(conversation, own_user_id, planned_at if follow_up else None)
    if person is not None:
        since = "it was planned" if follow_up else "the customer wrote"
        return None, f"not sent: {person} has answered or taken it since {since}"
    if current == HelpScoutStatus.PENDING and planned == HelpScoutStatus.ACTIVE:
        return HelpScoutStatus.PENDING, "kept pending: an agent is waiting on the customer"
    return planned, ""


def _agent_after(conversation: dict[str, Any], own_user_id: int | None,
                 since: datetime | None) -> str | None:
    """The agent whose reply or assignment came after ``since`` (None: after the customer's
    latest thread)."""
    embedded = conversation.get("_embedded")
    threads = embedded.get("threads") if isinstance(embedded, dict) else None
    latest_customer: datetime | None = None
    agent: tuple[datetime, str] | None = None
    for thread in threads or []:
        created = parse_time(thread.get("createdAt"))
        if created is None or thread.get("state", "published") != "published":
            continue
        kind = thread.get("type")
        if kind == "customer":
            latest_customer = max(created, latest_customer or created)
        elif ((kind == "message" or _taken(thread)) and _by_a_person(thread, own_user_id)
              and (agent is None or created > agent[0])):
            by = thread.get("createdBy") or {}
            name = " ".join(str(by.get(k) or "") for k in ("first", "last")).strip()
            agent = (created, name or str(by.get("email") or "an agent"))
    after = since if since is not None else latest_customer
    if agent is None or (after is not None and agent[0] < after):
        return None
    return agent[1]


def _taken(thread: dict[str, Any]) -> bool:
    """An assignment made by hand (the bot's own, and other apps', come through the API)."""
    source = thread.get("source") or {}
    return (thread.get("type") == "lineitem" and source.get("type") != "api"
            and (thread.get("action") or {}).get("type") == LineItem.ASSIGNEE)


def _by_a_person(thread: dict[str, Any], own_user_id: int | None) -> bool:
    if marker.is_ours(thread.get("body")):
        return False
    by = thread.get("createdBy") or {}
    source = thread.get("source") or {}
    if by.get("type") not in (None, "user"):
        return False
    return not (own_user_id is not None and by.get("id") == own_user_id
                and source.get("type") == "api")
