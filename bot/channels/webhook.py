"""Alerts to a chat webhook (Slack-compatible `{"text": ...}`), for when mail itself fails."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import structlog

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.vocab import ChannelName, SendStatus

log = structlog.get_logger(__name__)


class WebhookChannel:
    name = ChannelName.WEBHOOK

    def __init__(self, url: str, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._url = url

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        for item in items:  # each outcome recorded before the next alert is posted
            outcome = await self._post(item)
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(item, outcome)
        return outcomes

    async def _post(self, item: OutboxItem) -> SendOutcome:
        try:
            response = await self._client.post(
                self._url, content=item.payload, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return SendOutcome(SendStatus.RETRY, f"webhook: {type(exc).__name__}")
        if response.status_code < 300:
            return SendOutcome(SendStatus.SENT, f"webhook {response.status_code}")
        if response.status_code in (408, 429) or response.status_code >= 500:
            return SendOutcome(SendStatus.RETRY, f"webhook answered {response.status_code}")
        return SendOutcome(SendStatus.FAILED, f"webhook answered {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
