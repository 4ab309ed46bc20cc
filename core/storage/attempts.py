"""What one attempt (a mail sent, a webhook delivered) leaves on its outbox row, on every
backend: its outcome, when it is due next, and its lease released. The backends add one to
`attempts` their own way."""

from __future__ import annotations

from typing import Any

from core.storage.records import Attempt


def settled(attempt: Attempt) -> dict[str, Any]:
    """The fields of a mail or delivery row after `attempt`, but `attempts` (the backend
    adds one) and the fields of a delivery alone (`delivery_settled`)."""
    return {
        "status": attempt.status,
        "next_attempt_at": attempt.next_attempt_at,
        "last_error": attempt.error,
        "last_attempt_at": attempt.at,
        "lease_holder": None,
        "lease_until": None,
    }


def mail_settled(attempt: Attempt) -> dict[str, Any]:
    """A mail sent keeps no params: a reset link must not outlive its sending."""
    return settled(attempt) | ({"params": {}} if attempt.status == "succeeded" else {})


def delivery_settled(attempt: Attempt) -> dict[str, Any]:
    """A webhook delivery also keeps the answer's status code and latency."""
    return settled(attempt) | {
        "last_status_code": attempt.status_code,
        "last_latency_ms": attempt.latency_ms,
    }
