from __future__ import annotations

from datetime import datetime

from pydantic import Field

from core.inputs import StrictCount
from core.schemas import CamelModel, InputModel
from core.storage.records import WaitlistEntry, WaitlistStatus
from modules.bookings.schemas import MAX_QUANTITY
from modules.events.schemas import TierCode


class WaitlistJoin(InputModel):
    tier: TierCode
    quantity: StrictCount = Field(
        ge=1, le=MAX_QUANTITY, description="Seats wanted; within the event's maxPerUser"
    )


class WaitlistEntryOut(CamelModel):
    id: str
    event_id: str
    tier: str
    quantity: int
    status: WaitlistStatus
    position: int | None = Field(description="Place among the tier's waiting entries (1: next)")
    offer_expires_at: datetime | None = None
    booking_id: str | None = None
    owner_id: str | None = Field(default=None, description="Shown to the event's organizer")
    created_at: datetime

    @classmethod
    def of(
        cls, entry: WaitlistEntry, position: int | None, *, with_owner: bool = False
    ) -> WaitlistEntryOut:
        return cls(
            id=entry.id,
            event_id=entry.event_id,
            tier=entry.tier,
            quantity=entry.quantity,
            status=entry.status,
            position=position,
            offer_expires_at=entry.offer_expires_at if entry.status == "offered" else None,
            booking_id=entry.booking_id,
            owner_id=entry.owner_id if with_owner else None,
            created_at=entry.created_at,
        )
