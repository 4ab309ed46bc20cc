"""One Idempotency-Key space per caller, in storage too: each key a caller sends is claimed
once, with the kind of what it made (a booking or an order), in the atomic step that writes it.
The Redis fast path scopes keys per caller already; this is its durable backstop, which holds
when the cache is lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from core.storage.errors import KeyClaimed
from core.storage.requests import OrderRequest, ReserveRequest

Kind = Literal["booking", "order"]
BOOKING: Kind = "booking"
ORDER: Kind = "order"
FIELD = "key_claim"
"""The DuplicateKey field of a taken claim."""


def claim_values(
    owner_id: str, key: str, kind: Kind, resource_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "owner_id": owner_id,
        "key": key,
        "kind": kind,
        "resource_id": resource_id,
        "created_at": now,
    }


def of_bookings(made: Iterable[tuple[ReserveRequest, str]]) -> list[dict[str, Any]]:
    """The claims of (request, id of the booking it made) pairs, for those that sent a key."""
    return [
        claim_values(r.owner_id, key, BOOKING, booking_id, r.now)
        for r, booking_id in made
        if (key := r.idempotency_key) is not None
    ]


def of_order(request: OrderRequest) -> list[dict[str, Any]]:
    key = request.idempotency_key
    return (
        []
        if key is None
        else [claim_values(request.owner_id, key, ORDER, request.order_id, request.now)]
    )


async def refuse_other_kind(
    kind_of: Callable[[str, str], Awaitable[str | None]],
    owner_id: str,
    key: str | None,
    mine: Kind,
) -> None:
    """KeyClaimed when the caller's `key` made something of another kind than `mine`."""
    if key is None:
        return
    kind = await kind_of(owner_id, key)
    if kind is not None and kind != mine:
        raise KeyClaimed(kind)
