"""The activity log: the change records (transactional outbox), read by who may see them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from core.deps import AppContext
from core.security import Principal
from core.storage.records import Change
from core.storage.requests import ChangeQuery
from modules.bookings.service import BookingService
from modules.events.service import EventService


class ActivityService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)
        self.bookings = BookingService(ctx)

    async def of_event(
        self, principal: Principal, event_id: str, query: ChangeQuery
    ) -> list[Change]:
        """An event's changes and its bookings' and orders' (its organizer and admins)."""
        await self.events.managed(principal, event_id)
        return await self.storage.changes.find(replace(query, event_id=event_id))

    async def of_booking(
        self, principal: Principal, booking_id: str, query: ChangeQuery
    ) -> list[Change]:
        """A booking's changes (its owner and admins)."""
        await self.bookings.get(principal, booking_id)
        return await self.storage.changes.find(replace(query, subject_id=booking_id))

    async def prune(self, before: datetime) -> int:
        """Delete change records older than `before` (the retention period)."""
        return await self.storage.changes.prune(before)

    async def everything(self, query: ChangeQuery) -> list[Change]:
        """Every change, filtered (admins)."""
        return await self.storage.changes.find(query)
