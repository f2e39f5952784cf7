"""HTML bodies become readable text for the rules."""

from __future__ import annotations

from bot.mail.html2text import html_to_text


def test_blocks_become_lines_and_entities_are_unescaped() -> None:
    html = "<div>Hello&nbsp;<b>Ann</b></div><p>Fish &amp; chips<br>today</p><h1>Title</h1>"
    assert html_to_text(html) == "Hello Ann\n\nFish & chips\ntoday\n\nTitle"


def test_scripts_styles_and_head_are_dropped() -> None:
    html = "<html><head><title>t</title><style>p{}</style></head><body>" \
           "<script>var x = 1;</script><p>visible</p></body></html>"
    assert html_to_text(html) == "visible"


def test_table_cells_share_a_line() -> None:
    assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>") \
        == "a b\nc"


def test_list_items_and_image_alt_text() -> None:
    assert html_to_text('<ul><li>one</li><li>two <img alt="logo" src="x"></li></ul>') \
        == "- one\n- two logo"


def test_markup_the_stdlib_parser_rejects_still_gives_text() -> None:
    # html.parser raises AssertionError on unknown marked sections
    assert html_to_text("<p>a</p><![bogus x]><p>b &amp; c</p>") == "a\n\nb & c"


def test_unclosed_tags_stay_linear_and_readable() -> None:
    # "<a " repeated made html.parser quadratic (seconds for 30 kB): it must be quick and
    # the text must survive
    text = html_to_text("<a " * 50_000 + "<p>tail</p>")
    assert text.endswith("tail")
