"""Writing the few MIME shapes the bot sends, directly as bytes.

The stdlib's ``EmailMessage`` builds every header through its header registry and refolds it
through a parse tree: about 1 ms per reply, half of what answering a backlog cost. The bot
only ever writes text, text + HTML, and either of those with an original attached, so this
module writes them itself and leaves the subtle, fast parts to the stdlib (``binascii``'s
quoted-printable and base64). Reading mail stays with the stdlib's parser, and the tests
read every shape written here back through it.

Everything here is ASCII on the wire: header text that is not plain ASCII becomes RFC 2047
encoded words, bodies that are not short-lined ASCII become quoted-printable. Callers pass
header values that are already one clean line (`bot.mail.compose.clean`); nothing here can
produce a line break that is not folding whitespace.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterable, Sequence

CRLF = b"\r\n"
FOLD_AT = 78  # RFC 5322 2.1.1: SHOULD; lines are never longer than MAX_LINE (MUST)
MAX_LINE = 998
LONG_TOKEN = 900  # a word this long cannot be folded; it is encoded (encoded words can be)
_WORD_PREFIX, _WORD_SUFFIX = "=?utf-8?b?", "?="
_WORD_BYTES = 45  # 60 base64 characters: encoded words stay within RFC 2047's 75
# RFC 5322 atext plus space: a display name made only of these needs no quoting.
_ATOM_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")
_NEWLINES = re.compile(r"\r\n|\r|\n")


# -- header text ---------------------------------------------------------------------------
def encoded_words(text: str) -> list[str]:
    """RFC 2047 'B' encoded words for ``text``, never splitting a character between two.

    Lone surrogates (from undecodable input) are written as '?' rather than failing.
    """
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        data = char.encode("utf-8", "replace")
        if chunk and len(chunk) + len(data) > _WORD_BYTES:
            words.append(_encode_word(bytes(chunk)))
            chunk.clear()
        chunk += data
    if chunk or not words:
        words.append(_encode_word(bytes(chunk)))
    return words


def _encode_word(data: bytes) -> str:
    return _WORD_PREFIX + binascii.b2a_base64(data, newline=False).decode("ascii") + _WORD_SUFFIX


def _needs_encoding(token: str) -> bool:
    # '=?' in plain text would be read back as the start of an encoded word
    return not token.isascii() or "=?" in token or len(token) > LONG_TOKEN


def unstructured(value: str) -> list[str]:
    """The pieces of an unstructured header (Subject, X-...), to be joined by folding spaces.

    ASCII words stay readable; each run of words that needs encoding becomes one run of
    encoded words with its inner spaces inside them: whitespace *between* two encoded words
    is dropped by decoders (RFC 2047 section 6.2), while whitespace between an encoded word
    and a plain one is kept, so the pieces read back as ``value``.
    """
    pieces: list[str] = []
    run: list[str] = []
    for token in value.split(" ") if value else []:
        if _needs_encoding(token):
            run.append(token)
            continue
        if run:
            pieces += encoded_words(" ".join(run))
            run = []
        pieces.append(token)
    if run:
        pieces += encoded_words(" ".join(run))
    return pieces


def phrase(name: str) -> list[str]:
    """A display name as pieces: atoms as is, specials quoted, anything else encoded."""
    if not name:
        return []
    if _needs_encoding(name):
        return encoded_words(name)
    if _ATOM_PHRASE.match(name):
        return name.split(" ")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    # Folding inside a quoted string is allowed (RFC 5322 3.2.4) and unfolds to the same
    # single space, so its words are pieces too.
    return f'"{quoted}"'.split(" ")


def mailbox(name: str, address: str) -> list[str]:
    """``Name <address>`` as pieces; a bare ``address`` when there is no name."""
    if not name:
        return [address]
    return [*phrase(name), f"<{address}>"]


def address_list(mailboxes: Iterable[tuple[str, str]]) -> list[str]:
    """Comma-separated mailboxes as pieces (the comma rides on the last piece of each)."""
    pieces: list[str] = []
    for name, address in mailboxes:
        if pieces:
            pieces[-1] += ","
        pieces += mailbox(name, address)
    return pieces


def header(name: str, pieces: Sequence[str]) -> bytes:
    """``Name: piece piece ...`` folded at spaces between pieces to lines of ``FOLD_AT``."""
    lines: list[str] = []
    line = f"{name}:"
    for piece in pieces:
        if len(line) + 1 + len(piece) > FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = " " + piece
        else:
            line += " " + piece
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + CRLF


def param_value(value: str) -> str:
    """A Content-Type/-Disposition parameter value, always quoted (RFC 2045 5.1)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- bodies --------------------------------------------------------------------------------
