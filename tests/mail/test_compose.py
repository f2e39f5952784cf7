"""Composition: threading headers, RFC 3834 markers, sanitised headers, MIME structure."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.mail import compose as compose_module
from bot.mail.compose import (
    ComposeError,
    compose,
    make_message_id,
    ticket_subject,
)
from bot.mail.ticketref import find_ticket_ref

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
FROM = "Acme Support <support@example.com>"


def build(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "kind": "acknowledge", "from_header": FROM, "to": ["ann@customer.example"],
        "subject": "Re: Export broken [#7]", "text": "Hi Ann,\n\nWe're on it.\n",
        "html": None, "message_id": make_message_id(7, "acknowledge", "example.com"),
        "date": NOW, "in_reply_to": "<orig@customer.example>",
        "references": ["<root@customer.example>"]}
    args.update(overrides)
    return compose(**args)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


# -- Message-IDs and subjects ---------------------------------------------------------------
def test_message_id_has_the_shape_the_detector_recognises() -> None:
    mid = make_message_id(123, "check_in", "Example.COM")
    assert re.fullmatch(r"<sb\.123\.check_in\.[0-9a-f]{16}@Example\.COM>", mid)
    assert mid != make_message_id(123, "check_in", "Example.COM")


def test_message_id_cannot_be_bent_by_odd_kind_or_domain() -> None:
    mid = make_message_id(1, "Ack>\r\nBcc: x", "ex ample.com>\r\n")
    assert re.fullmatch(r"<sb\.1\.ackbccx\.[0-9a-f]{16}@example\.com>", mid)


@pytest.mark.parametrize(("original", "expected"), [
    ("Export broken", "Re: Export broken [#123]"),
    ("Re: Export broken", "Re: Export broken [#123]"),
    ("RE: Re: AW: Sv: Export broken", "Re: Export broken [#123]"),
    ("Re[2]: Export broken [#123]", "Re: Export broken [#123]"),
    ("Re: [#123] Export broken", "Re: Export broken [#123]"),
    ("Fwd: Export broken", "Re: Fwd: Export broken [#123]"),
    ("", "Re: Your request [#123]"),
    ("   Re:  ", "Re: Your request [#123]"),
    ("Hi\r\nBcc: evil@example.net", "Re: Hi Bcc: evil@example.net [#123]"),
])
def test_ticket_subject(original: str, expected: str) -> None:
    assert ticket_subject(original, 123) == expected


def test_ticket_subject_caps_a_huge_subject_and_keeps_the_tag() -> None:
    subject = ticket_subject("x" * 5000, 9)
    assert len(subject) < 300 and subject.endswith("[#9]")


@given(st.text(max_size=200), st.integers(min_value=1, max_value=10**9))
@settings(max_examples=200, deadline=None)
def test_ticket_subject_round_trips_through_a_reply(original: str, ticket: int) -> None:
    subject = ticket_subject(original, ticket)
    assert find_ticket_ref("Re: " + subject) == ticket
    assert "\r" not in subject and "\n" not in subject
    assert ticket_subject(subject, ticket) == subject  # replying again does not stack


# -- the message itself -------------------------------------------------------------------------
def test_threading_and_marker_headers() -> None:
    raw = build()
    msg = parse(raw)
    assert msg["In-Reply-To"] == "<orig@customer.example>"
    assert msg["References"].split() == ["<root@customer.example>", "<orig@customer.example>"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Supportbot-Ticket"] == "7"
    assert msg["X-Supportbot-Kind"] == "acknowledge"
    assert msg["Precedence"] is None
    assert msg["Date"].datetime == NOW
    assert msg["From"].addresses[0].addr_spec == "support@example.com"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_references_are_capped_keeping_root_and_latest() -> None:
    chain = [f"<m{i}@x.example>" for i in range(60)]
    refs = parse(build(references=chain, in_reply_to="<last@x.example>"))["References"].split()
    assert len(refs) == 20
    assert refs[0] == "<m0@x.example>" and refs[-1] == "<last@x.example>"
    assert refs[-2] == "<m59@x.example>"


def test_long_message_ids_stay_threadable() -> None:
    """The stdlib would RFC 2047-encode these; mail clients could no longer thread."""
    long_ids = [f"<{'x' * 70}.{i}@{'sub.' * 10}example.com>" for i in range(4)]
    raw = build(references=long_ids[:3], in_reply_to=long_ids[3])
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    msg = parse(raw)
    assert msg["References"].split() == long_ids
    assert msg["In-Reply-To"] == long_ids[3]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_garbage_references_are_dropped() -> None:
    msg = parse(build(references=["not-an-id", "<ok@x.example>", "<ok@x.example>"],
                      in_reply_to="also garbage"))
    assert msg["References"].split() == ["<ok@x.example>"]
    assert msg["In-Reply-To"] is None


def test_auto_submitted_value_or_absent() -> None:
    assert parse(build(auto_submitted="auto-generated"))["Auto-Submitted"] == "auto-generated"
    assert "Auto-Submitted" not in header_names(build(auto_submitted=None))


def test_html_alternative_and_plain_text() -> None:
    msg = parse(build(text="Hi Zoë", html="<p>Hi <b>Zoë</b></p>"))
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == "Hi Zoë"
    assert html.get_content().strip() == "<p>Hi <b>Zoë</b></p>"


def test_plain_only_is_a_single_part_7bit_clean() -> None:
    raw = build(text="Grüße aus Köln\n" + "long " * 300)
    assert raw.isascii()
    msg = parse(raw)
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().startswith("Grüße aus Köln")


def test_original_is_attached_byte_for_byte_as_message_rfc822() -> None:
    original = (b"From: Ann <ann@customer.example>\nTo: support@example.com\n"
                b"Subject: =?utf-8?q?Caf=C3=A9?=\nMessage-ID: <orig@customer.example>\n"
                b"Content-Type: text/plain; charset=utf-8\n\nCaf\xc3\xa9 is broken\n"
                b"--===============0000000000000000000==\n")
    raw = build(kind="forward", html="<p>Forwarded</p>", attach_original=original)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "message/rfc822"
    inner = attachment.get_content()
    assert inner["Message-ID"] == "<orig@customer.example>"
    assert inner["Subject"] == "Café"
    assert original.replace(b"\n", b"\r\n").rstrip(b"\r\n") in raw
    assert msg.get_body(("plain",)) is not None


def test_a_boundary_inside_the_original_cannot_break_the_structure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Boundaries are random, so an original collides only by bad luck: force the bad luck.
    choices = iter(["FIXED", "FIXED", "FIXED", "outer-ok", "inner-ok"])
    monkeypatch.setattr(compose_module, "_boundary", lambda: next(choices))
    hostile = b"Subject: a\n\n--FIXED\nContent-Type: text/plain\n\nsmuggled\n--FIXED--\n"
    raw = build(html="<p>x</p>", attach_original=hostile)
    assert b"boundary=\"FIXED\"" not in raw
    msg = parse(raw)
    assert msg.get_boundary() == "outer-ok"
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "multipart/alternative", "message/rfc822"]
    assert hostile.replace(b"\n", b"\r\n").rstrip() in raw


# -- sanitising ---------------------------------------------------------------------------------
def test_crlf_in_subject_name_and_address_cannot_add_headers() -> None:
    raw = build(
        from_header="Acme\r\nBcc: evil@attacker.example <support@example.com>",
        to=["Ann\r\nBcc: evil@attacker.example <ann@customer.example>",
            "bob@customer.example\r\nBcc: evil@attacker.example"],
        subject="Help\r\nBcc: evil@attacker.example\r\n\r\nbody injection",
        cc=["Carl\nX-Evil: 1 <carl@customer.example>"],
        extra_headers={"X-Note": "a\r\nBcc: evil@attacker.example"})
    names = [n.lower() for n in header_names(raw)]
    assert "bcc" not in names and "x-evil" not in names
    assert names.count("to") == 1 and names.count("subject") == 1
    msg = parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@customer.example"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["carl@customer.example"]
    assert msg["From"].addresses[0].addr_spec == "support@example.com"
    assert msg["Subject"] == "Help Bcc: evil@attacker.example body injection"
    assert msg.get_content().startswith("Hi Ann")


def test_a_group_shaped_name_does_not_change_the_recipient() -> None:
    msg = parse(build(to=["x Bcc: evil@attacker.example <ann@customer.example>"]))
    (address,) = msg["To"].addresses
    assert address.addr_spec == "ann@customer.example"
    assert address.display_name == "x Bcc: evil@attacker.example"


def test_non_ascii_names_and_subjects_are_rfc2047_encoded() -> None:
    raw = build(from_header="Zoë Support <support@example.com>", subject="Réponse: ça marche")
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    msg = parse(raw)
    assert msg["Subject"] == "Réponse: ça marche"
    assert msg["From"].addresses[0].display_name == "Zoë Support"


def test_invalid_recipients_are_skipped_and_none_left_is_an_error() -> None:
    msg = parse(build(to=["not an address", "ann@customer.example"]))
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@customer.example"]
    with pytest.raises(ComposeError, match="no valid recipient"):
        build(to=["not an address", "123"])
    with pytest.raises(ComposeError, match="From"):
        build(from_header="Support")
    for bad_id in ("<a@b>\r\nBcc: x@y", "<sb.7.acknowledge.ab@example.com>\n", "a@b"):
        with pytest.raises(ComposeError, match="Message-ID"):
            build(message_id=bad_id)


@pytest.mark.parametrize("name", ["From", "bcc", "Content-Type", "X Bad", "X-Bad:", ""])
def test_extra_headers_cannot_replace_structure(name: str) -> None:
    with pytest.raises(ComposeError):
        build(extra_headers={name: "x"})


def test_extra_headers_replace_our_own_markers() -> None:
    raw = build(extra_headers={"X-Supportbot-Ticket": "7", "Precedence": "bulk"})
    names = header_names(raw)
    assert names.count("X-Supportbot-Ticket") == 1
    assert parse(raw)["Precedence"] == "bulk"


@given(subject=st.text(max_size=300), name=st.text(max_size=80))
@settings(max_examples=150, deadline=None)
def test_no_subject_or_name_ever_adds_a_header(subject: str, name: str) -> None:
    raw = compose(kind="acknowledge", from_header=FROM,
                  to=[f"{name} <ann@customer.example>"], subject=subject, text="x", html=None,
                  message_id=make_msgid(domain="example.com"), date=NOW)
    names = {n.lower() for n in header_names(raw)}
    assert names <= {"from", "to", "subject", "date", "message-id", "auto-submitted",
                     "x-auto-response-suppress", "x-supportbot-kind", "mime-version",
                     "content-type", "content-transfer-encoding"}
    assert [a.addr_spec for a in parse(raw)["To"].addresses] == ["ann@customer.example"]
