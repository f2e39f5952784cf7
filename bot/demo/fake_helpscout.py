"""The demo's fake Help Scout: a small stateful fake of the Mailbox API v2.

`supportbot demo` (bot/demo/run.py) serves it so the bot can be watched end to end without
an account; it is also a supported test double, used by the tests and benchmarks.

It implements the subset the bot uses, shaped like the documented answers (see
tests/fixtures/helpscout): the token endpoint, conversations (list with mailbox /
status / modifiedSince / sortField / sortOrder / page / embed=threads, get, threads,
reply, notes, PATCH /assignTo and /status, PUT tags) and users. It enforces the
per-plan budget over a sliding window (writes cost 2) with Help Scout's headers and 429
body, counts requests, units and 429s per endpoint, and can inject faults: error
statuses, 429 storms, delays, connections cut (before or after the write took effect),
expired tokens, merged (301 for 60 days, then 404) and deleted (404) conversations, the
100-thread limit (412). The people in the account act on it too: agents reply, change a
status or assign without a reply (a `lineitem` thread, as Help Scout records it), merge.

Serve it for real on loopback (`with fake.serve() as base_url:`), or in-process with
`fake.transport()` (an `httpx.MockTransport`). Give it the same clock as the client
when that clock is fake, so token expiry and rate windows agree. The worker never
imports this module; only the demo and tests do.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from bot.clock import Clock, SystemClock

FaultKind = Literal["status", "rate_limit", "delay", "cut"]
STATUSES = ("active", "pending", "closed", "spam")
SORT_FIELDS = ("createdAt", "customerEmail", "customerName", "mailboxid", "modifiedAt",
               "number", "score", "status", "subject")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Requests per minute by plan (Help Scout's documentation); the Free plan has no API.
PLAN_LIMITS = {"standard": 200, "plus": 400, "pro": 800}
MERGE_REDIRECT_DAYS = 60  # a merged conversation answers 301 this long, then 404
DEFAULT_USERS = (
    {"id": 11, "firstName": "Ana", "lastName": "Ruiz", "email": "ana@support.example"},
    {"id": 12, "firstName": "Desmond", "lastName": "Reid", "email": "desmond@support.example"},
    {"id": 99, "firstName": "Support", "lastName": "Bot", "email": "bot@support.example"},
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    """What to do to the next ``times`` requests matching ``method`` and ``path`` (regex).

    ``status``: answer that status with an error body; ``rate_limit``: a 429 with
    Retry-After ``seconds``; ``delay``: wait ``seconds`` first; ``cut``: close the
    connection without an answer. ``after_commit``: the request takes effect first,
    so the caller cannot know it did (the unknown-outcome case).
    """

    kind: FaultKind
    times: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 500
    seconds: float = 1.0
    after_commit: bool = False

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, path) is not None))


@dataclass
class FakeStats:
    requests: int = 0
    units: int = 0
    rate_limited: int = 0
    tokens_issued: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    units_by_endpoint: Counter[str] = field(default_factory=Counter)
    rate_limited_by_endpoint: Counter[str] = field(default_factory=Counter)


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False
    delay: float = 0.0


@dataclass
class _Conversation:
    id: int
    number: int
    mailbox_id: int
    subject: str
    customer: dict[str, Any]
    created_at: datetime
    modified_at: datetime
    status: str = "active"
    assignee: int | None = None
    tags: list[str] = field(default_factory=list)
    threads: list[dict[str, Any]] = field(default_factory=list)
    merged_into: int | None = None
    merged_at: datetime | None = None
    deleted: bool = False


class _Error(Exception):
    def __init__(self, status: int, message: str,
                 errors: list[tuple[str, str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


class FakeHelpScout:
    def __init__(self, *, mailbox_id: int = 42, limit: int | None = None, plan: str = "plus",
                 window_seconds: float = 60.0,
                 clock: Clock | None = None, app_id: str = "fake-app-id",
                 app_secret: str = "fake-app-secret", token_ttl: int = 172800,
                 page_size: int = 25, thread_page_size: int = 50, max_threads: int = 100,
                 owner_user_id: int = 99) -> None:
        self.mailbox_id = mailbox_id
        if plan not in PLAN_LIMITS:
            raise ValueError(f"plan must be one of {sorted(PLAN_LIMITS)} (Free has no API)")
        self.limit = limit if limit is not None else PLAN_LIMITS[plan]
        self.window_seconds = window_seconds
        self.clock = clock or SystemClock()
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.thread_page_size = thread_page_size
        self.max_threads = max_threads
        self.owner_user_id = owner_user_id
        self.users = [dict(u) for u in DEFAULT_USERS]
        self.stats = FakeStats()
        self.faults: list[Fault] = []
        self.requests_log: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self._lock = threading.RLock()
        self._conversations: dict[int, _Conversation] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, datetime] = {}
        self._spent: deque[tuple[float, int]] = deque()  # (when, units): the sliding window
        self._next_conversation = 7001
        self._next_number = 1201
        self._next_thread = 9001
        self._next_customer = 501
        self.base_url = "https://api.helpscout.net"

    # -- driving the fake -------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC).replace(microsecond=0)

    def _customer(self, email: str, name: str = "") -> dict[str, Any]:
        email = email.lower()
        if email not in self._customers:
            first, _, last = name.partition(" ")
            self._customers[email] = {"id": self._next_customer, "email": email,
                                      "first": first, "last": last}
            self._next_customer += 1
        return self._customers[email]

    def _take_thread_id(self) -> int:
        thread_id = self._next_thread
        self._next_thread += 1
        return thread_id

    def _thread(self, conv: _Conversation, kind: str, body: str, by: dict[str, Any], *,
                status: str, at: datetime, source: dict[str, str],
                action: str | None = None,
                action_type: str = "changed-ticket-status") -> int:
        thread_id = self._take_thread_id()
        thread: dict[str, Any] = {
            "id": thread_id, "type": kind, "status": status, "state": "published",
            "source": source, "createdBy": by, "createdAt": at,
            "customer": {"id": conv.customer["id"], "email": conv.customer["email"]},
            "to": [conv.customer["email"]] if kind == "message" else ["support@example.com"],
            "cc": [], "bcc": []}
        if action is not None:
            thread["action"] = {"type": action_type, "text": action,
                                "associatedEntities": {}}
        else:
            thread["body"] = body
        conv.threads.append(thread)
        conv.modified_at = max(conv.modified_at, at)
        return thread_id

    def add_conversation(self, subject: str, customer_email: str, body: str, *,
                         created_at: datetime | None = None, customer_name: str = "",
                         tags: tuple[str, ...] = (), mailbox_id: int | None = None,
                         status: str = "active") -> int:
        """A new conversation with one customer thread; returns its id."""
        with self._lock:
            at = (created_at or self._now()).astimezone(UTC)
            customer = self._customer(customer_email, customer_name)
            conv = _Conversation(
                id=self._next_conversation, number=self._next_number,
                mailbox_id=mailbox_id or self.mailbox_id, subject=subject, customer=customer,
                created_at=at, modified_at=at, status=status, tags=[t.lower() for t in tags])
            self._next_conversation += 1
            self._next_number += 1
            self._conversations[conv.id] = conv
            self._thread(conv, "customer", body, self._customer_person(customer), status="active",
                         at=at, source={"type": "email", "via": "customer"})
            return conv.id

    def add_customer_reply(self, conversation_id: int, body: str, *,
                           at: datetime | None = None) -> int:
        """The customer writes again: a new customer thread, the conversation active."""
        with self._lock:
            conv = self._live(conversation_id)
            when = (at or self._now()).astimezone(UTC)
            conv.status = "active"
            return self._thread(conv, "customer", body, self._customer_person(conv.customer),
                                status="active", at=when,
                                source={"type": "email", "via": "customer"})

    def add_agent_reply(self, conversation_id: int, body: str, *, user_id: int = 11,
                        status: str = "pending", at: datetime | None = None) -> int:
        """An agent answers from the Help Scout web app."""
        with self._lock:
            conv = self._live(conversation_id)
            conv.status = status
            return self._thread(conv, "message", body, self._user_person(user_id),
                                status=status, at=(at or self._now()).astimezone(UTC),
                                source={"type": "web", "via": "user"})

    def set_status(self, conversation_id: int, status: str, *, user_id: int = 11,
                   at: datetime | None = None) -> int:
        """An agent closes, reopens or marks spam without replying: a `lineitem` thread."""
        with self._lock:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            conv = self._live(conversation_id)
            conv.status = status
            person = self._user_person(user_id)
            return self._thread(conv, "lineitem", "", person, status=status,
                                at=(at or self._now()).astimezone(UTC),
                                source={"type": "web", "via": "user"},
                                action=f"{person['first']} marked as {status.title()}")

    def assign_by_agent(self, conversation_id: int, assignee: int, *, user_id: int = 11,
                        at: datetime | None = None) -> int:
        """An agent takes the conversation (or hands it on) in the web app."""
        with self._lock:
            conv = self._live(conversation_id)
            conv.assignee = assignee
            person = self._user_person(user_id)
            target = self._user_person(assignee)["first"]
            return self._thread(conv, "lineitem", "", person, status=conv.status,
                                at=(at or self._now()).astimezone(UTC),
                                source={"type": "web", "via": "user"},
                                action=f"{person['first']} assigned to {target}",
                                action_type="changed-ticket-assignee")

    def merge(self, conversation_id: int, into: int, *, user_id: int = 11,
              renumber_threads: bool = False) -> None:
        """Merge ``conversation_id`` into ``into``: its threads move, its id answers 301
        (for MERGE_REDIRECT_DAYS, then 404), and the survivor records a `merged` line item.

        ``renumber_threads``: the moved threads get new ids (the bot must then recognise
        them by content and creation time)."""
        with self._lock:
            old, new = self._live(conversation_id), self._live(into)
            moved = old.threads
            if renumber_threads:
                moved = [{**t, "id": self._take_thread_id()} for t in moved]
            new.threads.extend(moved)
            now = self._now()
            person = self._user_person(user_id)
            self._thread(new, "lineitem", "", person, status=new.status, at=now,
                         source={"type": "web", "via": "user"},
                         action=f"{person['first']} merged #{old.number} into this conversation",
                         action_type="merged")
            new.threads.sort(key=lambda t: (t["createdAt"], t["id"]))
            new.modified_at = now
            old.merged_into = into
            old.merged_at = now
            old.threads = []

    def delete(self, conversation_id: int) -> None:
        with self._lock:
            self._conversations[conversation_id].deleted = True

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (401) before its expires_in."""
        with self._lock:
            self._tokens.clear()

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render(self._conversations[conversation_id], embed=True)

    def threads(self, conversation_id: int) -> list[dict[str, Any]]:
        """Rendered threads, oldest first."""
        with self._lock:
            conv = self._conversations[conversation_id]
            return [self._render_thread(conv, t) for t in conv.threads]

    def conversation_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._conversations)

    # -- people -----------------------------------------------------------------------------
    def _customer_person(self, customer: dict[str, Any]) -> dict[str, Any]:
        return {"id": customer["id"], "type": "customer", "email": customer["email"],
                "first": customer["first"], "last": customer["last"]}

    def _user(self, user_id: int) -> dict[str, Any] | None:
        return next((u for u in self.users if u["id"] == user_id), None)

    def _user_person(self, user_id: int) -> dict[str, Any]:
        user = self._user(user_id) or {"id": user_id, "email": "", "firstName": "",
                                       "lastName": ""}
        return {"id": user["id"], "type": "user", "email": user["email"],
                "first": user["firstName"], "last": user["lastName"]}

    # -- rendering --------------------------------------------------------------------------
    def _render_thread(self, conv: _Conversation, thread: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in thread.items() if k != "createdAt"}
        out["createdAt"] = _iso(thread["createdAt"])
        if thread["type"] != "lineitem":
            out["_embedded"] = {"attachments": []}
        link = "createdByCustomer" if thread["createdBy"]["type"] == "customer" else "createdByUser"
        author = thread["createdBy"]["id"]
        out["_links"] = {link: {"href": f"{self.base_url}/v2/customers/{author}"}}
        return out

    def _render(self, conv: _Conversation, *, embed: bool) -> dict[str, Any]:
        published = [t for t in conv.threads if t["type"] != "lineitem"]
        last_customer = max((t["createdAt"] for t in conv.threads if t["type"] == "customer"),
                            default=conv.created_at)
        last_user = max((t["createdAt"] for t in conv.threads if t["type"] == "message"),
                        default=None)
        latest = conv.threads[-1] if conv.threads else None
        preview = re.sub(r"<[^>]+>", "", (latest or {}).get("body") or "")[:185]
        out: dict[str, Any] = {
            "id": conv.id, "number": conv.number, "threads": len(published), "type": "email",
            "folderId": 1001, "status": conv.status, "state": "published",
            "subject": conv.subject, "preview": preview, "mailboxId": conv.mailbox_id,
            "createdBy": {"id": conv.customer["id"], "type": "customer",
                          "email": conv.customer["email"]},
            "createdAt": _iso(conv.created_at),
            "userUpdatedAt": _iso(last_user or last_customer),
            "customerWaitingSince": {
                "time": _iso(last_customer), "friendly": "",
                "latestReplyFrom": "user" if last_user and last_user > last_customer
                else "customer"},
            "source": {"type": "email", "via": "customer"},
            "tags": [{"id": 90 + i, "color": "#929499", "tag": t}
                     for i, t in enumerate(conv.tags)],
            "cc": [], "bcc": [],
            "primaryCustomer": {"id": conv.customer["id"], "email": conv.customer["email"]},
            "customFields": [],
            "_links": {
                "self": {"href": f"{self.base_url}/v2/conversations/{conv.id}"},
                "mailbox": {"href": f"{self.base_url}/v2/mailboxes/{conv.mailbox_id}"},
                "threads": {"href": f"{self.base_url}/v2/conversations/{conv.id}/threads/"},
                "web": {"href": f"https://secure.helpscout.net/conversation/{conv.id}/"
                                f"{conv.number}/"}},
        }
        if embed:  # newest first, as Help Scout lists threads
            out["_embedded"] = {"threads": [self._render_thread(conv, t)
                                            for t in reversed(conv.threads)]}
        if conv.assignee is not None:
            user = self._user(conv.assignee) or {"id": conv.assignee, "firstName": "",
                                                 "lastName": "", "email": ""}
            out["assignee"] = {"id": user["id"], "type": "user", "first": user["firstName"],
                               "last": user["lastName"], "email": user["email"]}
        return out

    def _page(self, path: str, query: dict[str, str], items: list[Any], key: str,
              size: int) -> dict[str, Any]:
        number = int(query.get("page") or 1)
        if number < 1:
            raise _Error(400, "Bad request", [("page", "must be at least 1", number)])
        total_pages = math.ceil(len(items) / size)
        chunk = items[(number - 1) * size:number * size]

        def link(page: int) -> dict[str, str]:
            return {"href": f"{self.base_url}{path}?" + urlencode({**query, "page": page})}

        links: dict[str, Any] = {"self": link(number), "first": link(1),
                                 "last": link(total_pages),
                                 "page": {"href": f"{self.base_url}{path}{{?page}}",
                                          "templated": True}}
        if number < total_pages:
            links["next"] = link(number + 1)
        if number > 1:
            links["previous"] = link(number - 1)
        body: dict[str, Any] = {"page": {"size": size, "totalElements": len(items),
                                         "totalPages": total_pages, "number": number},
                                "_links": links}
        if chunk:
            body["_embedded"] = {key: chunk}
        return body

    # -- the API ----------------------------------------------------------------------------
    def _live(self, conversation_id: int) -> _Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None or conv.deleted or conv.merged_into is not None:
            raise _Error(404, "Resource not found")
        return conv

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        status = query.get("status", "active")
        if status not in (*STATUSES, "all", "open"):
            raise _Error(400, "Bad request", [("status", "Invalid status", status)])
        sort_field = query.get("sortField", "createdAt")
        if sort_field not in SORT_FIELDS:
            raise _Error(400, "Bad request", [("sortField", "Invalid sort field", sort_field)])
        order = query.get("sortOrder", "desc")
        if order not in ("asc", "desc"):
            raise _Error(400, "Bad request", [("sortOrder", "Expected asc or desc", order)])
        since = None
        if "modifiedSince" in query:
            try:
                since = datetime.fromisoformat(query["modifiedSince"].replace("Z", "+00:00"))
            except ValueError:
                raise _Error(400, "Bad request", [("modifiedSince", "Invalid date",
                                                   query["modifiedSince"])]) from None
        mailboxes = {int(m) for m in query["mailbox"].split(",")} if query.get("mailbox") else None
        found = [c for c in self._conversations.values()
                 if not c.deleted and c.merged_into is None
                 and (mailboxes is None or c.mailbox_id in mailboxes)
                 and (status == "all" or c.status == status
                      or (status == "open" and c.status in ("active", "pending")))
                 and (since is None or c.modified_at >= since)]
        keys = {"createdAt": lambda c: (c.created_at, c.id),
                "modifiedAt": lambda c: (c.modified_at, c.id),
                "number": lambda c: (c.number, c.id), "status": lambda c: (c.status, c.id),
                "subject": lambda c: (c.subject, c.id),
                "customerEmail": lambda c: (c.customer["email"], c.id)}
        found.sort(key=keys.get(sort_field, keys["createdAt"]), reverse=order == "desc")
        embed = query.get("embed") == "threads"
        return self._page("/v2/conversations", query,
                          [self._render(c, embed=embed) for c in found], "conversations",
                          self.page_size)

    def _get(self, conversation_id: int, query: dict[str, str]) -> _Answer:
        conv = self._conversations.get(conversation_id)
        if conv is not None and conv.merged_into is not None and not conv.deleted:
            assert conv.merged_at is not None
            if self._now() - conv.merged_at > timedelta(days=MERGE_REDIRECT_DAYS):
                raise _Error(404, "Resource not found")
            target = self.resolve(conv.merged_into)
            return _Answer(301, None, {"Location": f"{self.base_url}/v2/conversations/{target}"})
        return _Answer(200, self._render(self._live(conversation_id),
                                         embed=query.get("embed") == "threads"))

    def resolve(self, conversation_id: int) -> int:
        conv = self._conversations.get(conversation_id)
        while conv is not None and conv.merged_into is not None:
            conversation_id = conv.merged_into
            conv = self._conversations.get(conversation_id)
        return conversation_id

    def _create(self, conversation_id: int, kind: str, data: Any, user: int) -> _Answer:
        conv = self._live(conversation_id)
        if not isinstance(data, dict):
            raise _Error(400, "Bad request", [("", "Expected a JSON object", None)])
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Error(400, "Bad request", [("text", "may not be empty", text)])
        status = data.get("status")
        if status is not None and status not in STATUSES:
            raise _Error(400, "Bad request", [(
                "status", "Expected one of these: 'active', 'spam', 'open', 'closed', 'pending'",
                status)])
        author = data.get("user", user)
        if self._user(author) is None:
            raise _Error(400, "Bad request", [("user", "Unknown user", author)])
        if kind == "message":
            customer = (data.get("customer") or {}).get("id")
            if customer != conv.customer["id"]:
                raise _Error(400, "Bad request", [("customer.id", "Unknown customer", customer)])
        if len(conv.threads) >= self.max_threads - 1:
            raise _Error(412, "Conversation is locked: it has reached the maximum number of "
                              "threads")
        new_status = status or ("active" if kind == "message" else conv.status)
        conv.status = new_status
        thread_id = self._thread(conv, kind, text, self._user_person(author), status=new_status,
                                 at=self._now(), source={"type": "api", "via": "user"})
        return _Answer(201, None, {
            "Resource-ID": str(thread_id),
            "Location": f"{self.base_url}/v2/conversations/{conv.id}/threads/{thread_id}"})

    def _patch(self, conversation_id: int, data: Any, user: int) -> _Answer:
        conv = self._live(conversation_id)
        if not isinstance(data, dict) or data.get("op") != "replace":
            raise _Error(400, "Bad request", [("op", "Unsupported operation", (data or {})
                                               .get("op") if isinstance(data, dict) else None)])
        path, value = data.get("path"), data.get("value")
        if path == "/status":
            if value not in STATUSES:
                raise _Error(400, "Bad request", [("value", "Invalid status", value)])
            conv.status = value
            text, kind = f"Marked as {value}", "changed-ticket-status"
        elif path == "/assignTo":
            if not isinstance(value, int) or self._user(value) is None:
                raise _Error(400, "Bad request", [("value", "Unknown user", value)])
            conv.assignee = value
            text = f"Assigned to {self._user_person(value)['first']}"
            kind = "changed-ticket-assignee"
        else:
            raise _Error(400, "Bad request", [("path", "Unsupported path", path)])
        self._thread(conv, "lineitem", "", self._user_person(user), status=conv.status,
                     at=self._now(), source={"type": "api", "via": "user"}, action=text,
                     action_type=kind)
        return _Answer(204)

    def _put_tags(self, conversation_id: int, data: Any) -> _Answer:
        conv = self._live(conversation_id)
        tags = data.get("tags") if isinstance(data, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _Error(400, "Bad request", [("tags", "Expected a list of strings", tags)])
        conv.tags = list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
        conv.modified_at = self._now()
        return _Answer(204)

    def _token(self, form: dict[str, str]) -> _Answer:
        if form.get("grant_type") != "client_credentials":
            return _Answer(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_secret:
            return _Answer(401, {"error": "invalid_client",
                                 "error_description": "Bad client credentials"})
        token = uuid.uuid4().hex
        self._tokens[token] = self.clock.now().astimezone(UTC)
        self.stats.tokens_issued += 1
        return _Answer(200, {"token_type": "bearer", "access_token": token,
                             "expires_in": self.token_ttl})

    def _route(self, method: str, path: str, query: dict[str, str], data: Any) -> _Answer:
        user = self.owner_user_id
        if method == "GET" and path == "/v2/conversations":
            return _Answer(200, self._list(query))
        if method == "GET" and path == "/v2/users":
            return _Answer(200, self._page(path, query, self.users, "users", 50))
        if method == "GET" and path == "/v2/users/me":
            return _Answer(200, self._user(user))
        found = re.fullmatch(r"/v2/conversations/(\d+)(/threads|/reply|/notes|/tags)?/?", path)
        if found is None:
            raise _Error(404, "Resource not found")
        conv, rest = int(found.group(1)), found.group(2) or ""
        if method == "GET" and rest == "":
            return self._get(conv, query)
        if method == "GET" and rest == "/threads":
            live = self._live(conv)
            threads = [self._render_thread(live, t) for t in reversed(live.threads)]
            return _Answer(200, self._page(path, query, threads, "threads",
                                           self.thread_page_size))
        if method == "POST" and rest == "/reply":
            return self._create(conv, "message", data, user)
        if method == "POST" and rest == "/notes":
            return self._create(conv, "note", data, user)
        if method == "PATCH" and rest == "":
            return self._patch(conv, data, user)
        if method == "PUT" and rest == "/tags":
            return self._put_tags(conv, data)
        raise _Error(405, "Method not allowed")

    # -- one request, whatever the transport ---------------------------------------------
    def _endpoint(self, method: str, path: str) -> str:
        return f"{method} " + re.sub(r"/\d+", "/{id}", path.rstrip("/"))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                return fault
        return None

    def _used(self, now: float) -> int:
        """Units spent in the window ending now (a sliding window, as Help Scout counts)."""
        while self._spent and self._spent[0][0] <= now - self.window_seconds:
            self._spent.popleft()
        return sum(units for _, units in self._spent)

    def _rate_headers(self, now: float) -> dict[str, str]:
        return {"X-RateLimit-Limit-Minute": str(self.limit),
                "X-RateLimit-Remaining-Minute": str(max(self.limit - self._used(now), 0))}

    def _retry_after(self, now: float, cost: int) -> str:
        """Seconds until enough of the oldest spending leaves the window for ``cost``."""
        room = self.limit - self._used(now)
        for when, units in self._spent:
            room += units
            if room >= cost:
                return str(max(1, math.ceil(when + self.window_seconds - now)))
        return str(max(1, math.ceil(self.window_seconds)))

    def dispatch(self, method: str, url: str, headers: dict[str, str], body: bytes) -> _Answer:
        """Answer one request: auth, budget, faults, then the API itself."""
        split = urlsplit(url)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self.stats.requests += 1
            endpoint = self._endpoint(method, path)
            self.stats.by_endpoint[endpoint] += 1
            if method == "POST" and path == "/v2/oauth2/token":
                form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
                return self._token(form)
            try:
                data = json.loads(body) if body else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                data = None
            self.requests_log.append((method, path, parse_qs(split.query), data))
            token = (headers.get("authorization") or "").removeprefix("Bearer ").strip()
            issued = self._tokens.get(token)
            now_dt = self.clock.now().astimezone(UTC)
            if issued is None or (now_dt - issued).total_seconds() >= self.token_ttl:
                return _Answer(401, {"error": "invalid_token",
                                     "message": "The access token is invalid or expired"})
            now = now_dt.timestamp()
            cost = 2 if method in WRITES else 1
            fault = self._take_fault(method, path)
            if fault is not None and fault.kind == "rate_limit":
                return self._throttled(endpoint, now, str(max(1, math.ceil(fault.seconds))))
            if self._used(now) + cost > self.limit:
                return self._throttled(endpoint, now, self._retry_after(now, cost))
            self._spent.append((now, cost))
            self.stats.units += cost
            self.stats.units_by_endpoint[endpoint] += cost
            if fault is not None and not fault.after_commit and fault.kind in ("status", "cut"):
                return self._fault_answer(fault, now)
            try:
                answer = self._route(method, path, query, data)
            except _Error as exc:
                answer = _Answer(exc.status, self._error_body(exc))
            answer.headers.update(self._rate_headers(now))
            if fault is not None and fault.kind == "delay":
                answer.delay = fault.seconds
            elif fault is not None:
                return self._fault_answer(fault, now)
            return answer

    def _throttled(self, endpoint: str, now: float, retry_after: str) -> _Answer:
        self.stats.rate_limited += 1
        self.stats.rate_limited_by_endpoint[endpoint] += 1
        headers = self._rate_headers(now)
        headers["X-RateLimit-Remaining-Minute"] = "0"
        headers["X-RateLimit-Retry-After"] = retry_after
        return _Answer(429, {"message": "API rate limit exceeded"}, headers)

    def _fault_answer(self, fault: Fault, now: float) -> _Answer:
        if fault.kind == "cut":
            return _Answer(0, cut=True)
        return _Answer(fault.status, {"message": "Injected failure",
                                      "logRef": f"fake-{uuid.uuid4().hex[:12]}"},
                       self._rate_headers(now))

    def _error_body(self, exc: _Error) -> dict[str, Any]:
        body: dict[str, Any] = {"logRef": f"fake-{uuid.uuid4().hex[:12]}",
                                "message": exc.message}
        if exc.errors:
            body["_embedded"] = {"errors": [
                {"path": path, "message": message, "rejectedValue": value, "source": "JSON"}
                for path, message, value in exc.errors]}
        return body

    def _encode(self, answer: _Answer) -> tuple[bytes, dict[str, str]]:
        headers = dict(answer.headers)
        headers["Date"] = format_datetime(self.clock.now().astimezone(UTC), usegmt=True)
        if answer.body is None:
            return b"", headers
        headers["Content-Type"] = "application/json; charset=UTF-8"
        return json.dumps(answer.body).encode(), headers

    # -- transports -------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        """An `httpx.MockTransport` handler: the same fake, no socket."""
        answer = self.dispatch(request.method, str(request.url),
                               {k.lower(): v for k, v in request.headers.items()},
                               request.read())
        if answer.delay:
            time.sleep(answer.delay)
        if answer.cut:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request)
        content, headers = self._encode(answer)
        return httpx.Response(answer.status, headers=headers, content=content, request=request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve over real HTTP on loopback; yields the base URL."""
        server = ThreadingHTTPServer((host, port), _handler_for(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="fake-helpscout", daemon=True)
        thread.start()
        previous = self.base_url
        self.base_url = f"http://{host}:{server.server_address[1]}"
        try:
            yield self.base_url
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self.base_url = previous


def _handler_for(fake: FakeHelpScout) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = fake.dispatch(self.command, self.path,
                                   {k.lower(): v for k, v in self.headers.items()}, body)
            if answer.delay:
                time.sleep(answer.delay)
            if answer.cut:
                self.close_connection = True
                return
            content, headers = fake._encode(answer)
            try:
                self.send_response(answer.status)
                for name, value in headers.items():
                    if name != "Date":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except ConnectionError:  # the client gave up waiting (a delay fault): fine
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(fake.clock.now().astimezone(UTC), usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
