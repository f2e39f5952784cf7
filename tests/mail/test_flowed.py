"""format=flowed (RFC 3676): long lines wrapped with soft breaks, read back unchanged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.mail.mime import FLOWED_WIDTH, flowed
from tests.helpers import unflow

WORDS = st.lists(st.text(alphabet="abcdefghij>-", min_size=1, max_size=12), max_size=40)


def test_long_lines_are_wrapped_and_short_ones_kept() -> None:
    text = "Hi Ann,\n\n" + "word " * 40 + "end\n-- \nThe team"
    out = flowed(text)
    assert all(len(line) <= FLOWED_WIDTH + 1 for line in out.split("\n"))
    assert out.startswith("Hi Ann,\n\n")
    assert "\n-- \n" in out  # the signature separator keeps its space and its own line
    assert unflow(out) == text


def test_lines_that_would_read_as_quotes_are_space_stuffed() -> None:
    assert flowed("> not a quote\nFrom here") == " > not a quote\n From here"


@given(paragraphs=st.lists(WORDS.map(" ".join), max_size=5))
@settings(max_examples=200, deadline=None)
def test_any_text_reads_back_as_written(paragraphs: list[str]) -> None:
    text = "\n".join(p.rstrip(" ") for p in paragraphs)
    out = flowed(text)
    assert unflow(out) == text
    for line in out.split("\n"):
        # a soft break's space and a stuffing space may come on top of the width
        assert len(line) <= FLOWED_WIDTH + 2 or " " not in line.strip()
