"""Does the last day's mail look like a set-up that makes every ticket look like a robot?

A support address run as a Google Group or list puts List-* headers on every customer's
mail; a web form relays from noreply@ with the person in Reply-To; a forwarding relay
stamps ``Auto-Submitted: auto-forwarded``. Each silently drops real tickets until
``settings.mail`` says so. `supportbot check` asks this module, with the ledger's ignore
reasons (which name the signal and its value), and prints what it suggests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.mail.automated import MailSetup

MIN_MESSAGES = 5  # fewer than this in a day says nothing about a set-up
SHARE = 0.5  # the part of the day's mail one signal must explain

_LIST_ID = re.compile(r"\blist-id:? ([^\s)]+)", re.IGNORECASE)
_SENDER = re.compile(r"^sender (\S+@\S+) \(replies to \S+\)$", re.IGNORECASE)
_FORWARDED = "auto-submitted: auto-forwarded"


@dataclass(frozen=True)
class Seen:
    """One ledger entry of the last day: its status and why it was ignored."""

    status: str
    reason: str | None


def suggestions(seen: Iterable[Seen], setup: MailSetup) -> list[str]:
    """One warning per set-up the day's mail suggests and settings.mail does not cover."""
    entries = list(seen)
    total = len(entries)
    if total < MIN_MESSAGES:
        return []
    lists: Counter[str] = Counter()
    senders: Counter[str] = Counter()
    forwarded = 0
    for entry in entries:
        if entry.status != "ignored" or not entry.reason:
            continue
        reason = entry.reason.strip()
        list_match = _LIST_ID.search(reason)
        sender_match = _SENDER.match(reason)
        if list_match:
            lists[list_match.group(1).lower()] += 1
        elif sender_match:
            senders[sender_match.group(1).lower()] += 1
        elif reason.lower() == _FORWARDED:
            forwarded += 1
    out = []
    for list_id, n in lists.most_common(1):
        if n >= SHARE * total and list_id not in setup.list_ids:
            out.append(f"{n} of the last day's {total} messages were ignored for List-Id "
                       f"{list_id}: if the support address is that list or Google Group, add "
                       f"it to settings.mail.list_ids (see docs/rules.md)")
    for sender, n in senders.most_common(1):
        if n >= SHARE * total and sender not in setup.form_senders:
            out.append(f"{n} of the last day's {total} messages were ignored as sent by "
                       f"{sender} with a Reply-To: if that is a web form, add it to "
                       "settings.mail.form_senders (see docs/rules.md)")
    if forwarded >= SHARE * total and not setup.relay_auto_forwarded:
        out.append(f"{forwarded} of the last day's {total} messages were ignored for "
                   "Auto-Submitted: auto-forwarded: if a relay in front of the support address "
                   "adds it, set settings.mail.relay_auto_forwarded: true (see docs/rules.md)")
    return out
