"""The Help Scout source: watermark, overlap, one batch per page, refs, authors."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout
from bot.errors import AuthError, SourceError
from bot.helpscout import marker
from bot.helpscout.client import HelpScoutClient
from bot.helpscout.progress import Progress
from bot.sources.base import Batch
from bot.sources.helpscout import HelpScoutSource
from bot.vocab import LineItem
from tests.helpscout.conftest import BASE, MemoryCursors, hs_settings, payload, run

RATE = {"X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "390"}


def page(name_or_body: str | dict[str, Any], date: str = "Mon, 16 Nov 2026 10:00:05 GMT",
         status: int = 200) -> httpx.Response:
    body = payload(name_or_body) if isinstance(name_or_body, str) else name_or_body
    return httpx.Response(status, json=body, headers={**RATE, "Date": date})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/v2/oauth2/token").mock(
            return_value=httpx.Response(200, json=payload("token")))
        yield router


def drain(clock: FakeClock, cursors: MemoryCursors | None = None, *,
          own_user_id: int | None = 99, **settings: Any) -> list[Batch]:
    async def go() -> list[Batch]:
        client = HelpScoutClient(hs_settings(**settings), clock=clock)
        source = HelpScoutSource(client, hs_settings(**settings), cursors or MemoryCursors(),
                                 poll_seconds=30, clock=clock, own_user_id=own_user_id)
        try:
            return [b async for b in source.batches()]
        finally:
            await source.aclose()
            await client.aclose()

    return run(go())


def mark(batch: Batch) -> datetime | None:
    return Progress.decode(batch.cursor).watermark


def test_first_pass_yields_one_batch_per_page_and_the_cursor_last(api: respx.MockRouter,
                                                                  clock: FakeClock) -> None:
    listing = api.get("/v2/conversations").mock(side_effect=[
        page("conversations-page-1"), page("conversations-page-2")])
    first, second = drain(clock)
    assert first.initial and second.initial
    # progress is saved per page; the first sync stays a backfill until it completes
    assert Progress.decode(first.cursor).watermark is None
    assert Progress.decode(first.cursor).pass_page == 2
    done = Progress.decode(second.cursor)
    assert done.watermark == datetime(2026, 11, 16, 10, 0, 5, tzinfo=UTC)  # the server's time
    assert not done.in_pass and done.floor == datetime(2026, 11, 15, 10, 0, tzinfo=UTC)
    # the first listing reaches back SUPPORTBOT_BACKFILL_HOURS only, not the whole mailbox
    assert listing.calls[0].request.url.params["modifiedSince"] == "2026-11-15T10:00:00Z"
    items = first.items + second.items
    assert [i.ref for i in items] == ["helpscout:7001:9001", "helpscout:7002:9003",
                                      "helpscout:7003:9006", "helpscout:7003:9007",
                                      "helpscout:7003:9008"]
    assert [i.author for i in items] == ["customer", "customer", "customer", "agent", "agent"]
    assert items[4].change == LineItem.STATUS and items[4].status == "pending"
    dana = items[0]
    assert dana.source == "helpscout" and dana.status == "active"
    assert dana.received_at == datetime(2026, 11, 16, 8, 42, tzinfo=UTC)
    msg = dana.message
    assert msg is not None
    assert msg.from_addr == "dana@whitfieldhomes.example"
    assert msg.subject == "My emails aren't sending!!"
    assert msg.text == "Since about 8am none of my emails to clients are going out."
    assert (msg.mailbox_id, msg.conversation_id, msg.conversation_number, msg.thread_id,
            msg.customer_id) == (42, 7001, 1201, 9001, 501)
    assert msg.message_id is None and len(msg.content_hash) == 64
    billing = items[1].message
    assert billing is not None and billing.tags == ("billing",)
    assert billing.from_addr == "hannah@pricepartners.example"  # the thread's own author
    agent = items[3]
    assert agent.status == "pending" and agent.message is not None
    assert agent.message.from_addr == "ana@support.example"
    assert agent.message.text == "Could you tell us a bit more?"


def test_next_pass_reads_from_the_watermark_minus_the_overlap(api: respx.MockRouter,
                                                              clock: FakeClock) -> None:
    listing = api.get("/v2/conversations").mock(return_value=page("conversations-empty"))
    cursors = MemoryCursors({"helpscout:42": "2026-11-16T09:00:00Z"})
    (batch,) = drain(clock, cursors)
    assert listing.calls[0].request.url.params["modifiedSince"] == "2026-11-16T08:58:00Z"
    assert listing.calls[0].request.url.params["status"] == "all"
    assert not batch.initial and batch.items == []
    assert mark(batch) == datetime(2026, 11, 16, 10, 0, 5, tzinfo=UTC)


def test_the_watermark_never_moves_back(api: respx.MockRouter, clock: FakeClock) -> None:
    api.get("/v2/conversations").mock(
        return_value=page("conversations-empty", date="Mon, 16 Nov 2026 08:00:00 GMT"))
    cursors = MemoryCursors({"helpscout:42": "2026-11-16T09:00:00Z"})
    (batch,) = drain(clock, cursors)
    assert mark(batch) == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def test_a_thread_seen_on_two_pages_is_yielded_once(api: respx.MockRouter,
                                                    clock: FakeClock) -> None:
    second = payload("conversations-page-2")
    second["_embedded"]["conversations"].insert(
        0, copy.deepcopy(payload("conversations-page-1")["_embedded"]["conversations"][0]))
    api.get("/v2/conversations").mock(side_effect=[page("conversations-page-1"), page(second)])
    refs = [i.ref for b in drain(clock) for i in b.items]
    assert len(refs) == len(set(refs)) == 5


def test_a_listing_that_shrank_while_paging_keeps_the_watermark(api: respx.MockRouter,
                                                                clock: FakeClock) -> None:
    second = payload("conversations-page-2")
    second["page"]["totalElements"] = 2  # one conversation vanished (deleted, merged)
    listing = api.get("/v2/conversations").mock(side_effect=[
        page("conversations-page-1"), page(second), page("conversations-page-1")])
    cursors = MemoryCursors({"helpscout:42": "2026-11-16T09:00:00Z"})
    batches = drain(clock, cursors)
    # the page before the change is read again: what moved back onto it is not skipped
    assert [c.request.url.params["page"] for c in listing.calls] == ["1", "2", "1"]
    assert [mark(b) for b in batches] == [datetime(2026, 11, 16, 9, 0, tzinfo=UTC)] * 2
    assert not Progress.decode(batches[-1].cursor).in_pass  # the next pass reads it all again


def test_an_insert_hiding_a_delete_keeps_the_watermark(api: respx.MockRouter,
                                                       clock: FakeClock) -> None:
    """The total did not change, but a conversation created while we paged is on the last
    page: one that was there at the start must have left, and may have shifted one past us."""
    second = payload("conversations-page-2")
    second["_embedded"]["conversations"][0]["createdAt"] = "2026-11-16T10:00:30Z"
    api.get("/v2/conversations").mock(side_effect=[page("conversations-page-1"), page(second)])
    cursors = MemoryCursors({"helpscout:42": "2026-11-16T09:00:00Z"})
    batches = drain(clock, cursors)
    assert mark(batches[-1]) == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def test_a_resumed_pass_reads_new_conversations_first_and_overlaps_a_page(
        api: respx.MockRouter, clock: FakeClock) -> None:
    listing = api.get("/v2/conversations").mock(side_effect=[
        page("conversations-empty"), page("conversations-page-1"), page("conversations-page-2")])
    cursors = MemoryCursors({"helpscout:42": Progress(
        watermark=datetime(2026, 11, 16, 6, 0, tzinfo=UTC),
        pass_since=datetime(2026, 11, 16, 5, 58, tzinfo=UTC), pass_page=2,
        pass_started=datetime(2026, 11, 16, 9, 50, tzinfo=UTC)).encode()})
    batches = drain(clock, cursors)
    head, *rest = [c.request.url.params for c in listing.calls]
    assert (head["sortOrder"], head["modifiedSince"]) == ("desc", "2026-11-16T09:48:00Z")
    assert [(p["sortOrder"], p["page"]) for p in rest] == [("asc", "1"), ("asc", "2")]
    assert rest[0]["modifiedSince"] == "2026-11-16T05:58:00Z"
    assert mark(batches[-1]) == datetime(2026, 11, 16, 9, 50, tzinfo=UTC)


def test_the_list_budget_stops_a_pass_and_saves_where(api: respx.MockRouter,
                                                      clock: FakeClock) -> None:
    api.get("/v2/conversations").mock(side_effect=[page("conversations-page-1")])

    async def go() -> list[Batch]:
        client = HelpScoutClient(hs_settings(), clock=clock)
        source = HelpScoutSource(client, hs_settings(), MemoryCursors(), poll_seconds=30,
                                 clock=clock, own_user_id=99, list_budget=1)
        try:
            return [b async for b in source.batches()]
        finally:
            await client.aclose()

    (batch,) = run(go())
    saved = Progress.decode(batch.cursor)
    assert saved.in_pass and saved.pass_page == 2 and saved.watermark is None


def test_listing_failures_are_source_errors_and_refused_credentials_auth_errors(
        api: respx.MockRouter, clock: FakeClock) -> None:
    api.get("/v2/conversations").mock(return_value=page({"message": "down"}, status=503))
    with pytest.raises(SourceError, match="503"):
        drain(clock)
    api.post("/v2/oauth2/token").mock(return_value=httpx.Response(401, json={
        "error": "invalid_client"}))
    with pytest.raises(AuthError):
        drain(clock)


def _thread(**fields: Any) -> dict[str, Any]:
    base = {"id": 9300, "type": "message", "state": "published", "body": "<p>Hello</p>",
            "createdAt": "2026-11-16T10:00:00Z", "source": {"type": "web", "via": "user"},
            "createdBy": {"id": 11, "type": "user", "email": "ana@support.example"}}
    base.update(fields)
    return base


@pytest.mark.parametrize(("fields", "author"), [
    ({}, "agent"),
    ({"body": marker.embed("<p>Thanks</p>", "sb:t1:acknowledge:x")}, "self"),
    ({"createdBy": {"id": 99, "type": "user"}, "source": {"type": "api", "via": "user"}}, "self"),
    ({"createdBy": {"id": 99, "type": "user"}}, "agent"),  # our app's user, typing by hand
    ({"type": "customer", "createdBy": {"id": 501, "type": "customer", "email": "a@b.example"},
      "body": "> " + marker.embed("Thanks", "sb:t1:acknowledge:x")}, "customer"),
])
def test_authors(fields: dict[str, Any], author: str, clock: FakeClock) -> None:
    source = HelpScoutSource(HelpScoutClient(hs_settings(), clock=clock), hs_settings(),
                             MemoryCursors(), poll_seconds=30, clock=clock, own_user_id=99)
    conversation = payload("conversation")
    item = source.inbound(conversation, _thread(**fields))
    assert item is not None and item.author == author
    assert item.message is not None and "\u2060" not in item.message.text


@pytest.mark.parametrize("fields", [
    {"type": "note"}, {"type": "lineitem", "action": {"type": "merged", "text": "merged"}},
    {"type": "lineitem", "action": {"type": "automatic-workflow"}, "status": "nochange"},
    {"state": "draft"}, {"type": "chat"}])
def test_notes_merges_workflows_and_drafts_are_not_messages(fields: dict[str, Any],
                                                      clock: FakeClock) -> None:
    source = HelpScoutSource(HelpScoutClient(hs_settings(), clock=clock), hs_settings(),
                             MemoryCursors(), poll_seconds=30, clock=clock, own_user_id=99)
    assert source.inbound(payload("conversation"), _thread(**fields)) is None


def test_a_closed_conversation_with_no_thread_saying_so_is_still_read_as_closed(
        api: respx.MockRouter, clock: FakeClock) -> None:
    body = payload("conversations-page-1")
    conversation = body["_embedded"]["conversations"][0]
    conversation.update(status="closed", closedAt="2026-11-16T09:30:00Z",
                        closedByUser={"id": 12, "first": "Desmond", "last": "Reid",
                                      "email": "desmond@support.example"})
    api.get("/v2/conversations").mock(return_value=page(body))
    (closed,) = [i for b in drain(clock) for i in b.items if i.change == LineItem.STATUS]
    assert (closed.author, closed.status) == ("agent", "closed")
    assert closed.ref == "helpscout:7001:closed-20261116T093000Z"
    assert closed.message is not None and closed.message.from_name == "Desmond Reid"
    assert closed.received_at == datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["chat", "phone"])
def test_chat_and_phone_conversations_are_left_to_people(kind: str, api: respx.MockRouter,
                                                         clock: FakeClock) -> None:
    body = payload("conversations-page-2")
    body["_embedded"]["conversations"][0]["type"] = kind
    api.get("/v2/conversations").mock(return_value=page(body))
    (batch,) = drain(clock)
    assert batch.items == []


def test_the_apps_user_is_learned_from_users_me(api: respx.MockRouter, clock: FakeClock) -> None:
    me = api.get("/v2/users/me").mock(return_value=page({"id": 99, "email": "bot@x.example"}))
    body = payload("conversations-page-2")
    body["_embedded"]["conversations"][0]["_embedded"]["threads"].append(_thread(
        id=9400, createdBy={"id": 99, "type": "user", "email": "bot@x.example"},
        source={"type": "api", "via": "user"}))
    api.get("/v2/conversations").mock(return_value=page(body))
    (batch,) = drain(clock, own_user_id=None)
    assert me.call_count == 1
    assert {i.ref: i.author for i in batch.items}["helpscout:7003:9400"] == "self"


# -- against the fake server ------------------------------------------------------------
def test_a_poll_after_our_reply_sees_it_as_ours_and_the_customers_answer(clock: FakeClock) -> None:
    fake = FakeHelpScout(clock=clock)
    conv = fake.add_conversation("Can't log in", "Lee@Example.com", "<p>Password reset?</p>",
                                 customer_name="Lee Park")
    spam = fake.add_conversation("WIN NOW", "spam@example.com", "<p>$$$</p>", status="spam")
    cursors = MemoryCursors()

    async def go() -> tuple[list[Batch], list[Batch]]:
        client = HelpScoutClient(hs_settings(), clock=clock, transport=fake.transport())
        source = HelpScoutSource(client, hs_settings(), cursors, poll_seconds=30, clock=clock)
        first = [b async for b in source.batches()]
        cursors[source.cursor_key] = first[-1].cursor or ""
        message = first[0].items[0].message
        assert message is not None and message.customer_id is not None
        await client.reply(conv, message.customer_id, "<p>Here is how.</p>", "pending",
                           "sb:t1:answer:helpscout:7001:9001")
        clock.advance(600)
        fake.add_customer_reply(conv, "<p>It worked, thanks!</p>")
        second = [b async for b in source.batches()]
        await client.aclose()
        return first, second

    first, second = run(go())
    (only, spammed) = first[0].items
    assert spammed.ref.startswith(f"helpscout:{spam}:spam-")
    assert only.author == "customer" and only.message is not None
    assert only.message.from_addr == "lee@example.com" and only.message.from_name == "Lee Park"
    seen = {i.ref: (i.author, i.status) for b in second for i in b.items}
    threads = fake.threads(conv)
    assert seen[f"helpscout:{conv}:{threads[1]['id']}"] == ("self", "pending")  # its own
    assert seen[f"helpscout:{conv}:{threads[2]['id']}"] == ("customer", "active")
    # of a spam conversation only the people's changes (here: its status) are read
    spam_refs = [i.ref for b in first + second for i in b.items if f":{spam}:" in i.ref]
    assert spam_refs and all(f":{spam}:spam-" in ref for ref in spam_refs)
    assert mark(second[-1]) > Progress.decode(cursors["helpscout:42"]).watermark


def test_wait_returns_on_wake_or_after_the_timeout(clock: FakeClock) -> None:
    source = HelpScoutSource(HelpScoutClient(hs_settings(), clock=clock), hs_settings(),
                             MemoryCursors(), poll_seconds=30, clock=clock, own_user_id=99)

    async def go() -> None:
        await source.wait(0.01)  # nothing happened: the timeout
        asyncio.get_running_loop().call_soon(source.wake)
        await asyncio.wait_for(source.wait(30), 5)  # woken long before 30 s
        await source.client.aclose()

    run(go())
