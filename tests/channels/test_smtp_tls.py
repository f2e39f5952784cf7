"""TLS for SMTP: verified by default, a self-signed server refused unless explicitly allowed."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from bot.channels.smtp import SmtpChannel
from bot.config import SmtpSettings
from tests.channels.outbox_items import item, send
from tests.servers.smtp import SmtpServer, TlsCert

pytestmark = pytest.mark.slow

MODES = ["starttls", "ssl"]


def tls_channel(server: SmtpServer, **kwargs: object) -> SmtpChannel:
    settings = SmtpSettings(host=server.host, port=server.port, user="bot",
                            password="s3cret-pass", tls=server.tls)
    return SmtpChannel(settings, backoff=0.01, timeout=5, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_self_signed_certificate_is_refused_by_default(tls_cert: TlsCert, mode: str) -> None:
    with SmtpServer(tls=mode, cert=tls_cert, auth=("bot", "s3cret-pass")) as server:  # type: ignore[arg-type]
        outcomes = send(tls_channel(server), [item(1), item(2)])
        assert [o.status for o in outcomes] == ["retry", "retry"]
        assert "not trusted" in outcomes[0].detail
        assert "SUPPORTBOT_CA_FILE" in outcomes[0].detail
        assert server.messages == [] and server.auth_failures == 0


@pytest.mark.parametrize("mode", MODES)
def test_accepted_with_its_ca_file(tls_cert: TlsCert, mode: str) -> None:
    with SmtpServer(tls=mode, cert=tls_cert, auth=("bot", "s3cret-pass")) as server:  # type: ignore[arg-type]
        outcomes = send(tls_channel(server, ca_file=tls_cert.cert), [item(1), item(2)])
        assert [o.status for o in outcomes] == ["sent", "sent"]
        assert all(m.tls and m.auth_user == "bot" for m in server.messages)


@pytest.mark.parametrize("mode", MODES)
def test_accepted_unverified_only_when_insecure_is_asked_for_loudly(tls_cert: TlsCert,
                                                                   mode: str) -> None:
    with SmtpServer(tls=mode, cert=tls_cert) as server:  # type: ignore[arg-type]
        with capture_logs() as logs:
            ch = tls_channel(server, tls_insecure=True)
        assert any(e["log_level"] == "warning" and "VERIFICATION IS DISABLED" in e["event"]
                   for e in logs)
        ch.settings = SmtpSettings(host=server.host, port=server.port, user=None,
                                   password=None, tls=mode)  # type: ignore[arg-type]
        assert send(ch, [item()])[0].status == "sent"
        assert server.messages[0].tls


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it() -> None:
    with SmtpServer() as plain:
        ch = SmtpChannel(SmtpSettings(host=plain.host, port=plain.port, user=None, password=None,
                                      tls="starttls"), backoff=0.01, timeout=5)
        outcomes = send(ch, [item()])
        assert outcomes[0].status == "retry"
        assert "STARTTLS" in outcomes[0].detail
        assert plain.messages == []


def test_the_password_never_appears_in_outcomes_or_logs(tls_cert: TlsCert) -> None:
    with SmtpServer(tls="starttls", cert=tls_cert, auth=("bot", "right-one")) as server:
        with capture_logs() as logs:
            outcomes = send(tls_channel(server, ca_file=tls_cert.cert), [item()])
        assert outcomes[0].status == "retry"
        assert "s3cret-pass" not in repr(outcomes) and "s3cret-pass" not in repr(logs)
