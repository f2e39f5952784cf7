"""The Help Scout channel executing outbox operations against the fake Help Scout."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest

from bot.channels.base import OutboxItem, SendOutcome
from bot.channels.helpscout import HelpScoutChannel
from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout, Fault
from bot.helpscout import marker, ops
from bot.helpscout.client import HelpScoutClient
from bot.vocab import HelpScoutStatus, spec
from tests.helpscout.conftest import hs_settings, run

_ids = count(1)


def item(payload: bytes, kind: str = "acknowledge", attempts: int = 0) -> OutboxItem:
    n = next(_ids)
    return OutboxItem(id=n, idem_key=f"k{n}", channel="helpscout", kind=kind, ticket_id=1,
                      message_id=f"helpscout:k{n}", envelope_from="", recipients=(),
                      payload=payload, attempts=attempts)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeHelpScout]:
    yield FakeHelpScout(clock=clock)


def send(fake: FakeHelpScout, clock: FakeClock, *items: OutboxItem) -> list[SendOutcome]:
    async def go() -> list[SendOutcome]:
        client = HelpScoutClient(hs_settings(), clock=clock, transport=fake.transport(),
                                 max_attempts=3)
        channel = HelpScoutChannel(client)
        try:
            return await channel.send_batch(list(items))
        finally:
            await channel.aclose()

    return run(go())


def customer_of(fake: FakeHelpScout, conv: int) -> int:
    return int(fake.conversation(conv)["primaryCustomer"]["id"])


def bodies(fake: FakeHelpScout, conv: int, kind: str) -> list[dict[str, Any]]:
    return [t for t in fake.threads(conv) if t["type"] == kind]


def test_an_acknowledgement_is_one_reply_that_leaves_the_conversation_active(
        fake: FakeHelpScout, clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>My site is down</p>")
    (outcome,) = send(fake, clock, item(ops.reply_op(
        conv, customer_of(fake, conv), "Hi Ann,\nWe're on it.", None,
        HelpScoutStatus.ACTIVE, "sb:t1:acknowledge:helpscout:7001:9001")))
    (reply,) = bodies(fake, conv, "message")
    assert outcome == SendOutcome("sent", f"reply thread {reply['id']} (status active)",
                                  str(reply["id"]))
    assert marker.has_marker(reply["body"], "sb:t1:acknowledge:helpscout:7001:9001")
    assert fake.conversation(conv)["status"] == "active"
    assert fake.stats.by_endpoint["POST /v2/conversations/{id}/reply"] == 1


@pytest.mark.parametrize(("kind", "status"), [("ask_info", "pending"), ("check_in", "pending"),
                                              ("closure", "closed")])
def test_replies_that_wait_or_close_say_so(kind: str, status: str, fake: FakeHelpScout,
                                           clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    (outcome,) = send(fake, clock, item(ops.reply_op(
        conv, customer_of(fake, conv), "text", None, spec(kind).helpscout_status, f"sb:{kind}"),
        kind))
    assert outcome.status == "sent"
    assert fake.conversation(conv)["status"] == status


def test_a_forward_assigns_notes_tells_the_requester_and_merges_tags(
        fake: FakeHelpScout, clock: FakeClock) -> None:
    conv = fake.add_conversation("Emails bouncing", "dana@example.com", "<p>550 blocked</p>",
                                 tags=("vip",))
    key = "t7:forward:helpscout:7001:9001"
    outcomes = send(
        fake, clock,
        item(ops.assign_op(conv, 12), "assign"),
        item(ops.note_op(conv, "Assigned by supportbot to Desmond (rule: deliverability).",
                         f"sb:{key}:note"), "note"),
        item(ops.reply_op(conv, customer_of(fake, conv), "Desmond from our deliverability team "
                          "has your ticket.", None, HelpScoutStatus.ACTIVE,
                          f"sb:{key}:reply"), "forwarded"),
        item(ops.tags_op(conv, ["priority-critical", "deliverability"]), "tags"))
    assert [o.status for o in outcomes] == ["sent"] * 4
    state = fake.conversation(conv)
    assert state["assignee"]["id"] == 12
    assert [t["tag"] for t in state["tags"]] == ["vip", "priority-critical", "deliverability"]
    (note,) = bodies(fake, conv, "note")
    assert "Desmond (rule: deliverability)" in note["body"]
    assert state["status"] == "active"
    assert outcomes[3].detail == "tags: vip, priority-critical, deliverability"


def test_a_reply_without_a_customer_id_uses_the_conversations(fake: FakeHelpScout,
                                                              clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    (outcome,) = send(fake, clock, item(ops.reply_op(conv, 0, "Hi", None, "active", "sb:x")))
    assert outcome.status == "sent"


def test_permanent_problems_fail_and_the_batch_goes_on(fake: FakeHelpScout,
                                                       clock: FakeClock) -> None:
    gone = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    fake.delete(gone)
    full = fake.add_conversation("Long", "bob@example.com", "<p>?</p>")
    fake.max_threads = 2
    fine = fake.add_conversation("Fine", "cy@example.com", "<p>?</p>")
    outcomes = send(
        fake, clock,
        item(ops.reply_op(gone, 501, "Hi", None, "active", "sb:a")),
        item(ops.reply_op(full, customer_of(fake, full), "Hi", None, "active", "sb:b")),
        item(ops.assign_op(fine, 4242), "assign"),
        item(b"{not an operation", "assign"),
        item(ops.status_op(fine, "closed"), "status"))
    assert [o.status for o in outcomes] == ["failed", "failed", "failed", "failed", "sent"]
    assert "deleted" in outcomes[0].detail
    assert "412" in outcomes[1].detail
    assert "value: Unknown user" in outcomes[2].detail and "logRef" in outcomes[2].detail
    assert fake.conversation(fine)["status"] == "closed"


def test_an_outage_retries_later_without_queueing_the_rest(fake: FakeHelpScout,
                                                           clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    fake.inject(Fault("status", times=10, status=503))
    outcomes = send(fake, clock, item(ops.assign_op(conv, 12), "assign"),
                    item(ops.status_op(conv, "pending"), "status"))
    assert [o.status for o in outcomes] == ["retry", "retry"]
    assert "503" in outcomes[0].detail and outcomes[1].detail.startswith("not attempted")
    assert fake.stats.by_endpoint["PATCH /v2/conversations/{id}"] == 3  # bounded retries


def test_a_retried_row_whose_reply_already_went_out_is_not_sent_again(
        fake: FakeHelpScout, clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    payload = ops.reply_op(conv, customer_of(fake, conv), "Hi", None, "active", "sb:t1:ack")
    first = send(fake, clock, item(payload))
    again = send(fake, clock, item(payload, attempts=1))  # e.g. a crash before "sent" was stored
    assert first[0].status == again[0].status == "sent"
    assert first[0].remote_id == again[0].remote_id
    assert len(bodies(fake, conv, "message")) == 1


def test_a_reply_cut_off_after_it_took_effect_exists_exactly_once(fake: FakeHelpScout,
                                                                  clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    fake.inject(Fault("cut", method="POST", path="/reply$", after_commit=True))
    (outcome,) = send(fake, clock, item(ops.reply_op(conv, customer_of(fake, conv), "Hi", None,
                                                     "active", "sb:t1:ack")))
    assert outcome.status == "sent"
    assert len(bodies(fake, conv, "message")) == 1
    assert fake.stats.by_endpoint["POST /v2/conversations/{id}/reply"] == 1


def test_a_reply_cut_off_before_it_took_effect_is_sent_once(fake: FakeHelpScout,
                                                            clock: FakeClock) -> None:
    conv = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    fake.inject(Fault("cut", method="POST", path="/reply$"))
    (outcome,) = send(fake, clock, item(ops.reply_op(conv, customer_of(fake, conv), "Hi", None,
                                                     "active", "sb:t1:ack")))
    assert outcome.status == "sent"
    assert len(bodies(fake, conv, "message")) == 1
    assert fake.stats.by_endpoint["POST /v2/conversations/{id}/reply"] == 2


def test_a_merged_conversation_is_written_at_its_new_id_and_reported(
        fake: FakeHelpScout, clock: FakeClock) -> None:
    old = fake.add_conversation("Help", "ann@example.com", "<p>?</p>")
    new = fake.add_conversation("Help again", "ann@example.com", "<p>??</p>")
    fake.merge(old, into=new)
    (outcome,) = send(fake, clock, item(ops.reply_op(old, customer_of(fake, new), "Hi", None,
                                                     "active", "sb:t1:ack")))
    assert outcome.status == "sent"
    assert f"conversation {old} was merged into {new}" in outcome.detail
    assert len(bodies(fake, new, "message")) == 1
