"""What every backend shares about bookings with an access code or a waiting-list offer:
the discounted price, and why a code or an offer refused, read from its row or document."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.storage.errors import ClaimRefused
from core.storage.records import AccessCode
from core.storage.requests import CodePatch, ReserveRequest

OFFER_SCAN = 200
"""The most waiting entries one offer step looks at (the earliest of the tier)."""


def live_key(event_id: str, tier: str, owner_id: str) -> str:
    """What the unique index of live entries holds: one per account and tier."""
    return f"{event_id}/{tier}/{owner_id}"


def discounted(price_cents: int, percent: int) -> int:
    """The unit price after a code's discount, rounded down to a whole minor unit."""
    return price_cents * (100 - percent) // 100


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def offer_refusal(entry: Mapping[Any, Any] | None, request: ReserveRequest) -> ClaimRefused:
    """Why the buyer's entry (None: not theirs, or not of this event and tier) gave no seats."""
    if entry is None:
        return ClaimRefused("entry_unknown")
    expires = _aware(entry.get("offer_expires_at"))
    if entry["status"] == "expired" or (
        entry["status"] == "offered" and expires is not None and expires <= request.now
    ):
        return ClaimRefused("offer_expired")
    if entry["status"] == "booked":
        return ClaimRefused("offer_used")
    if entry["status"] != "offered":
        return ClaimRefused("entry_not_offered")
    return ClaimRefused("offer_quantity", int(entry["quantity"]))


def code_refusal(code: Mapping[Any, Any] | None, now: datetime) -> ClaimRefused:
    """Why a code of the event (None: the event has no such code) gave no use."""
    if code is None:
        return ClaimRefused("code_unknown")
    if not code["enabled"]:
        return ClaimRefused("code_disabled")
    valid_from, valid_until = _aware(code.get("valid_from")), _aware(code.get("valid_until"))
    if valid_from is not None and valid_from > now:
        return ClaimRefused("code_not_yet_valid")
    if valid_until is not None and valid_until <= now:
        return ClaimRefused("code_expired")
    return ClaimRefused("code_used_up")


def patched(code: AccessCode, patch: CodePatch, now: datetime) -> AccessCode:
    """The code after `patch`: a reserving code holds seats while enabled and not expired."""
    valid_from = None if patch.clear_valid_from else (patch.valid_from or code.valid_from)
    valid_until = None if patch.clear_valid_until else (patch.valid_until or code.valid_until)
    enabled = code.enabled if patch.enabled is None else patch.enabled
    new = dataclasses.replace(
        code,
        max_uses=code.max_uses if patch.max_uses is None else patch.max_uses,
        valid_from=valid_from,
        valid_until=valid_until,
        discount_percent=(
            code.discount_percent if patch.discount_percent is None else patch.discount_percent
        ),
        enabled=enabled,
        updated_at=now,
    )
    holding = code.reserve_seats and enabled and (valid_until is None or valid_until > now)
    return dataclasses.replace(new, holding=holding)
