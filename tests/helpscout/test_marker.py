"""The invisible fingerprint that recognises the bot's own Help Scout threads."""

from __future__ import annotations

import html
import unicodedata

from bot.helpscout import marker

KEY = "sb:t12:acknowledge:helpscout:7001:9001"


def test_the_fingerprint_is_invisible_and_embedded_once() -> None:
    body = marker.embed("<p>Thanks, we're on it.</p>", KEY)
    added = body.removeprefix("<p>Thanks, we're on it.</p>")
    assert added and all(unicodedata.category(ch) == "Cf" for ch in added)  # format: unseen
    assert marker.embed(body, KEY) == body


def test_it_names_one_key_only() -> None:
    body = marker.embed("<p>Hi</p>", KEY)
    assert marker.has_marker(body, KEY)
    assert not marker.has_marker(body, KEY + ":note")
    assert marker.is_ours(body)
    assert not marker.is_ours("<p>Hi</p>") and not marker.is_ours(None)


def test_it_survives_being_stored_as_character_references() -> None:
    body = marker.embed("<p>Hi</p>", KEY)
    encoded = "".join(f"&#{ord(c)};" if ord(c) > 0x2000 else c for c in body)
    assert marker.has_marker(encoded, KEY) and marker.is_ours(encoded)
    assert html.unescape(encoded) == body


def test_strip_leaves_the_readable_text() -> None:
    assert marker.strip(marker.embed("Thanks!", KEY)) == "Thanks!"
