from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from core.inputs import StrictCount, StrictFlag
from core.policy import display_status
from core.schemas import CamelModel, InputModel
from core.storage.records import BookingStatus, Order
from modules.bookings.schemas import MAX_QUANTITY, BookingOut

MAX_ITEMS = 10


class OrderItemIn(InputModel):
    tier: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    quantity: StrictCount = Field(ge=1, le=MAX_QUANTITY)


class OrderCreate(InputModel):
    event_id: str = Field(min_length=1, max_length=64)
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ITEMS)
    hold: StrictFlag = False
    external_ref: str | None = Field(default=None, max_length=255)

    @field_validator("items")
    @classmethod
    def _one_item_per_tier(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        tiers = [item.tier for item in items]
        if len(tiers) != len(set(tiers)):
            raise ValueError("each tier may appear once in an order")
        return items


class OrderOut(CamelModel):
    id: str
    event_id: str
    status: BookingStatus
    expires_at: datetime | None = None
    total_cents: int
    currency: str = "USD"
    partner_id: str | None = None
    external_ref: str | None = None
    created_at: datetime
    updated_at: datetime
    bookings: list[BookingOut]

    @classmethod
    def of(cls, order: Order, now: datetime) -> OrderOut:
        return cls(
            id=order.id,
            event_id=order.event_id,
            status=display_status(order.status, order.expires_at, now),
            expires_at=order.expires_at,
            total_cents=order.total_cents,
            partner_id=order.partner_id,
            external_ref=order.external_ref,
            created_at=order.created_at,
            updated_at=order.updated_at,
            bookings=[BookingOut.of(b, now) for b in order.bookings],
        )
