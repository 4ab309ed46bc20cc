from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from core.inputs import StrictCount, StrictFlag
from core.policy import display_status
from core.schemas import CamelModel, InputModel
from core.storage.records import Booking, BookingStatus

MAX_QUANTITY = 10


class BookingCreate(InputModel):
    event_id: str = Field(min_length=1, max_length=64)
    tier: str = Field(min_length=1, max_length=32)
    quantity: StrictCount = Field(ge=1, le=MAX_QUANTITY)
    hold: StrictFlag = False
    external_ref: str | None = Field(default=None, max_length=255)
    waitlist_entry_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Book the seats your waiting-list offer holds (exactly its quantity)",
    )
    access_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="An access code of the event: unlocks its tiers, hidden ones too",
    )

    @model_validator(mode="after")
    def _one_claim(self) -> BookingCreate:
        if self.waitlist_entry_id is not None and self.access_code is not None:
            raise ValueError("use either waitlistEntryId or accessCode, not both")
        return self


class BookingOut(CamelModel):
    id: str
    ticket_number: str
    event_id: str
    tier: str
    quantity: int
    unit_price_cents: int
    total_cents: int
    currency: str
    status: BookingStatus
    expires_at: datetime | None = None
    partner_id: str | None = None
    external_ref: str | None = None
    order_id: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, booking: Booking, now: datetime) -> BookingOut:
        return cls(
            id=booking.id,
            ticket_number=booking.ticket_number,
            event_id=booking.event_id,
            tier=booking.tier,
            quantity=booking.quantity,
            unit_price_cents=booking.unit_price_cents,
            total_cents=booking.total_cents,
            currency=booking.currency,
            status=display_status(booking.status, booking.expires_at, now),
            expires_at=booking.expires_at,
            partner_id=booking.partner_id,
            external_ref=booking.external_ref,
            order_id=booking.order_id,
            created_at=booking.created_at,
            updated_at=booking.updated_at,
        )
