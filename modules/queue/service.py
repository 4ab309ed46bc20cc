"""The waiting room: join, read one's place, the organizer's figures, and the admitter.

A waiting client's requests touch only the cache: its place is one script in Redis, the
event's settings are mirrored there (core/queue.py). Admission is decided by one process per
event at a time (a lease in Redis, renewed by each step); every worker runs the loop, the
others' steps return at once. A step is atomic, so a worker killed mid-step loses no place.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from datetime import UTC, datetime

from core import clock
from core.cache import Memo
from core.deps import AppContext
from core.errors import Conflict, Forbidden, NotFound
from core.logging import get_logger
from core.policy import EventNotFound, QueueUnavailableError, admin_or_owner, room_open
from core.queue import (
    DREW,
    Closed,
    NoConfig,
    NotJoined,
    Place,
    QueueSettings,
    QueueUnavailable,
)
from core.security import Principal
from core.storage.records import Event
from modules.events.service import EventService
from modules.queue.schemas import PlaceOut, QueueStatsOut

log = get_logger(__name__)
REFRESH_SECONDS = 2.0
"""How old the admitter's copy of an event's settings may be (a PATCH is mirrored at once)."""


class QueueNotOpen(Conflict):
    code, message = (
        "QUEUE_NOT_ENABLED",
        "This event has no open waiting room (none set, disabled, or the event is not on sale)",
    )


class NotInQueue(NotFound):
    code, message = "NOT_IN_QUEUE", "You have not joined this event's waiting room"


def topic(event_id: str) -> str:
    """The broadcast topic announcing admissions in an event's waiting room."""
    return f"queue:{event_id}"


class QueueService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.room = ctx.room
        self.tokens = ctx.tokens
        self.events = EventService(ctx)

    async def _configured(self, event_id: str) -> None:
        """Mirror the event's settings after a cache miss (the first join after a restart):
        one database read, then the cache answers again."""
        event = await self.events.for_booking(event_id)
        if event is None:
            raise EventNotFound()
        settings = QueueSettings.of(event.queue) if event.queue else None
        await self.room.configure(event_id, event.version, settings, room_open(event))

    async def join(self, principal: Principal, event_id: str) -> tuple[PlaceOut, bool]:
        try:
            try:
                place, created = await self.room.join(event_id, principal.id, clock.now())
            except NoConfig:
                await self._configured(event_id)
                place, created = await self.room.join(event_id, principal.id, clock.now())
        except (NoConfig, Closed):
            await self._visible(event_id)
            raise QueueNotOpen() from None
        except QueueUnavailable:
            raise QueueUnavailableError() from None
        return self.out(principal, event_id, place), created

    async def _visible(self, event_id: str) -> None:
        """A room that is not open: 404 if a buyer cannot see its event (a draft) either."""
        event = await self.events.for_booking(event_id)
        if event is None or event.status == "draft":
            raise EventNotFound()

    async def me(self, principal: Principal, event_id: str) -> PlaceOut:
        try:
            try:
                place = await self.room.read(event_id, principal.id, clock.now())
            except NoConfig:
                await self._configured(event_id)
                place = await self.room.read(event_id, principal.id, clock.now())
        except NoConfig:
            raise QueueNotOpen() from None
        except NotJoined:
            raise NotInQueue() from None
        except QueueUnavailable:
            raise QueueUnavailableError() from None
        return self.out(principal, event_id, place)

    def out(self, principal: Principal, event_id: str, place: Place) -> PlaceOut:
        until = place.admitted_until_ms
        admitted = place.state == "admitted" and until is not None
        return PlaceOut(
            state=place.state,
            position=place.position,
            ahead=place.ahead,
            eta_seconds=place.eta_seconds if place.state == "waiting" else None,
            admission_token=(
                self.tokens.admission_token(principal.id, event_id, until)
                if admitted and until is not None
                else None
            ),
            admitted_until=None if until is None else datetime.fromtimestamp(until / 1000, UTC),
        )

    async def stats(self, principal: Principal, event_id: str) -> QueueStatsOut:
        event = await self.events.visible(principal, event_id)
        if not admin_or_owner(principal, event.owner_id):
            raise Forbidden("Only the event's organizer or an admin may see its waiting room")
        if event.queue is None:
            raise QueueNotOpen("This event has no waiting room")
        settings = QueueSettings.of(event.queue)
        try:
            stats = await self.room.stats(event_id, clock.now())
        except QueueUnavailable:
            raise QueueUnavailableError() from None
        return QueueStatsOut(
            event_id=event_id,
            prequeue=stats.prequeue,
            waiting=stats.waiting,
            admitted=stats.admitted,
            active=stats.active,
            admitted_per_minute=stats.admitted_per_minute,
            median_wait_seconds=stats.median_wait_seconds,
            admit_per_minute=settings.admit_per_minute,
            max_active=settings.max_active,
        )


async def _refresh(ctx: AppContext, event_id: str, seen: Memo[Event]) -> bool:
    """Mirror the event's settings at most every REFRESH_SECONDS; False once it has no
    waiting room left to run."""
    if seen.get(event_id) is not None:
        return True
    event = await ctx.storage.events.get(event_id)
    if event is None or event.queue is None:
        await ctx.room.configure(event_id, event.version if event else 1 << 30, None, False)
        await ctx.room.forget_event(event_id)
        return False
    await ctx.room.configure(
        event_id, event.version, QueueSettings.of(event.queue), room_open(event)
    )
    seen.put(event_id, event)
    return True


async def admit_forever(ctx: AppContext) -> None:
    """Background loop of every worker: one admission step per event with a waiting room,
    taken only by the process holding that event's lease."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    tick = ctx.settings.queue_tick_seconds
    lease_ms = int(ctx.settings.queue_lease_seconds * 1000)
    seen: Memo[Event] = Memo(REFRESH_SECONDS)
    while True:
        await asyncio.sleep(tick)
        try:
            for event_id in await ctx.room.events():
                if not await _refresh(ctx, event_id, seen):
                    continue
                stepped = await ctx.room.tick(event_id, owner, clock.now(), lease_ms)
                if stepped > 0 or stepped == DREW:
                    await ctx.broadcast.publish(topic(event_id))
        except QueueUnavailable:
            pass  # logged by the cache (once per interval); admission waits for it
        except Exception as exc:  # the loop must outlive a transient failure
            log.warning("queue_admit_failed", error=type(exc).__name__)
