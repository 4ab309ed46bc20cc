"""Events: ownership, the status machine, listing/search and availability computed from bookings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core import clock, policy
from core.deps import AppContext
from core.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed
from core.logging import get_logger
from core.pagination import decode_cursor, decode_offset, encode_cursor, encode_offset
from core.policy import EventNotFound, admin_or_owner, listed_owner, room_open
from core.queue import QueueSettings, QueueUnavailable
from core.security import Principal
from core.storage.errors import (
    CapacityBelowActive,
    DuplicateKey,
    HasActiveBookings,
    InvalidTransition,
    Missing,
    VersionMismatch,
)
from core.storage.records import SYSTEM_ACTOR, Change, Event, EventStatus, Tier, TierCount, new_id
from core.storage.requests import EventQuery, TierPatch
from modules.events.schemas import (
    AvailabilityOut,
    EventCreate,
    EventPatch,
    QueueIn,
    QueuePatchIn,
    TierAvailabilityOut,
)

PUBLIC_STATUSES: tuple[EventStatus, ...] = ("published", "completed", "cancelled")
TRANSITIONS: dict[str, tuple[tuple[EventStatus, ...], EventStatus]] = {
    "publish": (("draft",), "published"),
    "cancel": (("draft", "published"), "cancelled"),
    "complete": (("published",), "completed"),
}

log = get_logger(__name__)


class InvalidEventTransition(Conflict):
    code = "INVALID_TRANSITION"


class CapacityTooLow(Conflict):
    code = "CAPACITY_BELOW_ACTIVE"


class EventNotEditable(Conflict):
    code = "EVENT_NOT_EDITABLE"
    message = "A cancelled or completed event cannot be changed"


class EventInPast(Conflict):
    code = "EVENT_IN_PAST"
    message = "An event whose start has passed cannot be published"


class EventHasBookings(Conflict):
    code, message = "EVENT_HAS_ACTIVE_BOOKINGS", "The event still has active bookings"


class QueueAlreadyOpen(Conflict):
    code, message = (
        "QUEUE_ALREADY_OPEN",
        "The waiting room has opened: its places are drawn, opensAt can no longer change",
    )


def _opens_at_error(message: str) -> ValidationFailed:
    return ValidationFailed(errors=[{"field": "queue.opensAt", "message": message}])


def new_queue(data: QueueIn | QueuePatchIn, starts_at: datetime, now: datetime) -> QueueSettings:
    """The settings of a waiting room created now: it must open in the future, before the
    event starts, at a rate of at least one a minute."""
    if data.opens_at is None or data.admit_per_minute is None:
        raise ValidationFailed(
            errors=[
                {"field": f"queue.{name}", "message": "required for a new waiting room"}
                for name, value in (
                    ("opensAt", data.opens_at),
                    ("admitPerMinute", data.admit_per_minute),
                )
                if value is None
            ]
        )
    if data.admit_per_minute < 1:
        raise ValidationFailed(
            errors=[{"field": "queue.admitPerMinute", "message": "must be at least 1"}]
        )
    if data.opens_at <= now:
        raise _opens_at_error("must be in the future for a new waiting room")
    if data.opens_at >= starts_at:
        raise _opens_at_error("must be before the event's startsAt")
    return QueueSettings(
        enabled=True if data.enabled is None else data.enabled,
        opens_at=data.opens_at.astimezone(UTC),
        admit_per_minute=data.admit_per_minute,
        max_active=data.max_active,
        session_seconds=600 if data.session_seconds is None else data.session_seconds,
    )


def changed_queue(
    current: QueueSettings, patch: QueuePatchIn, starts_at: datetime, now: datetime
) -> QueueSettings:
    """An existing waiting room after `patch`. Its opening moves only while it is ahead."""
    opens_at = current.opens_at
    if patch.opens_at is not None and patch.opens_at != current.opens_at:
        if current.opens_at <= now:
            raise QueueAlreadyOpen()
        if patch.opens_at <= now:
            raise _opens_at_error("must be in the future")
        opens_at = patch.opens_at.astimezone(UTC)
    if opens_at >= starts_at:
        raise _opens_at_error("must be before the event's startsAt")
    given = patch.model_fields_set
    return QueueSettings(
        enabled=current.enabled if patch.enabled is None else patch.enabled,
        opens_at=opens_at,
        admit_per_minute=(
            current.admit_per_minute if patch.admit_per_minute is None else patch.admit_per_minute
        ),
        max_active=patch.max_active if "max_active" in given else current.max_active,
        session_seconds=(
            current.session_seconds if patch.session_seconds is None else patch.session_seconds
        ),
    )


class ContractEventProtected(Conflict):
    code, message = (
        "CONTRACT_EVENT_PROTECTED",
        "This event serves a partner contract (/reservations or /api/tickets); "
        "it cannot be cancelled or deleted",
    )


def availability_key(event_id: str) -> str:
    # One hash tag with the generation key: they are read in one MGET (one cluster slot).
    return f"avail:{{{event_id}}}"


def generation_key(event_id: str) -> str:
    return f"avail-gen:{{{event_id}}}"


def changed_topic(event_id: str) -> str:
    """The broadcast topic announcing that an event's seats (or the event) changed."""
    return f"event:{event_id}"


