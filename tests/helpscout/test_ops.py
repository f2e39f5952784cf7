"""The outbox payloads for Help Scout: shapes, the reply status rule, validation."""

from __future__ import annotations

import json

import pytest

from bot.helpscout import ops
from bot.vocab import spec


def test_reply_op_is_stable_json_with_html_body_and_explicit_status() -> None:
    payload = ops.reply_op(7001, 501, "Hi Dana,\n\nWe're on it.\nAna", None, "active", "sb:t1:ack")
    assert payload == ops.reply_op(7001, 501, "Hi Dana,\n\nWe're on it.\nAna", None, "active",
                                   "sb:t1:ack")
    data = json.loads(payload)
    assert data == {"v": 1, "op": "reply", "conversation_id": 7001, "customer_id": 501,
                    "body": "<p>Hi Dana,</p><p>We&#x27;re on it.<br>Ana</p>",
                    "status": "active", "marker": "sb:t1:ack"}
    assert ops.parse_op(payload) == ops.ReplyOp(7001, 501, data["body"], "active", "sb:t1:ack")


def test_the_html_alternative_is_used_when_given() -> None:
    op = ops.parse_op(ops.reply_op(7001, 501, "text", "<p><b>html</b></p>", "pending", "m"))
    assert isinstance(op, ops.ReplyOp) and op.body == "<p><b>html</b></p>"


@pytest.mark.parametrize(("kind", "status"), [
    ("acknowledge", "active"), ("forwarded", "active"), ("ask_info", "pending"),
    ("answer", "pending"), ("check_in", "pending"), ("closure", "closed")])
def test_the_reply_status_rule(kind: str, status: str) -> None:
    assert spec(kind).helpscout_status == status


def test_a_reply_must_name_a_status_and_a_marker() -> None:
    with pytest.raises(ValueError, match="status"):
        ops.reply_op(7001, 501, "x", None, "open", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="marker"):
        ops.reply_op(7001, 501, "x", None, "active", " ")


def test_the_other_operations_round_trip() -> None:
    assert ops.parse_op(ops.note_op(7001, "Assigned to Ana (rule: billing)", "m:note")) == \
        ops.NoteOp(7001, "<p>Assigned to Ana (rule: billing)</p>", "m:note")
    assert ops.parse_op(ops.assign_op(7001, 12)) == ops.AssignOp(7001, 12)
    assert ops.parse_op(ops.status_op(7001, "closed")) == ops.StatusOp(7001, "closed")
    assert ops.parse_op(ops.tags_op(7001, ["Priority-Critical", " billing ", "billing"])) == \
        ops.TagsOp(7001, ("priority-critical", "billing"))


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"v": 2, "op": "reply"}',
    b'{"v": 1, "op": "delete", "conversation_id": 1}',
    b'{"v": 1, "op": "reply", "conversation_id": 1}',
    b'{"v": 1, "op": "status", "conversation_id": 1, "status": "gone"}'])
def test_foreign_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        ops.parse_op(payload)


def test_builders_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        ops.tags_op(7001, ["", " "])
    with pytest.raises(ValueError):
        ops.assign_op(7001, -1)
    with pytest.raises(ValueError):
        ops.status_op(7001, "open")
