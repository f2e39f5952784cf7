"""The fake Help Scout over real loopback HTTP: the budget, its headers, faults, shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.channels.base import OutboxItem
from bot.channels.helpscout import HelpScoutChannel
from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout, Fault
from bot.helpscout import ops
from bot.helpscout.client import HelpScoutClient
from bot.sources.helpscout import HelpScoutSource
from tests.helpscout.conftest import MemoryCursors, hs_settings, payload, run


@pytest.fixture
def served(clock: FakeClock) -> Iterator[tuple[FakeHelpScout, httpx.Client]]:
    fake = FakeHelpScout(clock=clock, limit=10, window_seconds=60)
    with fake.serve() as base_url, httpx.Client(base_url=base_url) as http:
        token = http.post("/v2/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": fake.app_id,
            "client_secret": fake.app_secret}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield fake, http


def test_writes_cost_two_units_and_the_limit_answers_429_with_its_headers(
        served: tuple[FakeHelpScout, httpx.Client], clock: FakeClock) -> None:
    fake, http = served
    clock.set(clock.now().replace(second=0))  # the start of a window
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    patch = {"op": "replace", "path": "/status", "value": "pending"}
    answers = [http.patch(f"/v2/conversations/{conv}", json=patch) for _ in range(4)]
    assert [a.status_code for a in answers] == [204] * 4
    assert answers[-1].headers["X-RateLimit-Limit-Minute"] == "10"
    assert answers[-1].headers["X-RateLimit-Remaining-Minute"] == "2"
    assert http.get("/v2/users").status_code == 200
    assert http.patch(f"/v2/conversations/{conv}", json=patch).status_code == 429  # 2 > 1 left
    assert http.get("/v2/users").status_code == 200
    limited = http.get("/v2/users")
    assert limited.status_code == 429
    assert limited.json() == payload("error-rate-limit")
    assert limited.headers["X-RateLimit-Remaining-Minute"] == "0"
    assert limited.headers["X-RateLimit-Retry-After"] == "60"
    assert fake.stats.units == 10 and fake.stats.rate_limited == 2
    assert fake.stats.rate_limited_by_endpoint == {"PATCH /v2/conversations/{id}": 1,
                                                   "GET /v2/users": 1}
    clock.advance(60)
    assert http.get("/v2/users").status_code == 200


def test_answers_are_shaped_like_the_documented_ones(
        served: tuple[FakeHelpScout, httpx.Client], clock: FakeClock) -> None:
    fake, http = served
    fake.add_conversation("Help", "ann@example.com", "<p>?</p>", tags=("billing",))
    listing = http.get("/v2/conversations", params={"status": "all", "embed": "threads"}).json()
    sample = payload("conversations-page-1")
    assert set(listing) == set(sample) - {"_links"} | {"_links"}
    assert set(listing["page"]) == set(sample["page"])
    conversation = listing["_embedded"]["conversations"][0]
    documented = sample["_embedded"]["conversations"][1]
    assert set(documented) <= set(conversation)
    assert set(documented["_embedded"]["threads"][0]) <= set(
        conversation["_embedded"]["threads"][0])
    assert conversation["tags"][0]["tag"] == "billing"
    assert "next" not in listing["_links"]
    empty = http.get("/v2/conversations", params={"status": "pending"}).json()
    assert "_embedded" not in empty and empty["page"]["totalElements"] == 0
    bad = http.get("/v2/conversations", params={"sortField": "colour"})
    assert bad.status_code == 400 and bad.json()["_embedded"]["errors"][0]["path"] == "sortField"
    assert "logRef" in bad.json()


def test_filters_pages_merges_and_deletions(served: tuple[FakeHelpScout, httpx.Client],
                                            clock: FakeClock) -> None:
    fake, http = served
    fake.limit = 10_000
    ids = [fake.add_conversation(f"n{i}", f"c{i}@example.com", "<p>?</p>") for i in range(30)]
    clock.advance(600)
    fake.add_customer_reply(ids[3], "<p>again</p>")
    since = {"status": "all", "modifiedSince": "2026-11-16T10:05:00Z"}
    recent = http.get("/v2/conversations", params=since).json()
    assert [c["id"] for c in recent["_embedded"]["conversations"]] == [ids[3]]
    first = http.get("/v2/conversations", params={"status": "all", "sortField": "createdAt",
                                                  "sortOrder": "asc"}).json()
    assert len(first["_embedded"]["conversations"]) == 25 and "next" in first["_links"]
    assert "sortOrder=asc" in first["_links"]["next"]["href"]
    fake.merge(ids[0], into=ids[1])
    moved = http.get(f"/v2/conversations/{ids[0]}", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith(f"/v2/conversations/{ids[1]}")
    assert http.post(f"/v2/conversations/{ids[0]}/notes", json={"text": "x"}).status_code == 404
    fake.delete(ids[2])
    assert http.get(f"/v2/conversations/{ids[2]}").status_code == 404
    survivor = http.get(f"/v2/conversations/{ids[1]}", params={"embed": "threads"}).json()
    kinds = [(t["type"], (t.get("action") or {}).get("type")) for t in
             survivor["_embedded"]["threads"]]
    assert ("lineitem", "merged") in kinds and kinds.count(("customer", None)) == 2
    fake.token_ttl = 10**9  # the same token, 61 days on
    clock.advance(61 * 86400)  # Help Scout forgets a merge after 60 days
    assert http.get(f"/v2/conversations/{ids[0]}",
                    follow_redirects=False).status_code == 404


def test_people_close_and_assign_without_a_reply(served: tuple[FakeHelpScout, httpx.Client],
                                                 clock: FakeClock) -> None:
    fake, http = served
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    fake.assign_by_agent(conv, 12, user_id=11)
    fake.set_status(conv, "closed", user_id=11)
    threads = http.get(f"/v2/conversations/{conv}/threads").json()["_embedded"]["threads"]
    closed, assigned = threads[0], threads[1]  # newest first
    assert (closed["type"], closed["status"], closed["action"]["type"]) == (
        "lineitem", "closed", "changed-ticket-status")
    assert closed["createdBy"]["id"] == 11 and "body" not in closed
    assert assigned["action"]["type"] == "changed-ticket-assignee"
    assert http.get(f"/v2/conversations/{conv}").json()["assignee"]["id"] == 12


def test_the_budget_is_the_plans_over_a_sliding_window(clock: FakeClock) -> None:
    assert FakeHelpScout(plan="standard").limit == 200
    assert FakeHelpScout(plan="pro").limit == 800
    with pytest.raises(ValueError, match="Free has no API"):
        FakeHelpScout(plan="free")
    fake = FakeHelpScout(clock=clock, limit=4, window_seconds=60)
    with fake.serve() as base_url, httpx.Client(base_url=base_url) as http:
        token = http.post("/v2/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": fake.app_id,
            "client_secret": fake.app_secret}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        clock.set(clock.now().replace(second=50))
        assert http.get("/v2/users").status_code == 200
        assert http.get("/v2/users").status_code == 200
        clock.advance(20)  # a new minute on the wall clock, not for a sliding window
        assert http.get("/v2/users").status_code == 200
        assert http.get("/v2/users").status_code == 200
        limited = http.get("/v2/users")
        assert limited.status_code == 429
        assert limited.headers["X-RateLimit-Retry-After"] == "40"  # when the first two leave
        clock.advance(40)
        assert http.get("/v2/users").status_code == 200


def test_expired_tokens_answer_401_and_the_client_recovers(clock: FakeClock) -> None:
    fake = FakeHelpScout(clock=clock, token_ttl=3600)
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")

    async def go(base_url: str) -> None:
        client = HelpScoutClient(hs_settings(base_url), clock=clock)
        await client.get_conversation(conv)
        fake.expire_tokens()
        await client.get_conversation(conv)  # 401 -> new token -> the same request again
        clock.advance(3600)  # the client's cache expires with the server's token
        await client.get_conversation(conv)
        await client.aclose()

    with fake.serve() as base_url:
        run(go(base_url))
    assert fake.stats.tokens_issued == 3


def test_storms_timeouts_and_cuts_cost_no_duplicate_and_no_lost_write(clock: FakeClock) -> None:
    fake = FakeHelpScout(clock=clock)
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    customer = int(fake.conversation(conv)["primaryCustomer"]["id"])
    fake.inject(Fault("rate_limit", times=3, seconds=5))
    fake.inject(Fault("delay", method="POST", seconds=0.6, after_commit=True))

    async def go(base_url: str) -> int | None:
        client = HelpScoutClient(hs_settings(base_url), clock=clock, timeout=0.2)
        try:
            return await client.reply(conv, customer, "<p>Hi</p>", "active", "sb:t1:ack")
        finally:
            await client.aclose()

    with fake.serve() as base_url:
        thread = run(go(base_url))
    replies = [t for t in fake.threads(conv) if t["type"] == "message"]
    assert [r["id"] for r in replies] == [thread]
    assert fake.stats.rate_limited == 3


def test_source_and_channel_end_to_end_over_http(clock: FakeClock) -> None:
    """A new conversation is read, acknowledged, forwarded and tagged; the next poll knows it."""
    fake = FakeHelpScout(clock=clock)
    conv = fake.add_conversation("Emails bouncing", "dana@example.com", "<p>550 5.7.1</p>",
                                 customer_name="Dana Whitfield")
    cursors = MemoryCursors()

    async def go(base_url: str) -> list[Any]:
        settings = hs_settings(base_url)
        client = HelpScoutClient(settings, clock=clock)
        source = HelpScoutSource(client, settings, cursors, poll_seconds=30, clock=clock)
        channel = HelpScoutChannel(client)
        (batch,) = [b async for b in source.batches()]
        cursors[source.cursor_key] = batch.cursor or ""
        (new,) = batch.items
        msg = new.message
        assert msg is not None and msg.customer_id is not None
        marker = f"sb:t1:forward:{new.ref}"
        payloads = [ops.assign_op(conv, 12), ops.note_op(conv, "Assigned to Desmond.",
                                                         f"{marker}:note"),
                    ops.reply_op(conv, msg.customer_id, "Desmond has your ticket.", None,
                                 "active", f"{marker}:reply"),
                    ops.tags_op(conv, ["priority-critical"])]
        items = [OutboxItem(n, f"k{n}", "helpscout", "x", 1, "m", "", (), p)
                 for n, p in enumerate(payloads)]
        outcomes = await channel.send_batch(items)
        assert [o.status for o in outcomes] == ["sent"] * 4
        clock.advance(30)
        again = [i async for b in source.batches() for i in b.items]
        await channel.aclose()
        return again

    with fake.serve() as base_url:
        again = run(go(base_url))
    assert {i.author for i in again} == {"customer", "self"}  # the note is not a message
    assert fake.stats.rate_limited == 0
    assert fake.conversation(conv)["assignee"]["id"] == 12
