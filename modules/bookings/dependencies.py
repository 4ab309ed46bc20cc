from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modules.bookings.service import BookingService


async def booking_service(request: Request) -> BookingService:
    return BookingService(request.app.state.ctx)


Bookings = Annotated[BookingService, Depends(booking_service)]
