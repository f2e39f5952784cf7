"""The MIME writer, read back through the stdlib's parser: what is written is what is read.

compose() no longer goes through EmailMessage, so these pin the wire format directly:
encoded words, folding, quoted-printable bodies and multipart structure, for any text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.mail import mime
from bot.mail.compose import clean, compose
from tests.helpers import unflow

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
MID = "<sb.7.acknowledge.00112233aabbccdd@example.com>"
# Text as requesters write it: any script, emoji, lone surrogates from undecodable input.
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
WORDS = st.lists(st.sampled_from(["Re:", "ça", "marche", "[#7]", "=?utf-8?q?x?=", "日本語",
                                  "a" * 120, "🙂", "x", "export", '"quoted"', "\\"]),
                 max_size=40).map(" ".join)


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def build(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "kind": "acknowledge", "from_header": "Acme Support <support@example.com>",
        "to": ["ann@customer.example"], "subject": "Hello", "text": "Hi\n", "html": None,
        "message_id": MID, "date": NOW}
    args.update(overrides)
    return compose(**args)  # type: ignore[arg-type]


def assert_wire_clean(raw: bytes) -> None:
    assert raw.isascii() or b"Content-Transfer-Encoding: 8bit" in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= mime.MAX_LINE for line in raw.split(b"\r\n"))
    for line in head.split(b"\r\n"):  # folded wherever a space allows: longer is one piece
        piece = line.split(b":", 1)[1] if line[:1] not in (b" ", b"\t") else line
        assert len(line) <= mime.FOLD_AT or b" " not in piece.strip()


@given(subject=st.one_of(ANY_TEXT, WORDS))
@settings(max_examples=300, deadline=None)
def test_any_subject_reads_back_as_written(subject: str) -> None:
    raw = build(subject=subject)
    assert_wire_clean(raw)
    assert str(parse(raw)["Subject"]) == clean(subject)[:998]


@given(name=st.one_of(ANY_TEXT.map(lambda s: s[:120]), WORDS))
@settings(max_examples=300, deadline=None)
def test_any_display_name_reads_back_and_never_changes_the_address(name: str) -> None:
    raw = build(to=[f"{name} <ann@customer.example>"])
    assert_wire_clean(raw)
    (address,) = parse(raw)["To"].addresses
    assert address.addr_spec == "ann@customer.example"
    expected = clean(name)
    if len(expected) >= 2 and expected[0] == expected[-1] == '"':
        # compose unquotes a quoted name, then cleans it like any name: an escaped space
        # next to a real one leaves two, which clean() folds into one
        expected = clean(re.sub(r"\\(.)", r"\1", expected[1:-1]))
    if len(mime.encoded_words(expected)) == 1 or not mime._needs_encoding(expected):
        assert address.display_name == expected
    else:
        # Several encoded words: RFC 2047 6.2 drops the space between them, but the
        # stdlib's phrase parser keeps it (it does so for its own output too).
        assert "".join(address.display_name.split()) == "".join(expected.split())


@given(text=ANY_TEXT, html=st.one_of(st.none(), ANY_TEXT))
@settings(max_examples=300, deadline=None)
def test_any_body_reads_back_with_only_its_line_endings_normalised(
        text: str, html: str | None) -> None:
    raw = build(text=text, html=html)
    assert_wire_clean(raw)
    msg = parse(raw)

    def normal(value: str, *, flowed: bool = False) -> str:
        lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()
        if flowed:  # RFC 3676: trailing spaces would mean "soft break", so they go
            lines = [line if line == "-- " else line.rstrip(" ") for line in lines]
        return "".join(line + "\n" for line in lines)

    plain = msg.get_body(("plain",))
    assert plain is not None
    assert plain.get_param("format") == "flowed"
    assert unflow(plain.get_content()) == normal(text, flowed=True)
    if html is not None:
        rich = msg.get_body(("html",))
        assert rich is not None
        assert rich.get_content().replace("\r\n", "\n") == normal(html)


def test_mixed_runs_keep_their_spaces_and_plain_words_stay_readable() -> None:
    raw = build(subject="Re: Grüße aus Köln und Zürich [#12]")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Re: " in head and b"[#12]" in head and b"aus" in head
    assert str(parse(raw)["Subject"]) == "Re: Grüße aus Köln und Zürich [#12]"


def test_an_encoded_word_in_plain_text_is_not_decoded_by_the_reader() -> None:
    assert str(parse(build(subject="literally =?utf-8?q?hi?= here"))["Subject"]) == \
        "literally =?utf-8?q?hi?= here"


def test_encoded_words_stay_within_75_characters_and_never_split_a_character() -> None:
    words = mime.encoded_words("é" * 100 + "🙂" * 30)
    assert all(len(w) <= 75 for w in words)
    from email.header import decode_header
    decoded = [part.decode("utf-8") for part, _ in decode_header(" ".join(words))]
    assert all("\ufffd" not in d for d in decoded)
    assert "".join(decoded) == "é" * 100 + "🙂" * 30


def test_a_word_too_long_to_fold_is_encoded_rather_than_overflowing_the_line() -> None:
    raw = build(subject="x" * 990)
    assert_wire_clean(raw)
    assert str(parse(raw)["Subject"]) == "x" * 990


@pytest.mark.parametrize("text,cte", [
    ("plain ascii\nlines\n", "7bit"),
    ("é\n", "quoted-printable"),
    ("x" * 901, "quoted-printable"),
    ("trailing space \n", "7bit"),
])
def test_transfer_encoding_is_7bit_only_for_short_ascii_lines(text: str, cte: str) -> None:
    assert mime.text_body(text)[0] == cte


def test_multipart_delimiters_own_the_crlf_before_them() -> None:
    _, body = mime.multipart("mixed", [([], b"a\r\n"), ([], b"exact")], "B")
    assert body == b"--B\r\n\r\na\r\n\r\n--B\r\n\r\nexact\r\n--B--\r\n"


def test_choose_boundary_skips_any_that_occurs_in_the_contents() -> None:
    candidates = iter(["AB", "CD"])
    assert mime.choose_boundary(lambda: next(candidates), [b"xxABxx"]) == "CD"
