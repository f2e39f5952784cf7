"""The SMTP test servers' fixtures, for every channel test."""

from tests.servers.smtp import smtp_server, tls_cert  # noqa: F401
