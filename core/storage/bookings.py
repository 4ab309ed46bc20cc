"""The BookingStore of every backend, assembled from one object per concern: the `Reserver`
(reserving.py: steps, batcher), the `Sweeper` (expired holds), the `Recount` (drift.py), and
the backend's `BookingRows` (confirm, cancel, reads). Each is built and passed in by the
backend's `booking_store` (sql/__init__.py, mongo/__init__.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.storage.drift import Recount
from core.storage.records import Actor, Booking, Drift, Reservation
from core.storage.requests import BookingQuery, ReserveRequest
from core.storage.reserving import Reserver, Sweeper


class BookingRows(Protocol):
    """What a backend does with bookings once they exist."""

    async def confirm(
        self, booking_id: str, owner_id: str, now: datetime, actor: Actor
    ) -> Booking: ...
    async def cancel(
        self, booking_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Booking: ...
    async def get(self, booking_id: str) -> Booking | None: ...
    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None: ...
    async def key_kind(self, owner_id: str, key: str) -> str | None: ...
    async def find(self, query: BookingQuery) -> list[Booking]: ...
    async def count_active(self, event_id: str, now: datetime) -> int: ...


class Bookings:
    """The port's BookingStore: each operation handed to the one object that does it."""

    def __init__(
        self, *, reserver: Reserver, sweeper: Sweeper, recount: Recount, rows: BookingRows
    ) -> None:
        self.reserver = reserver
        self.sweeper = sweeper
        self.recounter = recount
        self.rows = rows

    async def reserve(self, request: ReserveRequest) -> Reservation:
        return await self.reserver.reserve(request)

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        return await self.sweeper.release_expired(now, event_id, tier)

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        return await self.recounter.recount(now, fix=fix)

    async def confirm(self, booking_id: str, owner_id: str, now: datetime, actor: Actor) -> Booking:
        return await self.rows.confirm(booking_id, owner_id, now, actor)

    async def cancel(
        self, booking_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Booking:
        return await self.rows.cancel(booking_id, owner_id, now, actor)

    async def get(self, booking_id: str) -> Booking | None:
        return await self.rows.get(booking_id)

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        return await self.rows.get_by_key(owner_id, idempotency_key)

    async def key_kind(self, owner_id: str, key: str) -> str | None:
        return await self.rows.key_kind(owner_id, key)

    async def find(self, query: BookingQuery) -> list[Booking]:
        return await self.rows.find(query)

    async def count_active(self, event_id: str, now: datetime) -> int:
        return await self.rows.count_active(event_id, now)
