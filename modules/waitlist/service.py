"""Waiting lists: joining a sold-out tier, leaving, and what the buyer and the organizer see.
Offers are made by storage in the atomic step that frees the seats (core/storage/port.py)."""

from __future__ import annotations

from core import clock, policy
from core.deps import AppContext
from core.errors import Conflict, Forbidden
from core.policy import PerUserLimitExceeded, WaitlistEntryNotFound
from core.security import Principal
from core.storage.errors import DuplicateKey, Missing, Refused
from core.storage.records import WaitlistEntry, new_id
from modules.events.service import EventService
from modules.waitlist.schemas import WaitlistEntryOut


class AlreadyWaiting(Conflict):
    code, message = "ALREADY_ON_WAITLIST", "You are already on this tier's waiting list"


class WaitlistService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)
        self.offer_seconds = ctx.settings.waitlist_offer_seconds

    async def join(
        self, principal: Principal, event_id: str, tier: str, quantity: int
    ) -> WaitlistEntryOut:
        if principal.is_partner:
            raise Forbidden("Partners book for their customers; a waiting list is per account")
        now = clock.now()
        event = policy.bookable(await self.events.for_booking(event_id), now)
        if event.max_per_user is not None and quantity > event.max_per_user:
            raise PerUserLimitExceeded(extra={"maxPerUser": event.max_per_user})
        entry = WaitlistEntry(
            new_id(),
            event.id,
            tier,
            principal.id,
            quantity,
            "waiting",
            0,
            self.offer_seconds,
            now,
            now,
        )
        try:
            joined = await self.storage.waitlist.join(entry)
        except DuplicateKey:
            raise AlreadyWaiting() from None
        except Refused as refused:
            raise policy.refusal_error(refused, event, tier) from None
        return WaitlistEntryOut.of(joined, await self.storage.waitlist.position(joined))

    async def mine(self, principal: Principal) -> list[WaitlistEntryOut]:
        entries = await self.storage.waitlist.find(owner_id=principal.id)
        return [await self._out(e) for e in entries]

    async def leave(self, principal: Principal, entry_id: str) -> WaitlistEntryOut:
        try:
            left = await self.storage.waitlist.leave(entry_id, principal.id, clock.now())
        except Missing:
            raise WaitlistEntryNotFound() from None
        await self.events.invalidate(left.event_id)
        return WaitlistEntryOut.of(left, None)

    async def of_event(
        self, principal: Principal, event_id: str, tier: str | None
    ) -> list[WaitlistEntryOut]:
        """The organizer's view: the live entries, in list order, with their owners."""
        await self.events.managed(principal, event_id)
        entries = await self.storage.waitlist.find(event_id=event_id, tier=tier, live_only=True)
        return [await self._out(e, with_owner=True) for e in entries]

    async def _out(self, entry: WaitlistEntry, *, with_owner: bool = False) -> WaitlistEntryOut:
        position = (
            await self.storage.waitlist.position(entry) if entry.status == "waiting" else None
        )
        return WaitlistEntryOut.of(entry, position, with_owner=with_owner)
