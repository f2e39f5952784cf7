"""Async client for the Help Scout Mailbox API v2.

- OAuth2 client credentials; the token is cached until `expires_in` (minus a margin, on
  the injectable clock) and refreshed once when the API answers 401.
- Requests are paced under the per-minute budget (`ratelimit.RateLimiter`); a 429 waits
  as long as `X-RateLimit-Retry-After` says; 5xx and network errors are retried with
  jittered exponential backoff, a bounded number of times (tenacity).
- A thread creation whose outcome is unknown (timeout or connection cut after sending,
  or a 5xx) is retried only after reading the conversation's threads and not finding
  our marker there (`marker.py`): Help Scout has no idempotency keys.
- Pages are followed while `_links.next` is present, keeping our own filters (older API
  versions dropped them from the link); `_embedded` is absent on an empty page.
- A merged conversation answers GET with 301 + Location: followed, and remembered in
  `merged` (the store, in the worker: Help Scout forgets after 60 days) so later writes
  go to the new id (writes to the old id answer 404).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bot.clock import Clock, SystemClock
from bot.config import HelpScoutSettings
from bot.errors import AuthError, HelpScoutError
from bot.helpscout import marker as markers
from bot.helpscout.errors import (
    ConversationGone,
    HelpScoutUnavailable,
    error_body,
    error_from_response,
    precondition_failed,
)
from bot.helpscout.merges import MemoryMerges, MergeMap
from bot.helpscout.ratelimit import RETRY_AFTER, RateLimiter, header_number
from bot.vocab import HelpScoutStatus

log = structlog.get_logger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATUSES: frozenset[str] = frozenset(s.value for s in HelpScoutStatus)
TOKEN_PATH = "/v2/oauth2/token"
# Help Scout answers 401 to an app whose user was deactivated or never accepted the invite.
USER_HINT = ("the app acts as the user who created it, who must be an active Help Scout user"
             " (invited and accepted) with access to the mailbox")
# The request never reached the server: always safe to send again. Any other transport
# error (a read timeout, a connection cut) leaves a write's outcome unknown.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_CONVERSATION_IN_URL = re.compile(r"/conversations/(\d+)")


class _Retry(Exception):
    """One attempt failed in a way worth repeating."""

    def __init__(self, reason: str, *, status: int = 0, wait: float | None = None,
                 unknown: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait = wait
        self.unknown = unknown


@dataclass(frozen=True)
class Page:
    """One page of a list answer; ``server_time`` is the answer's Date header."""

    items: list[dict[str, Any]]
    number: int
    total_elements: int | None
    total_pages: int | None
    server_time: datetime | None
    next_page: int | None = None  # None: the last page


