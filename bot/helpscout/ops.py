"""The Help Scout operations the planner records in the outbox, one per row.

A payload is the UTF-8 JSON of ONE operation, built here and executed by
`bot.channels.helpscout`. Payloads are byte-stable (sorted keys), complete (the reply
body is final HTML) and versioned (`"v": 1`), so a retry after a crash does the same
thing. What each bot action becomes in Help Scout:

- acknowledge / ask_info / answer / check_in / closure: a reply thread (`reply_op`);
- forward: `assign_op` + `note_op` naming the owner and the rule, and a reply telling
  the requester who has it;
- priority and rule tags: `tags_op`, merged into the conversation's tags.

Reply status rule: a reply reactivates the conversation unless a status is given, so
every reply names one: the ``helpscout_status`` of its kind's row in ``bot.vocab.KINDS``
(`pending` while waiting on the requester, `closed` for the closure, `active` otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.helpscout.text import text_to_html
from bot.vocab import REPLY_STATUSES, HelpScoutStatus

VERSION = 1
_STATUSES: frozenset[HelpScoutStatus] = frozenset(HelpScoutStatus)


def _names(statuses: frozenset[HelpScoutStatus]) -> list[str]:
    return sorted(s.value for s in statuses)


@dataclass(frozen=True)
class ReplyOp:
    conversation_id: int
    customer_id: int
    body: str
    status: HelpScoutStatus
    marker: str
    user_id: int | None = None


@dataclass(frozen=True)
class NoteOp:
    conversation_id: int
    body: str
    marker: str


@dataclass(frozen=True)
class AssignOp:
    conversation_id: int
    user_id: int


@dataclass(frozen=True)
class TagsOp:
    conversation_id: int
    add: tuple[str, ...]


@dataclass(frozen=True)
class StatusOp:
    conversation_id: int
    status: HelpScoutStatus


Op = ReplyOp | NoteOp | AssignOp | TagsOp | StatusOp


def _encode(op: str, **fields: Any) -> bytes:
    return json.dumps({"v": VERSION, "op": op, **fields}, sort_keys=True,
                      ensure_ascii=False).encode()


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _marker(marker: str) -> str:
    if not isinstance(marker, str) or not marker.strip():
        raise ValueError("a marker (the outbox key) is required to recognise the thread later")
    return marker


def normalise_tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Lower-case, trimmed, de-duplicated, in order (Help Scout lower-cases tag names)."""
    return tuple(dict.fromkeys(t.strip().lower() for t in tags if t and t.strip()))


def reply_op(conversation_id: int, customer_id: int, text: str, html: str | None,
             status: HelpScoutStatus, marker: str, *, user_id: int | None = None) -> bytes:
    """A reply thread to the customer. ``customer_id`` 0 means "the conversation's own"."""
    if status not in REPLY_STATUSES:
        raise ValueError(f"reply status must be one of {_names(REPLY_STATUSES)}, not {status!r}")
    body = html if html and html.strip() else text_to_html(text)
    fields: dict[str, Any] = {
        "conversation_id": _positive("conversation_id", conversation_id),
        "customer_id": _positive("customer_id", customer_id), "body": body,
        "status": status, "marker": _marker(marker)}
    if user_id is not None:
        fields["user_id"] = _positive("user_id", user_id)
    return _encode("reply", **fields)


def note_op(conversation_id: int, text: str, marker: str) -> bytes:
    """An internal note: seen by agents only."""
    return _encode("note", conversation_id=_positive("conversation_id", conversation_id),
                   body=text_to_html(text), marker=_marker(marker))


def assign_op(conversation_id: int, user_id: int) -> bytes:
    return _encode("assign", conversation_id=_positive("conversation_id", conversation_id),
                   user_id=_positive("user_id", user_id))


def tags_op(conversation_id: int, add: list[str]) -> bytes:
    tags = normalise_tags(add)
    if not tags:
        raise ValueError("tags_op needs at least one tag")
    return _encode("tags", conversation_id=_positive("conversation_id", conversation_id),
                   add=list(tags))


def status_op(conversation_id: int, status: HelpScoutStatus) -> bytes:
    if status not in _STATUSES:
        raise ValueError(f"status must be one of {_names(_STATUSES)}, not {status!r}")
    return _encode("status", conversation_id=_positive("conversation_id", conversation_id),
                   status=status)


def parse_op(payload: bytes) -> Op:
    """The operation in an outbox payload; ValueError when it is not one we wrote."""
    try:
        data = json.loads(payload.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON operation: {exc}") from exc
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("not a version-1 Help Scout operation")
    try:
        kind = data["op"]
        conv = int(data["conversation_id"])
        if kind == "reply":
            status = data["status"]
            if status not in REPLY_STATUSES:
                raise ValueError(f"bad reply status {status!r}")
            user = data.get("user_id")
            return ReplyOp(conv, int(data["customer_id"]), str(data["body"]),
                           HelpScoutStatus(status),
                           str(data["marker"]), int(user) if user is not None else None)
        if kind == "note":
            return NoteOp(conv, str(data["body"]), str(data["marker"]))
        if kind == "assign":
            return AssignOp(conv, int(data["user_id"]))
        if kind == "tags":
            return TagsOp(conv, normalise_tags([str(t) for t in data["add"]]))
        if kind == "status":
            if data["status"] not in _STATUSES:
                raise ValueError(f"bad status {data['status']!r}")
            return StatusOp(conv, HelpScoutStatus(data["status"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"incomplete {data.get('op')!r} operation: {exc}") from exc
    raise ValueError(f"unknown operation {data.get('op')!r}")
