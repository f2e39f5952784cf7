"""The Mailbox API client against respx, with payloads shaped like the documented answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from bot.clock import FakeClock
from bot.errors import AuthError, HelpScoutError
from bot.helpscout import marker
from bot.helpscout.client import HelpScoutClient
from bot.helpscout.errors import (
    ConversationGone,
    ConversationTooOld,
    HelpScoutUnavailable,
    ThreadLimitReached,
)
from tests.helpscout.conftest import BASE, hs_settings, payload, run

RATE = {"X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "390"}


def ok(body: Any = None, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={**RATE, **headers})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/v2/oauth2/token", name="token").mock(
            return_value=httpx.Response(200, json=payload("token")))
        yield router


def client(clock: FakeClock, **kw: Any) -> HelpScoutClient:
    return HelpScoutClient(hs_settings(), clock=clock, **kw)


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# -- authentication -------------------------------------------------------------------------
def test_token_is_cached_until_expires_in_then_refreshed(api: respx.MockRouter,
                                                         clock: FakeClock) -> None:
    api.routes["token"].mock(
        return_value=httpx.Response(200, json={"token_type": "bearer", "access_token": "t1",
                                               "expires_in": 3600}))
    users = api.get("/v2/users").mock(return_value=ok(payload("users")))

    async def go() -> None:
        c = client(clock)
        await c.list_users()
        await c.list_users()
        clock.advance(3600)
        await c.list_users()
        await c.aclose()

    run(go())
    token = api.routes["token"]
    assert token.call_count == 2
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "fake-app-id",
                    "client_secret": "fake-app-secret"}
    assert users.calls[0].request.headers["Authorization"] == "Bearer t1"
    assert users.call_count == 3


def test_a_401_refreshes_the_token_once_and_retries_once(api: respx.MockRouter,
                                                         clock: FakeClock) -> None:
    users = api.get("/v2/users").mock(side_effect=[ok({"message": "expired"}, 401),
                                                   ok(payload("users"))])

    async def go() -> list[dict[str, Any]]:
        c = client(clock)
        try:
            return await c.list_users()
        finally:
            await c.aclose()

    assert [u["id"] for u in run(go())] == [11, 12]
    assert users.call_count == 2
    assert api.routes["token"].call_count == 2  # the token, fetched again


def test_a_second_401_is_an_auth_error_not_a_loop(api: respx.MockRouter, clock: FakeClock) -> None:
    users = api.get("/v2/users").mock(return_value=ok({"message": "Unauthorized"}, 401))

    async def go() -> None:
        c = client(clock)
        try:
            await c.list_users()
        finally:
            await c.aclose()

    with pytest.raises(AuthError, match=r"rejected a fresh token.*must be an active"):
        run(go())
    assert users.call_count == 2


def test_refused_credentials_name_the_variables_never_the_secret(clock: FakeClock) -> None:
    with respx.mock(base_url=BASE) as api:
        api.post("/v2/oauth2/token").mock(return_value=httpx.Response(
            401, json={"error": "invalid_client", "error_description": "Bad client credentials"}))

        async def go() -> None:
            c = client(clock)
            try:
                await c.list_users()
            finally:
                await c.aclose()

        with pytest.raises(AuthError) as caught:
            run(go())
    text = str(caught.value)
    assert "SUPPORTBOT_HELPSCOUT_APP_ID" in text and "Bad client credentials" in text
    assert "fake-app-secret" not in text


# -- retries ----------------------------------------------------------------------------------
def test_429_waits_as_told_then_succeeds(api: respx.MockRouter, clock: FakeClock) -> None:
    limited = httpx.Response(429, json=payload("error-rate-limit"), headers={
        "X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "0",
        "X-RateLimit-Retry-After": "7"})
    users = api.get("/v2/users").mock(side_effect=[limited, ok(payload("users"))])
    start = clock.now()

    async def go() -> HelpScoutClient:
        c = client(clock)
        await c.list_users()
        await c.aclose()
        return c

    c = run(go())
    assert users.call_count == 2
    assert c.stats["429"] == 1
    assert (clock.now() - start).total_seconds() >= 7


def test_server_errors_and_network_errors_are_retried(api: respx.MockRouter,
                                                      clock: FakeClock) -> None:
    users = api.get("/v2/users").mock(side_effect=[
        ok({"message": "oops"}, 500), httpx.ConnectError("refused"), ok(payload("users"))])

    async def go() -> list[dict[str, Any]]:
        c = client(clock)
        try:
            return await c.list_users()
        finally:
            await c.aclose()

    assert len(run(go())) == 2
    assert users.call_count == 3


def test_retries_are_bounded(api: respx.MockRouter, clock: FakeClock) -> None:
    users = api.get("/v2/users").mock(return_value=ok({"message": "down"}, 503))

    async def go() -> None:
        c = client(clock, max_attempts=3)
        try:
            await c.list_users()
        finally:
            await c.aclose()

    with pytest.raises(HelpScoutUnavailable, match="503"):
        run(go())
    assert users.call_count == 3


def test_a_network_that_stays_down_is_reported_as_unreachable(api: respx.MockRouter,
                                                              clock: FakeClock) -> None:
    api.get("/v2/users").mock(side_effect=httpx.ConnectError("connection refused"))

    async def go() -> None:
        c = client(clock, max_attempts=2)
        try:
            await c.list_users()
        finally:
            await c.aclose()

    with pytest.raises(HelpScoutUnavailable) as caught:
        run(go())
    assert caught.value.status == 0
    assert str(caught.value) == ("Help Scout API unreachable: ConnectError: connection refused "
                                 "(gave up after 2 attempts)")


# -- pagination ---------------------------------------------------------------------------
def test_pages_follow_next_and_keep_our_filters(api: respx.MockRouter, clock: FakeClock) -> None:
    listing = api.get("/v2/conversations").mock(side_effect=[
        ok(payload("conversations-page-1")), ok(payload("conversations-page-2"))])

    async def go() -> list[int]:
        c = client(clock)
        try:
            return [conv["id"] async for conv in c.list_conversations(42, clock.now())]
        finally:
            await c.aclose()

    assert run(go()) == [7001, 7002, 7003]
    first, second = (dict(call.request.url.params) for call in listing.calls)
    assert first == {"mailbox": "42", "status": "all", "sortField": "createdAt",
                     "sortOrder": "asc", "modifiedSince": "2026-11-16T10:00:00Z",
                     "embed": "threads", "page": "1"}
    # the documented next link carries only ?page=2: the filters must survive anyway
    assert second == {**first, "page": "2"}


def test_an_empty_page_has_no_embedded_and_ends_the_listing(api: respx.MockRouter,
                                                            clock: FakeClock) -> None:
    listing = api.get("/v2/conversations").mock(return_value=ok(payload("conversations-empty")))

    async def go() -> list[dict[str, Any]]:
        c = client(clock)
        try:
            return [conv async for conv in c.list_conversations(42)]
        finally:
            await c.aclose()

    assert run(go()) == []
    assert listing.call_count == 1


# -- errors and typed outcomes ------------------------------------------------------------
def test_error_bodies_are_surfaced_with_message_fields_and_log_ref(api: respx.MockRouter,
                                                                  clock: FakeClock) -> None:
    api.post("/v2/conversations/7003/reply").mock(return_value=ok(payload("error-validation"), 400))

    async def go() -> None:
        c = client(clock)
        try:
            await c.reply(7003, 501, "Hello", "pending", "sb:t1:ask_info:x")
        finally:
            await c.aclose()

    with pytest.raises(HelpScoutError) as caught:
        run(go())
    text = str(caught.value)
    assert "Help Scout API 400: Bad request" in text
    assert "status: Expected one of these" in text
    assert "logRef 64bb72b4-8a5e-4cf1-9c9e-0b58f4a0a111" in text
    assert caught.value.status == 400


def test_a_merged_conversation_is_followed_and_reported(api: respx.MockRouter,
                                                        clock: FakeClock) -> None:
    moved = api.get("/v2/conversations/7001").mock(return_value=httpx.Response(
        301, headers={"Location": f"{BASE}/v2/conversations/7003"}))
    api.get("/v2/conversations/7003").mock(return_value=ok(payload("conversation")))
    reply = api.post("/v2/conversations/7003/reply").mock(
        return_value=httpx.Response(201, headers={"Resource-ID": "9100"}))

    async def go() -> tuple[dict[str, Any], int | None, HelpScoutClient]:
        c = client(clock)
        conversation = await c.get_conversation(7001)
        thread = await c.reply(7001, 501, "Hi", "active", "sb:t1:acknowledge:x")
        await c.aclose()
        return conversation, thread, c

    conversation, thread, c = run(go())
    assert conversation["id"] == 7003 and c.merged == {7001: 7003}  # MemoryMerges
    assert c.resolve(7001) == 7003
    assert thread == 9100 and reply.call_count == 1 and moved.call_count == 1


def test_a_write_to_a_merged_conversation_finds_its_new_id(api: respx.MockRouter,
                                                           clock: FakeClock) -> None:
    old = api.post("/v2/conversations/7001/notes").mock(
        return_value=ok({"message": "Resource not found"}, 404))
    api.get("/v2/conversations/7001").mock(return_value=httpx.Response(
        301, headers={"Location": f"{BASE}/v2/conversations/7003"}))
    api.get("/v2/conversations/7003").mock(return_value=ok(payload("conversation")))
    new = api.post("/v2/conversations/7003/notes").mock(
        return_value=httpx.Response(201, headers={"Resource-ID": "9101"}))

    async def go() -> int | None:
        c = client(clock)
        try:
            return await c.note(7001, "Assigned to Ana", "sb:t1:forward:x:note")
        finally:
            await c.aclose()

    assert run(go()) == 9101
    assert old.call_count == 1 and new.call_count == 1


def test_deleted_conversations_and_the_thread_limit_are_typed(api: respx.MockRouter,
                                                              clock: FakeClock) -> None:
    api.get("/v2/conversations/7009").mock(return_value=ok({"message": "Not found"}, 404))
    api.post("/v2/conversations/7003/reply").mock(return_value=ok(
        {"message": "Conversation is locked", "logRef": "abc"}, 412))

    async def gone() -> None:
        c = client(clock)
        try:
            await c.get_conversation(7009)
        finally:
            await c.aclose()

    async def locked() -> None:
        c = client(clock)
        try:
            await c.reply(7003, 501, "Hi", "active", "sb:m")
        finally:
            await c.aclose()

    with pytest.raises(ConversationGone) as deleted:
        run(gone())
    assert deleted.value.conversation_id == 7009 and deleted.value.status == 404
    with pytest.raises(ThreadLimitReached, match="locked"):
        run(locked())


def test_the_too_old_412_is_told_from_the_thread_limit(api: respx.MockRouter,
                                                      clock: FakeClock) -> None:
    api.post("/v2/conversations/7003/reply").mock(return_value=ok(
        {"message": "Conversation is too old to add a thread", "logRef": "abc"}, 412))

    async def old() -> None:
        c = client(clock)
        try:
            await c.reply(7003, 501, "Hi", "active", "sb:m")
        finally:
            await c.aclose()

    with pytest.raises(ConversationTooOld, match="answer it in Help Scout") as refused:
        run(old())
    assert refused.value.status == 412 and refused.value.log_ref == "abc"


# -- writes -------------------------------------------------------------------------------
def test_a_tag_write_retried_reads_the_tags_again(api: respx.MockRouter,
                                                  clock: FakeClock) -> None:
    """PUT replaces the whole list: a tag an agent added while we backed off must survive."""
    before = payload("conversations-page-1")["_embedded"]["conversations"][1]  # "billing"
    after = {**before, "tags": [*before["tags"], {"id": 9, "tag": "vip"}]}
    api.get("/v2/conversations/7002").mock(side_effect=[ok(before), ok(after)])
    put = api.put("/v2/conversations/7002/tags").mock(side_effect=[
        ok({"message": "down"}, 503), httpx.Response(204)])

    async def go() -> list[str]:
        c = client(clock)
        try:
            return await c.add_tags(7002, ["priority-high"])
        finally:
            await c.aclose()

    assert run(go()) == ["billing", "vip", "priority-high"]
    assert body_of(put) == {"tags": ["billing", "vip", "priority-high"]}


def test_tags_are_merged_get_then_put_the_union(api: respx.MockRouter, clock: FakeClock) -> None:
    conversation = payload("conversations-page-1")["_embedded"]["conversations"][1]  # "billing"
    api.get("/v2/conversations/7002").mock(return_value=ok(conversation))
    put = api.put("/v2/conversations/7002/tags").mock(return_value=httpx.Response(204))

    async def go() -> tuple[list[str], list[str]]:
        c = client(clock)
        try:
            first = await c.add_tags(7002, ["Priority-High", "billing"])
            again = await c.add_tags(7002, ["billing"])
            return first, again
        finally:
            await c.aclose()

    first, again = run(go())
    assert first == ["billing", "priority-high"]
    assert body_of(put) == {"tags": ["billing", "priority-high"]}
    assert again == ["billing"] and put.call_count == 1  # nothing new: no write


def test_assign_and_status_are_json_patch_replace_ops(api: respx.MockRouter,
                                                      clock: FakeClock) -> None:
    patch = api.patch("/v2/conversations/7003").mock(return_value=httpx.Response(204))

    async def go() -> None:
        c = client(clock)
        await c.assign(7003, 12)
        await c.set_status(7003, "closed")
        await c.aclose()

    run(go())
    assert body_of(patch, 0) == {"op": "replace", "path": "/assignTo", "value": 12}
    assert body_of(patch, 1) == {"op": "replace", "path": "/status", "value": "closed"}


def test_a_reply_names_its_customer_status_and_carries_the_marker(api: respx.MockRouter,
                                                                  clock: FakeClock) -> None:
    reply = api.post("/v2/conversations/7003/reply").mock(
        return_value=httpx.Response(201, headers={"Resource-ID": "9102"}))

    async def go() -> int | None:
        c = client(clock)
        try:
            return await c.reply(7003, 501, "<p>Could you tell us more?</p>", "pending",
                                 "sb:t3:ask_info:helpscout:7003:9006")
        finally:
            await c.aclose()

    assert run(go()) == 9102
    sent = body_of(reply)
    assert sent["customer"] == {"id": 501} and sent["status"] == "pending"
    assert marker.has_marker(sent["text"], "sb:t3:ask_info:helpscout:7003:9006")
    assert marker.strip(sent["text"]) == "<p>Could you tell us more?</p>"


def _threads_with(body: str) -> dict[str, Any]:
    threads = payload("threads")
    threads["_embedded"]["threads"].append({
        "id": 9200, "type": "message", "status": "active", "state": "published", "body": body,
        "createdBy": {"id": 99, "type": "user"}, "createdAt": "2026-11-16T10:00:00Z"})
    return threads


def test_an_unknown_outcome_write_is_not_repeated_when_our_thread_is_there(
        api: respx.MockRouter, clock: FakeClock) -> None:
    key = "sb:t3:acknowledge:helpscout:7003:9006"
    reply = api.post("/v2/conversations/7003/reply").mock(
        side_effect=[httpx.ReadTimeout("no answer")])
    threads = api.get("/v2/conversations/7003/threads").mock(
        return_value=ok(_threads_with(marker.embed("<p>Thanks!</p>", key))))

    async def go() -> int | None:
        c = client(clock)
        try:
            return await c.reply(7003, 501, "<p>Thanks!</p>", "active", key)
        finally:
            await c.aclose()

    assert run(go()) == 9200
    assert reply.call_count == 1 and threads.call_count == 1


def test_an_unknown_outcome_write_is_repeated_when_our_thread_is_not_there(
        api: respx.MockRouter, clock: FakeClock) -> None:
    reply = api.post("/v2/conversations/7003/reply").mock(side_effect=[
        httpx.RemoteProtocolError("cut"), httpx.Response(201, headers={"Resource-ID": "9201"})])
    threads = api.get("/v2/conversations/7003/threads").mock(
        return_value=ok(_threads_with(marker.embed("<p>Another</p>", "sb:someone-else"))))

    async def go() -> int | None:
        c = client(clock)
        try:
            return await c.reply(7003, 501, "<p>Thanks!</p>", "active", "sb:t3:ack")
        finally:
            await c.aclose()

    assert run(go()) == 9201
    assert reply.call_count == 2 and threads.call_count == 1


def test_a_write_that_never_left_is_retried_without_looking(api: respx.MockRouter,
                                                            clock: FakeClock) -> None:
    reply = api.post("/v2/conversations/7003/reply").mock(side_effect=[
        httpx.ConnectError("refused"), httpx.Response(201, headers={"Resource-ID": "9202"})])
    threads = api.get("/v2/conversations/7003/threads").mock(return_value=ok(payload("threads")))

    async def go() -> int | None:
        c = client(clock)
        try:
            return await c.reply(7003, 501, "Hi", "active", "sb:t3:ack")
        finally:
            await c.aclose()

    assert run(go()) == 9202
    assert reply.call_count == 2 and threads.call_count == 0


# -- pacing -------------------------------------------------------------------------------
def test_an_exhausted_budget_waits_for_the_window_instead_of_a_429(api: respx.MockRouter,
                                                                  clock: FakeClock) -> None:
    low = {"X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "1"}
    api.get("/v2/users").mock(return_value=httpx.Response(200, json=payload("users"), headers=low))
    patch = api.patch("/v2/conversations/7003").mock(return_value=httpx.Response(204, headers=RATE))
    start = clock.now()

    async def go() -> HelpScoutClient:
        c = client(clock, rate_window=60)
        await c.list_users()  # the answer says 1 unit left: a write costs 2
        await c.set_status(7003, "pending")
        await c.aclose()
        return c

    c = run(go())
    assert patch.call_count == 1 and c.stats["429"] == 0
    assert (clock.now() - start).total_seconds() >= 60
