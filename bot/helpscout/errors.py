"""Typed Help Scout failures, built from the API's error body.

HelpScoutError (bot.errors)      any error answer: message, logRef, field errors
 +-- ConversationGone            404: the conversation was deleted (or never existed)
 +-- ThreadLimitReached          412: the conversation holds the maximum 100 threads
 +-- ConversationTooOld          412: the conversation is too old to take a new thread
 +-- HelpScoutUnavailable        429 / 5xx / network errors still failing after retries
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from bot.errors import HelpScoutError


class ConversationGone(HelpScoutError):
    """The conversation answers 404: deleted, or never in this account."""

    def __init__(self, conversation_id: int, log_ref: str | None = None) -> None:
        self.conversation_id = conversation_id
        super().__init__(404, f"conversation {conversation_id} not found (deleted?)", log_ref)


class ThreadLimitReached(HelpScoutError):
    """412: Help Scout refuses new threads on a conversation with ~100 of them."""

    def __init__(self, conversation_id: int, message: str, log_ref: str | None = None) -> None:
        self.conversation_id = conversation_id
        super().__init__(412, f"conversation {conversation_id}: {message}", log_ref)


class ConversationTooOld(HelpScoutError):
    """412 for age, not size: Help Scout will not add threads to a conversation this old.
    An agent can still answer it in Help Scout (or start a new conversation)."""

    def __init__(self, conversation_id: int, message: str, log_ref: str | None = None) -> None:
        self.conversation_id = conversation_id
        super().__init__(412, f"conversation {conversation_id} is too old for a new thread "
                              f"through the API ({message}); answer it in Help Scout", log_ref)


_AGE = re.compile(r"\b(too old|older than|age|expired|archived)\b", re.IGNORECASE)


def precondition_failed(conversation_id: int, response: httpx.Response) -> HelpScoutError:
    """Help Scout answers 412 for two different reasons; its message tells which."""
    body = error_body(response)
    message = str(body.get("message") or "precondition failed")
    log_ref = body.get("logRef")
    ref = str(log_ref) if log_ref else None
    if _AGE.search(message):
        return ConversationTooOld(conversation_id, message, ref)
    return ThreadLimitReached(conversation_id, message, ref)


class HelpScoutUnavailable(HelpScoutError):
    """Retries ran out on rate limiting, server errors or the network: try again later."""

    def __init__(self, status: int, reason: str, attempts: int) -> None:
        self.attempts = attempts
        self.reason = reason
        super().__init__(status, f"{reason} (gave up after {attempts} attempts)")
        if status == 0:  # no HTTP answer at all: say so instead of "API 0"
            self.args = (f"Help Scout API unreachable: {reason} (gave up after {attempts} "
                         "attempts)",)


def error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def error_from_response(response: httpx.Response) -> HelpScoutError:
    """`message`, `logRef` and `_embedded.errors[].path/message` in one readable exception."""
    body = error_body(response)
    message = str(body.get("message") or body.get("error_description") or body.get("error")
                  or response.reason_phrase or "error")
    errors: list[str] = []
    embedded = body.get("_embedded")
    for item in (embedded.get("errors") if isinstance(embedded, dict) else None) or []:
        if isinstance(item, dict):
            path = item.get("path")
            text = str(item.get("message") or "")
            errors.append(f"{path}: {text}" if path else text)
    log_ref = body.get("logRef")
    return HelpScoutError(response.status_code, message, str(log_ref) if log_ref else None, errors)