async def announce_changes(ctx: AppContext) -> None:
    """Start-up hook: every relayed change announces its event, so live availability streams
    in every process look again."""

    async def announce(changes: Sequence[Change]) -> None:
        await ctx.broadcast.publish(*sorted({changed_topic(c.event_id) for c in changes}))

    ctx.outbox.subscribe(announce)


class EventService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.cache = ctx.cache
        self.broadcast = ctx.broadcast
        self.cache_seconds = ctx.settings.availability_cache_seconds
        self.snapshots = ctx.snapshots
        self.room = ctx.room
        self.tokens = ctx.tokens
        self.require_verified = ctx.settings.require_verified_email
        self.contract_events = frozenset(
            (ctx.settings.ticketboss_event_id, ctx.settings.ticketboss_tiered_event_id)
        )
        """The events the contracts are bootstrapped with and never recreate: ending one
        through the generic routes would break its contract for good."""

    async def create(
        self, principal: Principal, data: EventCreate, event_id: str | None = None
    ) -> Event:
        now = clock.now()
        if data.starts_at <= now:
            raise ValidationFailed(
                errors=[{"field": "startsAt", "message": "must be in the future"}]
            )
        queue = new_queue(data.queue, data.starts_at, now) if data.queue else None
        event = Event(
            id=event_id or new_id(),
            owner_id=principal.id,
            name=data.name,
            description=data.description,
            venue=data.venue,
            starts_at=data.starts_at.astimezone(UTC),
            ends_at=data.ends_at.astimezone(UTC) if data.ends_at else None,
            status="draft",
            tiers=tuple(
                Tier(
                    t.code,
                    t.name,
                    t.price_cents,
                    t.capacity,
                    hidden=t.hidden,
                    waitlist_open=t.waitlist_open,
                )
                for t in data.tiers
            ),
            max_per_user=data.max_per_user,
            created_at=now,
            updated_at=now,
            queue=queue.shape() if queue else None,
        )
        created = await self.storage.events.create(event, principal.actor)
        await self.mirror_queue(created)
        return created

    async def open_sale(
        self, principal: Principal, event_id: str, admission_token: str | None, now: datetime
    ) -> Event:
        """The gate every sale (a booking, an order) passes before storage's atomic step: the
        buyer's address verified if required, the event on sale, the waiting room's admission
        if the event has one."""
        if policy.needs_verified_email(principal, self.require_verified):
            policy.verified_buyer(await self.storage.users.get(principal.id))
        event = policy.bookable(await self.for_booking(event_id), now)
        await policy.require_admission(
            principal, event, admission_token, self.tokens, self.room, now
        )
        return event

    async def for_booking(self, event_id: str) -> Event | None:
        """The event as the booking path sees it, at most a second old (`ctx.snapshots`).

        Staleness is safe: the seat check in storage also requires the tier to be on sale, so a
        just-cancelled event is refused atomically however old this snapshot is.
        """
        key = f"event:{event_id}"
        event: Event | None = self.snapshots.get(key)
        if event is None:
            event = await self.storage.events.get(event_id)
            if event is not None:
                self.snapshots.put(key, event)
        return event

    async def visible(self, principal: Principal | None, event_id: str) -> Event:
        """The event if this caller may see it: drafts only to their owner and admins."""
        event = await self.storage.events.get(event_id)
        if event is None or (
            event.status == "draft" and not admin_or_owner(principal, event.owner_id)
        ):
            raise EventNotFound()
        return event

    @staticmethod
    def staff(principal: Principal | None, event: Event) -> bool:
        """Whether the caller sees the event's hidden tiers (its organizer, an admin)."""
        return admin_or_owner(principal, event.owner_id)

    async def managed(self, principal: Principal, event_id: str) -> Event:
        event = await self.visible(principal, event_id)
        if not admin_or_owner(principal, event.owner_id):
            raise Forbidden("Only the event's organizer or an admin may change it")
        return event

    async def find(
        self,
        principal: Principal | None,
        *,
        status: EventStatus | None,
        starts_from: datetime | None,
        starts_to: datetime | None,
        text: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Event], str | None]:
        statuses, owner = self._listing_scope(principal, status)
        offset = decode_offset(cursor) if text and cursor else 0
        position = decode_cursor(cursor) if cursor and not text else None
        query = EventQuery(
            statuses=statuses,
            owner_id=owner,
            starts_from=starts_from,
            starts_to=starts_to,
            text=text,
            after_id=position,
            offset=offset,
            limit=limit,
        )
        events = await self.storage.events.find(query)
        if len(events) < limit:
            return events, None
        if text:
            return events, encode_offset(offset + len(events))
        return events, encode_cursor(events[-1].id)

    @staticmethod
    def _listing_scope(
        principal: Principal | None, status: EventStatus | None
    ) -> tuple[tuple[EventStatus, ...], str | None]:
        if status is None:
            return ("published",), None
        if status in PUBLIC_STATUSES:
            return (status,), None
        if principal is None or principal.role not in ("organizer", "admin"):
            raise Forbidden("Only organizers and admins may list drafts")
        return (status,), listed_owner(principal)

    async def update(
        self, principal: Principal, event_id: str, patch: EventPatch, if_match: int | None
    ) -> Event:
        current = await self.managed(principal, event_id)
        if current.status in ("cancelled", "completed"):
            raise EventNotEditable()  # its bookings are ended or served: nothing left to sell
        fields: dict[str, Any] = patch.model_dump(exclude_unset=True, exclude={"tiers", "queue"})
        starts_at = fields.get("starts_at", current.starts_at)
        if patch.queue is not None:
            now = clock.now()
            queue = (
                changed_queue(QueueSettings.of(current.queue), patch.queue, starts_at, now)
                if current.queue
                else new_queue(patch.queue, starts_at, now)
            )
            fields["queue"] = queue.shape()
        ends_at = fields.get("ends_at", current.ends_at)
        if ends_at is not None and ends_at <= starts_at:
            raise Conflict(
                "endsAt must be after startsAt",
                errors=[{"field": "endsAt", "message": "must be after startsAt"}],
            )
        tiers = [
            TierPatch(t.code, t.name, t.price_cents, t.capacity, t.hidden, t.waitlist_open)
            for t in patch.tiers or []
        ]
        for tier in tiers:
            if current.tier(tier.code) is None and None in (
                tier.name,
                tier.price_cents,
                tier.capacity,
            ):
                raise Conflict(
                    f"New tier {tier.code} needs name, priceCents and capacity",
                    errors=[{"field": "tiers", "message": "a new tier needs every field"}],
                )
        try:
            event = await self.storage.events.update(
                event_id,
                expected_version=if_match,
                fields=fields,
                tiers=tiers,
                now=clock.now(),
                actor=principal.actor,
            )
        except VersionMismatch as exc:
            raise PreconditionFailed(
                f"The event changed (version {exc.current}); reload and retry",
                extra={"version": exc.current},
            ) from None
        except CapacityBelowActive as exc:
            raise CapacityTooLow(
                f"Tier {exc.tier} already has {exc.active} seats in active bookings",
                errors=[{"field": "tiers.capacity", "message": f"must be at least {exc.active}"}],
            ) from None
        except Missing:
            raise EventNotFound() from None
        await self.changed(event_id)
        await self.mirror_queue(event)
        return event

    async def mirror_queue(self, event: Event) -> None:
        """Tell the waiting room at once (a paused rate pauses now): its settings are read
        from the cache, never from the database, on the waiting clients' path. A cache that
        cannot be reached now catches up from the admitters' periodic refresh."""
        if event.queue is None:
            return
        try:
            await self.room.configure(
                event.id,
                event.version,
                QueueSettings.of(event.queue),
                open_=room_open(event),
            )
        except QueueUnavailable:
            log.warning("queue_mirror_failed", event_id=event.id)

    async def transition(self, principal: Principal, event_id: str, action: str) -> Event:
        current = await self.managed(principal, event_id)
        if action == "cancel":
            self._not_a_contract_event(event_id)
        if action == "publish" and current.status == "draft" and current.starts_at <= clock.now():
            raise EventInPast()
        allowed_from, to = TRANSITIONS[action]
        try:
            event = await self.storage.events.transition(
                event_id, allowed_from, to, clock.now(), principal.actor
            )
        except InvalidTransition as exc:
            raise InvalidEventTransition(
                f"Cannot {action} an event that is {exc.current}"
            ) from None
        except Missing:
            raise EventNotFound() from None
        await self.changed(event_id)
        await self.mirror_queue(event)
        return event

    async def delete(self, principal: Principal, event_id: str) -> None:
        await self.managed(principal, event_id)
        self._not_a_contract_event(event_id)
        try:
            await self.storage.events.soft_delete(event_id, clock.now(), principal.actor)
        except HasActiveBookings:
            raise EventHasBookings() from None
        except Missing:
            raise EventNotFound() from None
        await self.changed(event_id)

    def _not_a_contract_event(self, event_id: str) -> None:
        if event_id in self.contract_events:
            raise ContractEventProtected()

    async def availability(self, event_id: str) -> tuple[list[TierCount], datetime]:
        """Seats computed from bookings, served from the cache for a few seconds.

        Every booking change bumps the event's generation; a cached answer counts only if it
        was computed at the current generation, so a computation that raced with a booking
        can never be served as fresh (read-your-writes for the client that booked).
        """
        if not self.cache_seconds:
            return await self._count(event_id)
        entry, generation = await self.cache.get_many_json(
            availability_key(event_id), generation_key(event_id)
        )
        if entry and entry.get("gen") == generation:
            return [TierCount(**t) for t in entry["tiers"]], datetime.fromisoformat(entry["asOf"])
        counts, now = await self._count(event_id)
        payload = {
            "gen": generation,
            "tiers": [
                {
                    "code": c.code,
                    "capacity": c.capacity,
                    "pending": c.pending,
                    "confirmed": c.confirmed,
                    "blocked": c.blocked,
                    "hidden": c.hidden,
                }
                for c in counts
            ],
            "asOf": now.isoformat(),
        }
        await self.cache.set_json(availability_key(event_id), payload, self.cache_seconds)
        return counts, now

    async def availability_out(self, event_id: str) -> AvailabilityOut:
        """The availability as the API shows it (GET …/availability and its stream): seats
        offered to the waiting list or held for codes are not available; hidden tiers are
        not shown."""
        counts, as_of = await self.availability(event_id)
        counts = [c for c in counts if not c.hidden]
        tiers = [
            TierAvailabilityOut(
                code=c.code,
                capacity=c.capacity,
                available=c.available,
                pending=c.pending,
                confirmed=c.confirmed,
                blocked=c.blocked,
            )
            for c in counts
        ]
        return AvailabilityOut(
            event_id=event_id, tiers=tiers, available=sum(c.available for c in counts), as_of=as_of
        )

    async def _count(self, event_id: str) -> tuple[list[TierCount], datetime]:
        now = clock.now()
        return await self.storage.events.availability(event_id, now), now

    async def invalidate(self, event_id: str) -> None:
        """The seats changed: drop the cached availability and tell the live streams."""
        await self.cache.incr(generation_key(event_id), ttl_seconds=3600)
        self.broadcast.soon(changed_topic(event_id))

    async def changed(self, event_id: str) -> None:
        """The event itself changed: drop this process's snapshot and the cached availability."""
        self.snapshots.forget(f"event:{event_id}")
        await self.invalidate(event_id)


SYSTEM_OWNER = "system"
"""The owner of the contracts' bootstrapped events."""


async def ensure_contract_event(
    ctx: AppContext,
    event_id: str,
    name: str,
    venue: str,
    starts_at: datetime,
    tiers: Sequence[Tier],
) -> None:
    """Create a contract's event on first start (published, owned by the system) unless it
    exists, deleted or not; several workers starting at once race, and one wins."""
    if await ctx.storage.events.get(event_id, include_deleted=True):
        return
    now = clock.now()
    event = Event(
        id=event_id,
        owner_id=SYSTEM_OWNER,
        name=name,
        venue=venue,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=3),
        status="published",
        tiers=tuple(tiers),
        created_at=now,
        updated_at=now,
    )
    try:
        await ctx.storage.events.create(event, SYSTEM_ACTOR)
        log.info("event_bootstrapped", event_id=event_id, tiers=len(event.tiers))
    except DuplicateKey:
        pass  # another worker created it first
