"""Opening an IMAP connection, and what its failures mean: shared by the IMAP source
(bot/sources/imap.py) and the Sent folder channel (bot/channels/imap_sent.py).

`connect` logs in (TLS, STARTTLS or plain, as configured); `transient` tells a network
blip worth a reconnect from refused credentials or certificates; `describe` turns a
failure into one line an operator can act on, never containing the password.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from pathlib import Path

import structlog
from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from bot.config import ImapSettings
from bot.errors import AuthError
from bot.tls import tls_context

log = structlog.get_logger(__name__)


GREETING_SECONDS = 8.0  # an IMAP server greets at once; silence this long means TLS is awaited


class TlsModeMismatch(Exception):
    """SUPPORTBOT_IMAP_TLS does not fit what the server speaks on that port: no retry helps."""


def connect(settings: ImapSettings, *, ca_file: Path | None = None, tls_insecure: bool = False,
            timeout: float = 30.0) -> IMAPClient:
    """A logged-in client. `AuthError` when the credentials are refused, `TlsModeMismatch`
    when the TLS mode does not fit the port (said within seconds); network errors as is."""
    ctx = tls_context(ca_file, tls_insecure) if settings.tls != "none" else None
    try:
        client = IMAPClient(settings.host, port=settings.port, ssl=settings.tls == "ssl",
                            ssl_context=ctx,
                            timeout=SocketTimeout(min(timeout, GREETING_SECONDS), timeout))
    except (TimeoutError, ssl.SSLError) as exc:
        mismatch = _mismatch(settings, exc)
        if mismatch is None:
            raise
        raise mismatch from exc
    try:
        if settings.tls == "starttls":
            client.starttls(ctx)
        client.login(settings.user, settings.password)
    except LoginError as exc:
        close_quietly(client)
        cause = exc.__context__
        if isinstance(cause, (IMAPClientAbortError, OSError)) or "socket error" in str(exc):
            # imapclient reports a connection lost during LOGIN as a LoginError: that is a
            # network blip to retry, not a wrong password to stop for
            raise IMAPClientAbortError(f"connection lost during login: {exc}") from None
        raise AuthError(f"IMAP login refused for {settings.user} at "
                        f"{settings.host}:{settings.port}: {server_text(exc)}") from None
    except BaseException:
        close_quietly(client)
        raise
    client.normalise_times = False  # INTERNALDATE as an aware datetime, not naive local time
    return client


def _mismatch(settings: ImapSettings, exc: BaseException) -> TlsModeMismatch | None:
    """The fix, when the failure to connect says the TLS mode is wrong for this port."""
    port = settings.port
    if isinstance(exc, TimeoutError) and settings.tls != "ssl":
        # a plain or STARTTLS client waits for "* OK"; an IMAPS server waits for our hello
        return TlsModeMismatch(
            f"IMAP {settings.host}:{port} sent no greeting within {GREETING_SECONDS:.0f}s: the "
            f"server on {port} speaks TLS at once: use SUPPORTBOT_IMAP_TLS=ssl")
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLCertVerificationError) \
            and settings.tls == "ssl" and "WRONG_VERSION_NUMBER" in str(exc).upper():
        return TlsModeMismatch(
            f"IMAP {settings.host}:{port} answered a TLS hello in plain text: the server on "
            f"{port} does not speak TLS at once: use SUPPORTBOT_IMAP_TLS=starttls")
    return None


def warn_about_tls(settings: ImapSettings, tls_insecure: bool) -> None:
    """Say loudly when a password may travel unprotected or a certificate goes unchecked."""
    if settings.tls != "none" and tls_insecure:
        log.warning("IMAP TLS certificate verification is OFF (SUPPORTBOT_TLS_INSECURE=1): "
                    "anyone on the path can read the mailbox password", host=settings.host)
    if settings.tls == "none" and not _is_loopback(settings.host):
        log.warning("IMAP without TLS to a remote host: the password travels in clear text",
                    host=settings.host)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def close_quietly(client: IMAPClient) -> None:
    """Drop the connection, whatever state it is in; never raises."""
    with contextlib.suppress(Exception):
        client.shutdown()


def server_text(exc: BaseException) -> str:
    """The server's words in an imapclient error, without the ``b'...'`` wrapping."""
    text = str(exc)
    for prefix in ("b'", 'b"'):
        if text.startswith(prefix) and text.endswith(text[1]):
            return text[2:-1]
    return text


def transient(exc: BaseException) -> bool:
    """Network trouble worth a reconnect; refused credentials or certificates are not."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, (OSError, IMAPClientAbortError, EOFError))


def describe(exc: BaseException, settings: ImapSettings) -> str:
    """One line an operator can act on, never containing the password."""
    where = f"IMAP {settings.host}:{settings.port}"
    if isinstance(exc, TlsModeMismatch):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{where}: TLS certificate not trusted ({exc.verify_message}); set "
                "SUPPORTBOT_CA_FILE to its CA bundle, or SUPPORTBOT_TLS_INSECURE=1 to accept it "
                "unverified")
    if isinstance(exc, IMAPClientError) and "STARTTLS" in str(exc).upper():
        return f"{where}: server does not offer STARTTLS; use SUPPORTBOT_IMAP_TLS=ssl or none"
    return f"{where}: {type(exc).__name__}: {server_text(exc)}"
