from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from core.deps import Context
from modules.bookings.service import BookingService


async def booking_service(ctx: Context) -> BookingService:
    return BookingService(ctx)


Bookings = Annotated[BookingService, Depends(booking_service)]
