"""Tests of the sources (IMAP against a real Dovecot)."""
