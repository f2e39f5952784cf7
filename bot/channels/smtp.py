"""Sending the outbox through an SMTP server (aiosmtplib).

A batch travels over up to ``SUPPORTBOT_SMTP_CONNECTIONS`` sessions at once (default 2), each
carrying its share in order and closed (QUIT) after it: the outbox runs in bursts minutes
apart, and servers drop idle sessions anyway. A ticket's messages share one session, so they
arrive in the order planned. A second session halves the time a backlog spends waiting for
the server's replies; the price is that a crash can leave one message in doubt per session
(resent with the same Message-ID, or found in the Sent folder). Each item is sent as stored
(``payload`` already holds every header; the envelope comes from the outbox row), so a
retry after a crash is byte-identical.

Outcomes: 4xx replies and network errors are retried here with backoff (within a time
budget per batch), then reported as ``retry`` (the outbox tries again next cycle); a 5xx is
``failed`` at once and never retried. Problems that no item can get past — the server
unreachable, TLS verification or authentication failing — end the batch: every remaining
item is ``retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.config import SmtpSettings
from bot.mail.addresses import valid_address
from bot.tls import tls_context
from bot.vocab import ChannelName, SendStatus

log = structlog.get_logger(__name__)

_NETWORK = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError,
            TimeoutError)


class _ConnectFailed(Exception):
    """Could not open a usable session (temporary: worth another attempt)."""


class _Unavailable(Exception):
    """No item can be sent on this configuration right now (TLS, AUTH, server down)."""


class _BudgetSpent(stop_base):
    """Stop retrying once the channel's batch has waited its retry budget."""

    def __init__(self, channel: SmtpChannel) -> None:
        self.channel = channel

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.channel._waited >= self.channel.retry_budget


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _ConnectFailed):
        return True
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return any(400 <= r.code < 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, _NETWORK)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"


class _Lane:
    """One SMTP session of a batch and the items it carries."""

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None
        self.items: list[tuple[int, OutboxItem]] = []  # (position in the batch, item)