def text_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF endings, ending in CRLF) for a text part."""
    lines = _NEWLINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    if text.isascii() and all(len(line) <= 900 for line in lines):
        return "7bit", "".join(line + "\r\n" for line in lines).encode("ascii")
    data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    return "quoted-printable", encoded.replace(b"\n", CRLF)


FLOWED_WIDTH = 72


def flowed(text: str, width: int = FLOWED_WIDTH) -> str:
    """RFC 3676 ``format=flowed``: long lines wrapped with soft breaks (a trailing space),
    so every client shows short lines and flowing clients re-join the paragraph.

    Trailing spaces of the text are removed (they would mean "soft break"), except the
    signature separator ``-- ``; lines starting with a space, ``>`` or ``From `` are
    space-stuffed (4.4). Linear in the text's length.
    """
    out: list[str] = []
    for line in _NEWLINES.split(text):
        if line == "-- ":
            out.append(line)
            continue
        line = line.rstrip(" ")
        chunks: list[str] = []
        while len(line) > width:
            cut = line.rfind(" ", 1, width + 1)
            # one long word: break after it; never leave "-- " alone on a line (a signature
            # separator would read as a hard break)
            if cut <= 0 or line[:cut + 1] == "-- ":
                cut = line.find(" ", max(width, 3))
                if cut < 0:
                    break
            chunks.append(line[:cut + 1])  # the space stays: a soft line break
            line = line[cut + 1:]
        chunks.append(line)
        out.extend(" " + c if c.startswith((" ", ">", "From ")) else c for c in chunks)
    result = "\n".join(out)
    if text and out and out[-1] == "" and not text.endswith(("\n", "\r")):
        result += "\n"  # a last line of spaces is still a line, not the final line break
    return result


def text_part(subtype: str, text: str, *, flow: bool = False) -> tuple[list[bytes], bytes]:
    """(headers, body) of a ``text/<subtype>`` part in UTF-8; ``flow``: format=flowed."""
    cte, body = text_body(flowed(text) if flow else text)
    params = [f"text/{subtype};", 'charset="utf-8"' + (";" if flow else "")]
    if flow:
        params.append("format=flowed")
    return [header("Content-Type", params),
            header("Content-Transfer-Encoding", [cte])], body


def multipart(subtype: str, parts: Sequence[tuple[list[bytes], bytes]], boundary: str,
              ) -> tuple[list[bytes], bytes]:
    """(headers, body) of a ``multipart/<subtype>`` holding ``parts``.

    The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1): a text body
    ending in CRLF keeps its last line break, and an attached original passed without its
    final CRLF keeps its exact bytes.
    """
    delimiter = b"--" + boundary.encode("ascii")
    out = bytearray()
    for headers, body in parts:
        out += delimiter + CRLF + b"".join(headers) + CRLF + body + CRLF
    out += delimiter + b"--" + CRLF
    return [header("Content-Type", [f"multipart/{subtype};",
                                    f"boundary={param_value(boundary)}"])], bytes(out)


def choose_boundary(make: Callable[[], str], contents: Iterable[bytes]) -> str:
    """A boundary from ``make`` that occurs in none of ``contents``."""
    blobs = list(contents)
    while True:
        boundary = make()
        token = boundary.encode("ascii")
        if not any(token in blob for blob in blobs):
            return boundary
