"""Help Scout channel: executes the outbox's Help Scout operations (`bot.helpscout.ops`).

Outcomes: `sent`; `failed` for what no retry can fix (validation errors, a deleted
conversation, the 100-thread limit, a payload we cannot read); `retry` when Help Scout
is unavailable (429 / 5xx / network after the client's own retries, refused
credentials). Once one operation comes back `retry`, the rest of the batch is not
attempted: they would only queue behind the same outage.

A row that was attempted before (``attempts > 0``: a crash or an unknown outcome) first
looks for its marker in the conversation's threads, so a reply is never posted twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.errors import AuthError, HelpScoutError
from bot.helpscout.client import HelpScoutClient
from bot.helpscout.errors import (
    ConversationGone,
    ConversationTooOld,
    HelpScoutUnavailable,
    ThreadLimitReached,
)
from bot.helpscout.guard import reply_status_now
from bot.helpscout.ops import AssignOp, NoteOp, Op, ReplyOp, StatusOp, TagsOp, parse_op
from bot.vocab import ChannelName, SendStatus

log = structlog.get_logger(__name__)


class HelpScoutChannel:
    name = ChannelName.HELPSCOUT

    def __init__(self, client: HelpScoutClient) -> None:
        self.client = client

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        outage: str | None = None
        for item in items:
            if outage is not None:
                outcomes.append(SendOutcome(SendStatus.RETRY, f"not attempted: {outage}"))
                continue
            outcome = await self.send(item)
            if outcome.status == SendStatus.RETRY:
                outage = outcome.detail
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(item, outcome)
        return outcomes

    async def send(self, item: OutboxItem) -> SendOutcome:
        """One operation; never raises."""
        try:
            op = parse_op(item.payload)
        except ValueError as exc:
            return SendOutcome(SendStatus.FAILED, f"unreadable Help Scout operation: {exc}")
        try:
            outcome = await self.execute(op, in_doubt=item.attempts > 0, item=item)
        except (ConversationGone, ThreadLimitReached, ConversationTooOld) as exc:
            outcome = SendOutcome(SendStatus.FAILED, str(exc))
        except (HelpScoutUnavailable, AuthError) as exc:
            outcome = SendOutcome(SendStatus.RETRY, str(exc))
        except HelpScoutError as exc:
            transient = exc.status == 429 or exc.status >= 500
            outcome = SendOutcome(SendStatus.RETRY if transient else SendStatus.FAILED, str(exc))
        except ValueError as exc:
            outcome = SendOutcome(SendStatus.FAILED, str(exc))
        except Exception as exc:  # a bug must not lose the row: the outbox retries it
            log.exception("help scout operation raised", outbox=item.id)
            outcome = SendOutcome(SendStatus.RETRY, f"{type(exc).__name__}: {exc}")
        # the outbox logs the outcome at info (one line per message); this is the detail
        log.debug("help scout operation", outbox=item.id, kind=item.kind,
                 conversation=op.conversation_id, status=outcome.status, detail=outcome.detail)
        return outcome

    async def execute(self, op: Op, *, in_doubt: bool = False,
                      item: OutboxItem | None = None) -> SendOutcome:
        client = self.client
        conv = op.conversation_id
        if isinstance(op, ReplyOp):
            return await self._reply(op, in_doubt=in_doubt, item=item)
        if isinstance(op, NoteOp):
            thread = await client.note(conv, op.body, op.marker, check_first=in_doubt)
            return self._sent(conv, f"note thread {thread}", thread)
        if isinstance(op, AssignOp):
            await client.assign(conv, op.user_id)
            return self._sent(conv, f"assigned to user {op.user_id}")
        if isinstance(op, TagsOp):
            tags = await client.add_tags(conv, list(op.add))
            return self._sent(conv, "tags: " + ", ".join(tags))
        if isinstance(op, StatusOp):
            await client.set_status(conv, op.status)
            return self._sent(conv, f"status {op.status}")
        raise ValueError(f"unsupported operation {op!r}")

    async def _reply(self, op: ReplyOp, *, in_doubt: bool,
                     item: OutboxItem | None) -> SendOutcome:
        """Read the conversation first: its status now decides the reply's (`guard`)."""
        client = self.client
        conv = op.conversation_id
        if in_doubt:
            found = await client.find_marker(conv, op.marker)
            if found is not None:
                return self._sent(conv, f"reply thread {found} found in place", found)
        conversation = await client.get_conversation(conv, embed_threads=True)
        status, why = reply_status_now(
            op.status, conversation, client.own_user_id, kind=item.kind if item else "",
            planned_at=item.planned_at if item else None)
        if status is None:
            log.info("help scout reply held back", conversation=conv, reason=why)
            return SendOutcome(SendStatus.SUPPRESSED, why)
        customer = op.customer_id or (conversation.get("primaryCustomer") or {}).get("id")
        if not isinstance(customer, int):
            raise ValueError(f"conversation {conv} has no primary customer")
        thread = await client.reply(conv, customer, op.body, status, op.marker, op.user_id)
        detail = f"reply thread {thread} (status {status})" + (f"; {why}" if why else "")
        return self._sent(conv, detail, thread)

    def _sent(self, conversation_id: int, detail: str, thread: int | None = None) -> SendOutcome:
        current = self.client.resolve(conversation_id)
        if current != conversation_id:
            detail += f"; conversation {conversation_id} was merged into {current}"
        return SendOutcome(SendStatus.SENT, detail,
                           remote_id=str(thread) if thread is not None else None)

    async def aclose(self) -> None:
        """The channel owns the shared client's lifetime (the worker closes channels last)."""
        await self.client.aclose()
