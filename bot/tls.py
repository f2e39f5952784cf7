"""The one TLS policy for every client (IMAP, SMTP): verify by default, relax only on request."""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_context(ca_file: Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    """System CAs plus ``ca_file``; verification off only with SUPPORTBOT_TLS_INSECURE=1."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