class SmtpChannel:
    name = ChannelName.SMTP

    def __init__(self, settings: SmtpSettings, *, ca_file: Path | None = None,
                 tls_insecure: bool = False, timeout: float = 30, retry_attempts: int = 3,
                 backoff: float = 1.0, retry_budget: float = 60.0) -> None:
        self.settings = settings
        self.sessions = max(1, settings.connections)
        self.timeout = timeout
        self.retry_attempts = max(1, retry_attempts)
        self.backoff = backoff
        # Seconds one batch may spend waiting between retries: a server answering 4xx to
        # every message (rate limit, greylisting) must not stall the worker for long;
        # once spent, temporary failures go straight back to the outbox.
        self.retry_budget = retry_budget
        self._waited = 0.0
        self.connections = 0  # sessions opened so far; lets tests and bench see reuse
        self._tls = tls_context(ca_file, tls_insecure) if settings.tls != "none" else None
        self._lanes = [_Lane() for _ in range(self.sessions)]
        self._blocked: str | None = None  # why no item of this batch can be sent now
        self._local_hostname: str | None = None
        if tls_insecure and settings.tls != "none":
            log.warning("TLS CERTIFICATE VERIFICATION IS DISABLED for SMTP "
                        "(SUPPORTBOT_TLS_INSECURE=1): anyone on the network path can read "
                        "and change the bot's mail", host=settings.host, port=settings.port)
        if settings.tls == "none" and settings.host not in {"localhost", "127.0.0.1", "::1"}:
            log.warning("SMTP without TLS to a non-loopback host: mail and credentials "
                        "travel in clear text", host=settings.host, port=settings.port)

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        outcomes: list[SendOutcome | None] = [None] * len(items)
        self._waited = 0.0
        self._blocked = None
        lanes = self._lanes[:max(1, min(self.sessions, len(items)))]
        for lane in lanes:
            lane.items = []
        for position, item in enumerate(items):
            lanes[(item.ticket_id or 0) % len(lanes)].items.append((position, item))
        tasks = [asyncio.ensure_future(self._run_lane(lane, outcomes, on_outcome))
                 for lane in lanes if lane.items]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # recording an outcome failed, or we are cancelled: no session runs on unattended
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await asyncio.gather(*(self._disconnect(lane) for lane in lanes))
        return [o if o is not None else SendOutcome(SendStatus.RETRY, "not attempted")
                for o in outcomes]

    async def _run_lane(self, lane: _Lane, outcomes: list[SendOutcome | None],
                        on_outcome: OnOutcome | None) -> None:
        """This session's items in order; each outcome reported the moment it is known."""
        for position, item in lane.items:
            if self._blocked is not None:
                outcomes[position] = SendOutcome(SendStatus.RETRY, self._blocked)
                continue
            try:
                outcome = await self._send(lane, item)
            except _Unavailable as exc:
                if self._blocked is None:
                    log.error("smtp unavailable; batch left for the next cycle",
                              error=str(exc), host=self.settings.host, port=self.settings.port,
                              remaining=sum(o is None for o in outcomes))
                self._blocked = str(exc)
                outcomes[position] = SendOutcome(SendStatus.RETRY, str(exc))
                continue
            except Exception as exc:  # a bug here must not lose the row: retry later
                log.exception("smtp send raised", outbox=item.id)
                outcomes[position] = SendOutcome(SendStatus.RETRY, f"{type(exc).__name__}: {exc}")
                continue
            outcomes[position] = outcome
            if on_outcome is not None:
                await on_outcome(item, outcome)

    async def aclose(self) -> None:
        await asyncio.gather(*(self._disconnect(lane) for lane in self._lanes))

    # -- one item ---------------------------------------------------------------------
    async def _send(self, lane: _Lane, item: OutboxItem) -> SendOutcome:
        sender = valid_address(item.envelope_from) if item.envelope_from else ""
        recipients = [a for a in map(valid_address, item.recipients) if a is not None]
        if sender is None or not recipients:
            # Never let the SMTP library guess an address out of a malformed string.
            return SendOutcome(SendStatus.FAILED, f"invalid envelope: from {item.envelope_from!r} "
                                         f"to {list(item.recipients)!r}")
        dropped = [r for r in item.recipients if valid_address(r) is None]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry_attempts) | _BudgetSpent(self),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff * 8)
            + wait_random(0, self.backoff),
            retry=retry_if_exception(_is_transient), reraise=True,
            before_sleep=lambda state: self._log_retry(item, state))
        try:
            async for attempt in retrying:
                with attempt:
                    refused, reply = await self._transaction(lane, item, sender, recipients)
        except _ConnectFailed as exc:
            raise _Unavailable(f"cannot reach SMTP server: {exc}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            detail = "; ".join(f"{r.recipient}: {_reply(r)}" for r in exc.recipients)
            verdict = SendStatus.RETRY if _is_transient(exc) else SendStatus.FAILED
            return SendOutcome(verdict, f"all recipients refused: {detail}")
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 530:  # "authentication required" / "STARTTLS first": configuration
                raise _Unavailable(f"{self.settings.host} requires authentication or TLS: "
                                   f"{_reply(exc)}") from exc
            status = SendStatus.RETRY if _is_transient(exc) else SendStatus.FAILED
            return SendOutcome(status, _reply(exc))
        except _NETWORK as exc:
            return SendOutcome(SendStatus.RETRY, f"network error: {type(exc).__name__}: {exc}")
        except (aiosmtplib.SMTPException, ValueError) as exc:
            # e.g. an envelope address that cannot be sent: no retry will fix it
            return SendOutcome(SendStatus.FAILED, f"{type(exc).__name__}: {exc}")
        problems = [f"{addr}: {_reply_text(r)}" for addr, r in refused.items()]
        problems += [f"{addr!r}: not a valid address" for addr in dropped]
        if problems:
            log.warning("smtp recipients refused", **item.log_fields(), refused=problems)
            return SendOutcome(SendStatus.SENT, "refused: " + "; ".join(problems), remote_id=reply)
        return SendOutcome(SendStatus.SENT, remote_id=reply)

    def _log_retry(self, item: OutboxItem, state: RetryCallState) -> None:
        self._waited += state.next_action.sleep if state.next_action else 0.0
        exc = state.outcome.exception() if state.outcome else None
        log.warning("smtp temporary failure, retrying", **item.log_fields(),
                    attempt=state.attempt_number, error=f"{type(exc).__name__}: {exc}")

    async def _transaction(self, lane: _Lane, item: OutboxItem, sender: str,
                           recipients: list[str],
                           ) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        client = await self._connection(lane)
        options = []
        if not item.payload.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        try:
            return await client.sendmail(sender, recipients, item.payload, mail_options=options)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not client.is_connected:  # the server is closing
                await self._disconnect(lane)
            raise
        except _NETWORK:
            await self._disconnect(lane)
            raise

    # -- the session ------------------------------------------------------------------
    async def _connection(self, lane: _Lane) -> aiosmtplib.SMTP:
        if lane.client is not None and lane.client.is_connected:
            return lane.client
        await self._disconnect(lane)
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=self.timeout, use_tls=s.tls == "ssl",
            start_tls=s.tls == "starttls", tls_context=self._tls,
            local_hostname=self._local_hostname)
        try:
            await client.connect()
            if s.user:
                await client.login(s.user, s.password or "")
        except Exception as exc:
            client.close()
            raise self._connect_error(exc) from exc
        except asyncio.CancelledError:
            client.close()
            raise
        lane.client = client
        self._local_hostname = client.local_hostname
        self.connections += 1
        return client

    def _connect_error(self, exc: Exception) -> Exception:
        """Temporary trouble is worth retrying; configuration trouble is not."""
        where = f"{self.settings.host}:{self.settings.port}"
        if _caused_by(exc, ssl.SSLCertVerificationError) is not None:
            return _Unavailable(
                f"TLS certificate of {where} not trusted ({exc}); set SUPPORTBOT_CA_FILE to "
                "its CA, or SUPPORTBOT_TLS_INSECURE=1 to accept it unverified")
        if _caused_by(exc, ssl.SSLError) is not None:
            return _Unavailable(f"TLS with {where} failed: {exc}")
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and exc.code >= 500:
            return _Unavailable(f"SMTP authentication refused by {where}: {_reply(exc)}; "
                                "check SUPPORTBOT_SMTP_USER and SUPPORTBOT_SMTP_PASSWORD")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            if 400 <= exc.code < 500:
                return _ConnectFailed(f"{where} answered {_reply(exc)}")
            return _Unavailable(f"{where} refused the session: {_reply(exc)}")
        if isinstance(exc, _NETWORK):
            return _ConnectFailed(f"{where}: {exc}")
        # STARTTLS or AUTH not offered, and the like: never fall back to clear text
        return _Unavailable(f"SMTP session with {where} unusable: {exc}")

    async def _disconnect(self, lane: _Lane) -> None:
        client, lane.client = lane.client, None
        if client is None:
            return
        if client.is_connected:
            # the session is over either way
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit(timeout=min(self.timeout, 5))
        client.close()


def _reply_text(response: aiosmtplib.SMTPResponse) -> str:
    return f"{response.code} {' '.join(response.message.split())}"
