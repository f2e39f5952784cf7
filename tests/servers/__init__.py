"""Real servers the tests start on loopback (Dovecot, SMTP), with fixtures to import."""
