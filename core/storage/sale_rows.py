"""The values a new booking or order is written with, on every backend."""

from __future__ import annotations

from typing import Any

from core.storage.requests import OrderRequest, ReserveRequest


def booking_values(request: ReserveRequest) -> dict[str, Any]:
    """The columns of the booking `request` makes, but its unit price (read from the tier)."""
    return sale_values(request) | {
        "id": request.booking_id,
        "ticket_number": request.ticket_number,
        "tier": request.tier,
        "quantity": request.quantity,
        "currency": "USD",
        "order_id": None,
    }


def sale_values(request: ReserveRequest | OrderRequest) -> dict[str, Any]:
    """The columns a new booking and a new order share."""
    return {
        "event_id": request.event_id,
        "owner_id": request.owner_id,
        "status": "pending" if request.hold_until else "confirmed",
        "expires_at": request.hold_until,
        "partner_id": request.partner_id,
        "external_ref": request.external_ref,
        "idempotency_key": request.storage_key,
        "request_hash": request.request_hash,
        "version": 1,
        "created_at": request.now,
        "updated_at": request.now,
    }
