"""parse_message on the hazards real mail brings: endings, charsets, encodings, broken MIME."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import sha256

import pytest

from bot.errors import MalformedMessage
from bot.mail.parse import MAX_TEXT_CHARS, decode_header_value, parse_message
from tests.mail._fixtures import FIXTURES, fixture


def test_cr_only_and_crlf_read_like_lf() -> None:
    cr = fixture("parse/cr-only.eml")
    crlf = fixture("parse/crlf.eml")
    for msg in (cr, crlf):
        assert msg.subject == "Line endings"
        assert msg.from_addr == "ann@example.com"
        assert msg.from_name == "Ann Example"
        assert msg.to == ("support@example.com", "john@example.org")
        assert msg.text.strip() == "First line.\nSecond line."
        assert msg.message_id == "<endings@example.com>"
    assert cr.content_hash != crlf.content_hash  # the hash is of the bytes as given


def test_hash_and_raw_are_the_bytes_as_given() -> None:
    raw = (FIXTURES / "parse/crlf.eml").read_bytes()
    msg = parse_message(raw, source="imap", received_at=datetime(2026, 11, 16, tzinfo=UTC))
    assert msg.raw == raw
    assert msg.content_hash == sha256(raw).hexdigest()
    assert msg.source == "imap"
    assert msg.received_at == datetime(2026, 11, 16, tzinfo=UTC)
    assert msg.date == datetime(2026, 11, 16, 9, 56, tzinfo=UTC)


def test_unknown_charset_falls_back_and_bad_date_is_none() -> None:
    msg = fixture("parse/bogus-charset.eml")
    assert "Fakturan är fel" in msg.text
    assert msg.from_name == "Björn"
    assert msg.subject == "Hjälp mig med fakturan"
    assert msg.date is None


def test_undeclared_8bit_headers_and_body() -> None:
    msg = fixture("parse/undeclared-8bit.eml")
    assert msg.from_name == "René Dupont"
    assert msg.subject == "Problème de facture"
    assert "erronée" in msg.text


def test_encoded_words_and_threading_ids() -> None:
    msg = fixture("parse/encoded-words.eml")
    assert msg.from_name == "José García"
    assert msg.from_addr == "jose@example.es"
    # adjacent words join without their space; a word that does not decode stays as written
    assert msg.subject.startswith("😂 split éé and =?utf-8?B?")
    assert msg.in_reply_to == ("<sb.12.ack.abc@example.com>",)
    assert msg.references == ("<first@example.es>", "<sb.12.ack.abc@example.com>")


def test_multipart_without_boundary_keeps_its_text() -> None:
    msg = fixture("parse/no-boundary.eml")
    assert "The body is still here and readable." in msg.text
    assert "NoBoundaryInMultipartDefect" in msg.defects


def test_missing_close_boundary_still_lists_the_attachment() -> None:
    msg = fixture("parse/missing-close.eml")
    assert msg.text.strip() == "My export keeps failing."
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [
        ("export.pdf", "application/pdf", 9)]
    assert "CloseBoundaryNotFoundDefect" in msg.defects


def test_html_only_mail_is_reduced_to_text() -> None:
    msg = fixture("parse/html-only.eml")
    assert msg.content_type == "text/html"
    assert msg.html is not None and "<b>outlook.com</b>" in msg.html
    assert "Hi there," in msg.text
    assert "My emails to outlook.com are bouncing & I don't know why." in msg.text
    assert "- first\n" in msg.text
    for hidden in ("alert", "color", "ignored title"):
        assert hidden not in msg.text


def test_alternative_prefers_plain_and_lists_attachments() -> None:
    msg = fixture("parse/alternative-with-attachments.eml")
    assert msg.text.strip() == "The plain version wins."
    assert msg.html is not None and "<b>HTML</b>" in msg.html
    assert [(a.filename, a.content_type) for a in msg.attachments] == [
        ("Résumé.pdf", "application/pdf"), ("skärm.png", "image/png")]
    assert msg.content_type == "multipart/mixed"


def test_report_type_return_path_and_report_parts() -> None:
    msg = fixture("bounce/dsn-permanent.eml")
    assert msg.content_type == "multipart/report"
    assert msg.report_type == "delivery-status"
    assert msg.return_path == ""
    assert [a.content_type for a in msg.attachments] == [
        "message/delivery-status", "message/rfc822"]
    assert "could not be delivered" in msg.text


def test_return_path_absent_is_none_present_is_bare() -> None:
    assert fixture("parse/crlf.eml").return_path is None
    msg = parse_message(b"Return-Path: <Ann@Example.COM>\nFrom: ann@example.com\n\nhi\n")
    assert msg.return_path == "ann@example.com"


def test_sender_without_address_keeps_its_name() -> None:
    msg = parse_message(b"From: MAILER-DAEMON <>\nSubject: failure notice\n\nbody\n")
    assert (msg.from_addr, msg.from_name) == ("", "MAILER-DAEMON")


def test_bare_message_id_is_bracketed() -> None:
    msg = parse_message(b"From: a@example.com\nMessage-ID: abc@example.com\n\nhi\n")
    assert msg.message_id == "<abc@example.com>"


def test_header_values_never_keep_cr_or_lf() -> None:
    raw = b"From: a@example.com\r\nSubject: one\r\n two\r\n\tthree\r\nX-Odd: a\rb\r\n\r\nbody"
    msg = parse_message(raw)
    assert msg.subject == "one two three"
    assert all("\r" not in v and "\n" not in v for _, v in msg.headers.items)


def test_huge_body_is_capped_for_rules_but_kept_raw() -> None:
    raw = b"From: a@example.com\nSubject: big\n\n" + b"word " * 200_000
    msg = parse_message(raw)
    assert len(msg.text) == MAX_TEXT_CHARS
    assert any("truncated" in d for d in msg.defects)
    assert msg.raw == raw


def test_hostile_nesting_degrades_to_headers() -> None:
    raw = b"From: a@example.com\nSubject: deep\n" + b"Content-Type: message/rfc822\n\n" * 3000
    msg = parse_message(raw)
    assert msg.subject == "deep" and msg.from_addr == "a@example.com"


@pytest.mark.parametrize("raw", [
    b"", b"  \r\n\n", b"just some words without any header",
    b"\x00\x01\x02\x03 binary", b"From nobody Mon Jan 1 00:00:00 2026\n\nbody only",
])
def test_bytes_that_are_not_an_email_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(raw)


def test_decode_header_value_keeps_what_it_cannot_decode() -> None:
    assert decode_header_value("=?utf-8?q?caf=C3=A9?=") == "café"
    assert decode_header_value("=?x-nope?q?caf=E9?=") == "café"  # unknown charset: cp1252 guess
    assert decode_header_value("=?utf-8?b?***?=") == "=?utf-8?b?***?="
    assert decode_header_value("a\r\n b") == "a b"