def iso_z(dt: datetime) -> str:
    """Help Scout's timestamp form: `2026-01-05T09:00:00Z` (UTC, whole seconds)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _server_time(response: httpx.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _retry_after(response: httpx.Response, default: float) -> float:
    for name in (RETRY_AFTER, "Retry-After"):
        seconds = header_number(response.headers, name)
        if seconds is not None:
            return max(seconds, 0.0)
    return default


class HelpScoutClient:
    """One instance per process; shared by the Help Scout source and channel."""

    def __init__(self, settings: HelpScoutSettings, *, clock: Clock | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 20,
                 rate_window: float = 60.0, max_attempts: int = 5,
                 max_backoff: float = 30.0, merges: MergeMap | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.limiter = RateLimiter(self.clock, rate_window)
        self.merged: MergeMap = merges if merges is not None else MemoryMerges()
        self.own_user_id: int | None = None  # the app's user, once the source has learned it
        self.stats: Counter[str] = Counter()
        self._http = httpx.AsyncClient(
            base_url=settings.base_url, transport=transport, timeout=timeout,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "supportbot"})
        self._token: str | None = None
        self._token_expires: datetime | None = None
        self._closed = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._http.aclose()

    # -- authentication -------------------------------------------------------------------
    async def _access_token(self, *, refresh: bool = False) -> str:
        now = self.clock.now()
        if (refresh or self._token is None or self._token_expires is None
                or now >= self._token_expires):
            await self._fetch_token()
        assert self._token is not None
        return self._token

    async def _fetch_token(self) -> None:
        try:
            response = await self._http.post(TOKEN_PATH, data={
                "grant_type": "client_credentials",
                "client_id": self.settings.app_id,
                "client_secret": self.settings.app_secret,
            })
        except httpx.TransportError as exc:
            raise _Retry(f"token request failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(f"token endpoint answered {response.status_code}",
                         status=response.status_code,
                         wait=_retry_after(response, 1.0) if response.status_code == 429 else None)
        if response.status_code != 200:
            raise AuthError("Help Scout refused the app credentials (SUPPORTBOT_HELPSCOUT_APP_ID"
                            f" / _APP_SECRET): {error_from_response(response)}; {USER_HINT}")
        body = error_body(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("Help Scout token answer carried no access_token")
        try:
            lifetime = float(body.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0.0
        margin = min(300.0, lifetime / 10)
        self._token = token
        self._token_expires = self.clock.now() + timedelta(seconds=max(lifetime - margin, 0.0))
        self.stats["tokens"] += 1
        log.info("help scout token obtained", expires_in=lifetime)

    # -- one request, then with retries ---------------------------------------------------
    async def _once(self, method: str, url: str, *, params: dict[str, Any] | None,
                    json: Any) -> httpx.Response:
        cost = 2 if method in WRITES else 1
        for auth_attempt in (0, 1):
            token = await self._access_token(refresh=auth_attempt == 1)
            await self.limiter.acquire(cost)
            self.stats["requests"] += 1
            self.stats["units"] += cost
            try:
                response = await self._http.request(
                    method, url, params=params, json=json,
                    headers={"Authorization": f"Bearer {token}"})
            except _NOT_SENT as exc:
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
            except httpx.TransportError as exc:
                raise _Retry(f"{type(exc).__name__}: {exc}", unknown=method in WRITES) from exc
            self.limiter.observe(response.headers)
            if response.status_code == 401 and auth_attempt == 0:
                log.info("help scout answered 401; refreshing the token once")
                continue
            break
        if response.status_code == 401:
            raise AuthError(f"Help Scout rejected a fresh token: {error_from_response(response)};"
                            f" {USER_HINT}")
        if response.status_code == 429:
            self.stats["429"] += 1
            raise _Retry("rate limited (429)", status=429,
                         wait=_retry_after(response, self.limiter.window))
        if response.status_code >= 500:
            # A POST that failed server-side may still have created its thread.
            raise _Retry(f"server error {response.status_code}", status=response.status_code,
                         unknown=method == "POST")
        return response

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return max(exc.wait, 1.0) + random.uniform(0, 0.25)  # as told, never hammering
        ceiling = min(self.max_backoff, 0.5 * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                       json: Any = None,
                       already_done: Callable[[], Awaitable[bool]] | None = None,
                       attempts: int | None = None) -> httpx.Response | None:
        """Send with retries; None when ``already_done`` found the write in place."""
        unknown = False
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self.max_attempts), wait=self._wait,
            retry=retry_if_exception_type(_Retry), sleep=self.clock.sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if unknown and already_done is not None:
                        if await already_done():
                            return None
                        unknown = False
                    try:
                        return await self._once(method, url, params=params, json=json)
                    except _Retry as exc:
                        self.stats["retries"] += 1
                        unknown = unknown or exc.unknown
                        log.warning("help scout request failed", method=method,
                                    url=url, reason=exc.reason,
                                    attempt=attempt.retry_state.attempt_number)
                        raise
        except _Retry as exc:
            raise HelpScoutUnavailable(exc.status, exc.reason,
                                       attempts or self.max_attempts) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, url, **kwargs)
        assert response is not None
        if response.status_code >= 400:
            raise error_from_response(response)
        return error_body(response)

    # -- conversations ----------------------------------------------------------------------
    def resolve(self, conversation_id: int) -> int:
        """The current id of a conversation that may have been merged (followed chains)."""
        seen = {conversation_id}
        while (following := self.merged.get(conversation_id)) is not None:
            if following in seen:
                break
            conversation_id = following
            seen.add(conversation_id)
        return conversation_id

    def _record_merge(self, old: int, response: httpx.Response) -> int:
        location = response.headers.get("Location", "")
        found = _CONVERSATION_IN_URL.search(location)
        if not found:
            raise error_from_response(response)
        new = int(found.group(1))
        self.merged.put(old, new)
        log.info("help scout conversation merged", old=old, new=new)
        return new

    async def get_conversation(self, conversation_id: int, *,
                               embed_threads: bool = False) -> dict[str, Any]:
        """The conversation, following a merge (301) to its new id; 404 -> ConversationGone."""
        conv = self.resolve(conversation_id)
        params = {"embed": "threads"} if embed_threads else None
        for _ in range(5):
            response = await self._request("GET", f"/v2/conversations/{conv}", params=params)
            assert response is not None
            if response.status_code in (301, 302, 307, 308):
                conv = self._record_merge(conv, response)
                continue
            if response.status_code == 404:
                raise ConversationGone(conv, error_body(response).get("logRef"))
            if response.status_code >= 400:
                raise error_from_response(response)
            return error_body(response)
        raise HelpScoutError(310, f"conversation {conversation_id}: too many redirects")

    async def _on_conversation(self, conversation_id: int, method: str, suffix: str, *,
                               json: Any = None, params: dict[str, Any] | None = None,
                               already_done: Callable[[int], Awaitable[bool]] | None = None,
                               attempts: int | None = None,
                               ) -> tuple[int, httpx.Response | None]:
        """A call on /conversations/{id}{suffix}; a 404 may mean merged: look, then retry."""
        conv = self.resolve(conversation_id)
        for _ in range(3):
            check = partial(already_done, conv) if already_done is not None else None
            response = await self._request(method, f"/v2/conversations/{conv}{suffix}",
                                           json=json, params=params, already_done=check,
                                           attempts=attempts)
            if response is None:
                return conv, None
            if response.status_code in (301, 404):
                located = await self._locate(conv)
                if located == conv:
                    raise error_from_response(response)
                conv = located
                continue
            if response.status_code == 412:
                raise precondition_failed(conv, response)
            if response.status_code >= 400:
                raise error_from_response(response)
            return conv, response
        raise ConversationGone(conv)

    async def _locate(self, conversation_id: int) -> int:
        conversation = await self.get_conversation(conversation_id)
        return int(conversation.get("id", conversation_id))

    async def _pages(self, path: str, params: dict[str, Any], key: str,
                     start: int = 1) -> AsyncGenerator[Page, None]:
        number = max(1, start)
        while True:
            response = await self._request("GET", path, params={**params, "page": number})
            assert response is not None
            if response.status_code >= 400:
                raise error_from_response(response)
            body = error_body(response)
            items = _dict(body.get("_embedded")).get(key) or []
            page = _dict(body.get("page"))
            href = _dict(_dict(body.get("_links")).get("next")).get("href")
            following: int | None = None
            if isinstance(href, str) and href:
                pages = parse_qs(urlsplit(href).query).get("page") or []
                following = _int(pages[0]) if pages else None
                following = following if following is not None else number + 1
                if following <= number:  # a link that does not move forward would loop
                    following = None
            yield Page(items=[i for i in items if isinstance(i, dict)], number=number,
                       total_elements=_int(page.get("totalElements")),
                       total_pages=_int(page.get("totalPages")),
                       server_time=_server_time(response), next_page=following)
            if following is None:
                return
            number = following

    def conversation_pages(self, mailbox_id: int, modified_since: datetime | None = None,
                           *, status: str = "all", embed_threads: bool = True,
                           sort_field: str = "createdAt", sort_order: str = "asc",
                           start_page: int = 1) -> AsyncGenerator[Page, None]:
        """Pages of GET /v2/conversations for one mailbox, from ``start_page`` on.

        The default sort is createdAt ascending: with page numbers, a conversation that is
        modified while we page (say, by our own reply) keeps its place, whereas under
        modifiedAt it would jump to the end and push an unread one back onto a page
        already read.
        """
        params: dict[str, Any] = {"mailbox": mailbox_id, "status": status,
                                  "sortField": sort_field, "sortOrder": sort_order}
        if modified_since is not None:
            params["modifiedSince"] = iso_z(modified_since)
        if embed_threads:
            params["embed"] = "threads"
        return self._pages("/v2/conversations", params, "conversations", start_page)

    async def list_conversations(self, mailbox_id: int, modified_since: datetime | None = None,
                                 status: str = "all", embed_threads: bool = True, *,
                                 sort_field: str = "createdAt", sort_order: str = "asc",
                                 ) -> AsyncIterator[dict[str, Any]]:
        async for page in self.conversation_pages(mailbox_id, modified_since, status=status,
                                                  embed_threads=embed_threads,
                                                  sort_field=sort_field, sort_order=sort_order):
            for conversation in page.items:
                yield conversation

    async def list_threads(self, conversation_id: int) -> list[dict[str, Any]]:
        conv = self.resolve(conversation_id)
        for _ in range(3):
            try:
                return [t async for p in self._pages(f"/v2/conversations/{conv}/threads", {},
                                                     "threads") for t in p.items]
            except HelpScoutError as exc:
                if exc.status != 404:
                    raise
                located = await self._locate(conv)
                if located == conv:
                    raise ConversationGone(conv, exc.log_ref) from exc
                conv = located
        raise ConversationGone(conv)

    async def find_marker(self, conversation_id: int, marker: str) -> int | None:
        """The id of a thread of ours carrying ``marker``, if one is there."""
        for thread in await self.list_threads(conversation_id):
            if thread.get("type") in ("message", "note") and markers.has_marker(
                    thread.get("body"), marker):
                return _int(thread.get("id"))
        return None

    # -- writes -------------------------------------------------------------------------------
    async def _create_thread(self, conversation_id: int, suffix: str, payload: dict[str, Any],
                             marker: str, check_first: bool) -> int | None:
        payload = {**payload, "text": markers.embed(str(payload["text"]), marker)}
        found: list[int] = []

        async def already_done(conv: int) -> bool:
            thread_id = await self.find_marker(conv, marker)
            if thread_id is not None:
                found.append(thread_id)
                log.info("help scout write found in place; not repeated",
                         conversation=conv, thread=thread_id)
                return True
            return False

        if check_first and await already_done(self.resolve(conversation_id)):
            return found[0]
        _, response = await self._on_conversation(conversation_id, "POST", suffix, json=payload,
                                                   already_done=already_done)
        if response is None:
            return found[0]
        return _int(response.headers.get("Resource-ID"))

    async def reply(self, conversation_id: int, customer_id: int, text: str,
                    status: str | None, marker: str, user_id: int | None = None, *,
                    check_first: bool = False) -> int | None:
        """A reply thread (emailed to the customer); returns its thread id.

        Without ``status`` Help Scout reactivates the conversation: pass `pending` when
        waiting on the customer, `closed` to close. ``check_first`` looks for ``marker``
        before sending, for a retry whose earlier attempt may have gone through.
        """
        payload: dict[str, Any] = {"customer": {"id": customer_id}, "text": text}
        if status is not None:
            _check_status(status)
            payload["status"] = status
        if user_id is not None:
            payload["user"] = user_id
        return await self._create_thread(conversation_id, "/reply", payload, marker, check_first)

    async def note(self, conversation_id: int, text: str, marker: str,
                   user_id: int | None = None, *, check_first: bool = False) -> int | None:
        """An internal note (never emailed to the customer); returns its thread id."""
        payload: dict[str, Any] = {"text": text}
        if user_id is not None:
            payload["user"] = user_id
        return await self._create_thread(conversation_id, "/notes", payload, marker, check_first)

    async def assign(self, conversation_id: int, user_id: int) -> None:
        await self._on_conversation(conversation_id, "PATCH", "", json={
            "op": "replace", "path": "/assignTo", "value": user_id})

    async def set_status(self, conversation_id: int, status: str) -> None:
        _check_status(status)
        await self._on_conversation(conversation_id, "PATCH", "", json={
            "op": "replace", "path": "/status", "value": status})

    async def get_tags(self, conversation_id: int) -> list[str]:
        conversation = await self.get_conversation(conversation_id)
        return [name for name in (_tag_name(t) for t in conversation.get("tags") or []) if name]

    async def add_tags(self, conversation_id: int, tags: list[str]) -> list[str]:
        """Union of the current tags and ``tags`` (PUT replaces the whole list).

        The list is read right before each attempt of the PUT: a retry after a backoff must
        not write back a list from before an agent added a tag in between."""
        wanted = [t for t in dict.fromkeys(x.strip().lower() for x in tags) if t]
        for attempt in range(1, self.max_attempts + 1):
            current = await self.get_tags(conversation_id)
            known = {t.lower() for t in current}
            merged = current + [t for t in wanted if t not in known]
            if len(merged) == len(current):
                return current
            try:
                await self._on_conversation(conversation_id, "PUT", "/tags",
                                            json={"tags": merged}, attempts=1)
            except HelpScoutUnavailable:
                if attempt == self.max_attempts:
                    raise
                ceiling = min(self.max_backoff, 0.5 * 2 ** (attempt - 1))
                await self.clock.sleep(random.uniform(ceiling / 2, ceiling))
                continue
            return merged
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- users --------------------------------------------------------------------------------
    async def list_users(self) -> list[dict[str, Any]]:
        return [u async for p in self._pages("/v2/users", {}, "users") for u in p.items]

    async def me(self) -> dict[str, Any]:
        """The user the app's token acts as (who created the app)."""
        return await self._json("GET", "/v2/users/me")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown Help Scout status {status!r}; one of {sorted(STATUSES)}")


def _tag_name(tag: Any) -> str | None:
    if isinstance(tag, dict):
        name = tag.get("tag") or tag.get("name")
        return str(name) if name else None
    return str(tag) if tag else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
