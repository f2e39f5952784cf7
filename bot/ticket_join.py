"""Who may join an existing ticket by its threading headers or its ``[#N]`` subject tag.

Both are easy to forge: anyone who saw (or guessed) a Message-ID or a ticket number could
otherwise put their words in front of the ticket's owner as the requester's, reopen it
and cancel its follow-ups. So a claimed ticket is joined only by its requester, someone
already in its thread, a colleague of the requester who copies the requester (same
domain, requester on To/Cc), or the team (which includes whoever answers a message of
ours that only the team received); and only the requester's side (requester or
such a colleague) or the team may write on a closed ticket. Anyone else opens a new
ticket, whose log notes the claim. Help Scout conversations are not claims: Help Scout
says which conversation a thread is in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class JoinVerdict:
    joins: bool
    reason: str


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def may_join(*, requester: str, closed: bool, sender: str, recipients: Collection[str],
             participants: Collection[str], is_team: bool,
             answers_team_message: bool = False) -> JoinVerdict:
    """Whether ``sender`` may add to a ticket of ``requester`` (pure; addresses bare).

    ``answers_team_message``: the message threads under one of our messages that only the
    team received (a forward to an owner list, answered from a member's own address); our
    Message-IDs carry 64 random bits, so only its recipients can know one."""
    sender, requester = sender.lower(), requester.lower()
    if not sender:
        return JoinVerdict(False, "the message names no sender")
    if is_team:
        return JoinVerdict(True, "the team")
    if answers_team_message:
        return JoinVerdict(True, "an answer to a message only the team received")
    if sender == requester:
        return JoinVerdict(True, "the requester")
    if _domain(sender) == _domain(requester) and requester in {r.lower() for r in recipients}:
        return JoinVerdict(True, "a colleague of the requester, with the requester copied")
    if closed:
        return JoinVerdict(False, "only the requester's side reopens a closed ticket")
    if sender in {p.lower() for p in participants}:
        return JoinVerdict(True, "already in the ticket's thread")
    return JoinVerdict(False, "the sender is not on the ticket")
