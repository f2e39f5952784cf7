"""No input makes parsing raise anything but MalformedMessage, nor detection or bounce
reading raise at all: arbitrary bytes, header-shaped text, and mutated real samples."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import MalformedMessage
from bot.mail.automated import detect_automated
from bot.mail.bounce import read_bounce
from bot.mail.parse import parse_message
from tests.conftest import CORPUS
from tests.mail._fixtures import FIXTURES, OWN, OWN_DOMAIN

# Fixtures always; the shared corpus too when it is there (it adds variety, not verdicts).
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.eml"))] + (
    [p.read_bytes() for p in sorted(CORPUS.glob("*/*.eml"))] if CORPUS.is_dir() else [])

# Byte strings that steer mutations into the parser's corners.
TOKENS = [
    b"\r", b"\n", b"\r\n", b"\n\n", b"--", b"--b--\n", b"=?utf-8?b?", b"=?x-bogus?q?=E9", b"?=",
    b"Content-Type: multipart/mixed; boundary=b\n", b"Content-Type: message/rfc822\n\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\n",
    b"Content-Type: message/delivery-status\n\n", b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n", b'charset="x-bogus"', b"charset=base64",
    b"filename*=utf-8''%E9", b"<", b">", b"(", b'"', b"\\", b"\x00", b"\xff\xfe", b"\xc3",
    b"From: ", b"Return-Path: <>\n", b"Auto-Submitted: auto-replied\n", b"Action: failed\n",
    b"Status: 5.1.1\n", b"Final-Recipient: rfc822;", b"<![bogus ", b"<a ", b"<script>",
]
HEADER_NAMES = [
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
    "References", "Return-Path", "Content-Type", "Content-Transfer-Encoding",
    "Content-Disposition", "MIME-Version", "Auto-Submitted", "Precedence", "List-Id",
    "X-Failed-Recipients", "Sender",
]


def check(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except MalformedMessage:
        return
    assert isinstance(msg.text, str) and isinstance(msg.from_addr, str)
    assert all("\n" not in v and "\r" not in v for _, v in msg.headers.items)
    reason = detect_automated(msg, own_addresses=OWN, own_domain=OWN_DOMAIN)
    assert reason is None or isinstance(reason, str)
    read_bounce(msg)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["byte", "token", "delete", "truncate", "repeat"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "byte" and raw:
            raw[min(pos, len(raw) - 1)] = draw(st.integers(0, 255))
        elif op == "token":
            raw[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=12))
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "repeat":
            raw[pos:pos] = raw[pos:pos + draw(st.integers(1, 40))] * draw(st.integers(2, 50))
    return bytes(raw)


@st.composite
def header_shaped(draw: st.DrawFn) -> bytes:
    lines = [
        f"{draw(st.sampled_from(HEADER_NAMES))}: {draw(st.text(max_size=60))}"
        for _ in range(draw(st.integers(0, 8)))
    ]
    text = "\n".join(lines) + draw(st.sampled_from(["\n\n", "\r\n\r\n", "\r\r", ""]))
    text += draw(st.text(max_size=200))
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), "replace")


FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(header_shaped())
def test_header_shaped_text(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(mutated_samples())
def test_mutated_real_samples(raw: bytes) -> None:
    check(raw)
