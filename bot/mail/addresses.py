"""Reading addresses: lists from header values, the plain addr-spec, who to answer.

Address lists never raise: lower-cased bare addresses, whatever the header holds.

`email.utils.getaddresses` does the RFC 5322 work; when it gives up on a broken list,
anything shaped like `local@domain` is still worth keeping (a bounce with a mangled To:
must still name its sender).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses

from bot.mail.automated import is_robot_sender
from bot.model import Message

# An address header is read up to this many characters: a few hundred recipients fit, and
# the stdlib's list parser (quadratic on some shapes: an 840 kB From took 40 s) stays cheap.
MAX_HEADER_CHARS = 16_384
_ADDR_LIKE = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_ANGLE = re.compile(r"<\s*([^<>\s]*)\s*>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def bare_address(value: str) -> str:
    """``Ann <Ann@Example.COM>`` -> ``ann@example.com``; also strips a ``<>`` wrapper."""
    pairs = address_list([value])
    return pairs[0][1] if pairs else ""


def address_list(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name as written, lower-cased address) for every address in the values.

    Names are left encoded: the caller decodes RFC 2047 after splitting, so that a
    decoded comma in a name cannot split one address into two.
    """
    result: list[tuple[str, str]] = []
    for value in values:
        if not value or not value.strip():
            continue
        value = value[:MAX_HEADER_CHARS]
        try:
            pairs = getaddresses([value])
        except (ValueError, IndexError, TypeError, RecursionError):
            pairs = []  # e.g. thousands of nested "(" comments exhaust the stdlib parser
        good = [(name, addr.strip().lower()) for name, addr in pairs if _usable(addr)]
        if not good:
            good = [("", m.lower()) for m in _ADDR_LIKE.findall(value)]
            if not good:
                # a bare token such as "MAILER-DAEMON" or "<postmaster>" still says who sent it
                inner = _ANGLE.search(value)
                token = (inner.group(1) if inner else value).strip().lower()
                if token and not any(c.isspace() for c in token):
                    good = [("", token)]
        result.extend(good)
    return result


def _usable(addr: str) -> bool:
    addr = addr.strip()
    return bool(addr) and not any(c.isspace() for c in addr)


def valid_address(address: str) -> str | None:
    """The bare address, lower-cased domain, if it is a plain ASCII addr-spec; else None.

    Quoted local parts and non-ASCII local parts are refused: they cannot travel without
    SMTPUTF8 and are a favourite vehicle for injection. Non-ASCII domains become IDNA.
    """
    if not address or _CONTROL.search(address) or len(address) > 254:
        return None
    local, at, domain = address.strip().rpartition("@")
    if not at or not _LOCAL_PART.match(local) or len(local) > 64:
        return None
    if domain.startswith("[") and domain.endswith("]"):
        return None  # address literals: never a requester we should write to
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _DOMAIN.match(domain):
        return None
    return f"{local}@{domain.lower()}"


def reply_recipient(msg: Message) -> str | None:
    """The address the bot answers: Reply-To if present, else From; None if unusable.

    RFC 3834 section 4 says automatic responses SHOULD go to the Return-Path, because that
    address takes responsibility for delivery problems; the rule is written for
    out-of-office notices. A help desk's reply opens a conversation the requester is meant
    to answer, and the Return-Path is often not a person at all (VERP bounce handlers of
    web forms and CRMs, SRS-rewritten forwarders). So, like RFC 5322 3.6.2 and every help
    desk, we write to where the author asked replies to go: Reply-To, else From (else
    Return-Path when the message has neither). The Return-Path still vetoes: a null
    sender ``<>`` marks a bounce or notification, which RFC 3834 says never to answer.
    A Reply-To that is a robot's address (no-reply@...) is passed over for the From: an
    acknowledgement there would reach nobody, and robots never get our notices.
    """
    if msg.return_path == "":
        return None
    people = [a for a in msg.reply_to if not is_robot_sender(a)]
    candidates = [*people, msg.from_addr, msg.return_path or ""]
    for candidate in candidates:
        bare = valid_address(candidate or "")
        if bare is not None:
            return bare.lower()
    return None


# Providers that ignore dots in the local part (and where googlemail.com is gmail.com).
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def cap_key(address: str) -> str:
    """The mailbox an address reaches, for the caps: case folded, ``+tag`` dropped, and
    dots dropped where the provider ignores them (``V.ictim+7@GoogleMail.com`` ->
    ``victim@gmail.com``), so twelve variants of one address share one cap."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return address.strip().lower()
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS:
        domain = _DOTLESS[domain]
        local = local.replace(".", "")
    return f"{local}@{domain}"
