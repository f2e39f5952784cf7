"""Help Scout merges: two conversations become one, and so do their tickets.

A merge moves the merged conversation's threads into the survivor, where they arrive
under new references (and possibly new thread ids). They are recognised by their thread id
where it survives and the merge is already known (a 301 told us), otherwise by their
fingerprint (who wrote what, when: `bot.sources.helpscout.thread_fingerprint`), which the
ledger already holds under the old conversation: such a thread is not a new reply, so it
neither reopens a closed ticket nor sends anything.

What the merge does to tickets: the mapping old -> survivor is stored (the client's
`StoredMerges`, which outlives Help Scout's 60 days of 301s). When the survivor has no
ticket, the merged ticket simply follows its conversation. When it has one, the merged
ticket is closed as merged, and its pending follow-ups continue once on the survivor: they
move there if the survivor has none of its own, and stop if the survivor is closed
(merging into a closed conversation sends nothing).
"""

from __future__ import annotations

from datetime import datetime

from bot.helpscout.merges import StoredMerges
from bot.model import Message
from bot.store import Store, Ticket
from bot.tickets import Tickets
from bot.vocab import FOLLOWUP_TIMERS, TicketEvent, TicketState, TimerKind

ENDING = (*FOLLOWUP_TIMERS, TimerKind.ASSIGNED_REMINDER, TimerKind.FIRST_RESPONSE)


def conversation_of(ref: str) -> int | None:
    """The conversation in a Help Scout ledger ref, `helpscout:<conversation>:<thread>`."""
    parts = ref.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Merges:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.tickets = Tickets(store)
        self.mapping = StoredMerges(store)

    def moved(self, msg: Message) -> int | None:
        """The conversation this very thread was recorded under before a merge, if any."""
        if msg.conversation_id is None:
            return None
        if msg.thread_id is not None:
            for old in self.mapping.merged_into(msg.conversation_id):
                if self.store.has_ref(f"helpscout:{old}:{msg.thread_id}"):
                    return old
        same = self.store.find_same_message(None, msg.content_hash)
        before = conversation_of(same.ref) if same is not None else None
        return before if before is not None and before != msg.conversation_id else None

    def apply(self, old: int, msg: Message, now: datetime) -> Ticket | None:
        """The merge a moved thread reveals; returns the ticket the thread now belongs to."""
        new = msg.conversation_id
        assert new is not None
        self.mapping.put(old, new)
        merged = self.store.ticket_by_conversation(old)
        survivor = self.store.ticket_by_conversation(new)
        if merged is None:
            return survivor
        if survivor is None:  # the ticket follows its conversation
            self.store.update_ticket(merged.id, now, conversation_id=new,
                                     conversation_number=msg.conversation_number)
            self.store.log(now, merged.id, "merged",
                           f"conversation {old} was merged into {new} in Help Scout; "
                           "this ticket follows it")
            return self.store.get_ticket(merged.id)
        self._into(merged, survivor, old, new, now)
        return survivor

    def _into(self, merged: Ticket, survivor: Ticket, old: int, new: int,
              now: datetime) -> None:
        followups = [t for t in self.store.pending_timers(merged.id)
                     if t.kind in FOLLOWUP_TIMERS]
        self.store.cancel_timers(merged.id, ENDING, now)
        continued = ""
        if survivor.state == TicketState.CLOSED:
            continued = "; the survivor is closed: nothing more is sent"
        elif followups and not any(t.kind in FOLLOWUP_TIMERS
                                   for t in self.store.pending_timers(survivor.id)):
            first = min(followups, key=lambda t: t.due_at)
            self.store.add_timer(key=f"t{survivor.id}:{first.kind}:merged:{merged.id}",
                                 ticket_id=survivor.id, kind=first.kind, due_at=first.due_at,
                                 now=now)
            continued = f"; its {first.kind} continues here, due {first.due_at.isoformat()}"
        self.tickets.apply(merged, TicketEvent.MERGED, now)
        self.store.log(now, merged.id, "merged",
                       f"conversation {old} was merged into {new} (ticket #{survivor.id})"
                       f" in Help Scout{continued}")
        self.store.log(now, survivor.id, "merged",
                       f"ticket #{merged.id} (conversation {old}) was merged into this one"
                       f"{continued}")
