"""Access codes: the organizer creates, lists, edits and disables them; a booking redeems one
(its use counted by storage in the booking's atomic step)."""

from __future__ import annotations

import dataclasses
from datetime import UTC

from core import clock, policy
from core.deps import AppContext
from core.errors import Conflict, NotFound, ValidationFailed
from core.policy import InsufficientTickets
from core.security import Principal
from core.storage import claiming
from core.storage.errors import CapacityBelowActive, DuplicateKey, Missing, NoSuchTier
from core.storage.records import AccessCode, new_id
from core.storage.requests import CodePatch
from modules.codes.schemas import CodeCheckOut, CodeCreate, CodePatchIn, CodeTierOut
from modules.events.service import EventService


class CodeTaken(Conflict):
    code, message = "ACCESS_CODE_TAKEN", "The event already has this code"


class CodeNotFound(NotFound):
    code, message = "ACCESS_CODE_NOT_FOUND", "No such access code"


class UsesBelowMade(Conflict):
    code = "MAX_USES_BELOW_USES"


class CodeService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)

    async def create(self, principal: Principal, event_id: str, data: CodeCreate) -> AccessCode:
        event = await self.events.managed(principal, event_id)
        unknown = [t for t in data.tiers if event.tier(t) is None]
        if unknown:
            raise ValidationFailed(
                errors=[{"field": "tiers", "message": f"no tier {', '.join(unknown)}"}]
            )
        now = clock.now()
        valid_until = data.valid_until.astimezone(UTC) if data.valid_until else None
        code = AccessCode(
            id=new_id(),
            event_id=event.id,
            code=data.code,
            max_uses=data.max_uses,
            tiers=tuple(data.tiers),
            created_at=now,
            updated_at=now,
            valid_from=data.valid_from.astimezone(UTC) if data.valid_from else None,
            valid_until=valid_until,
            reserve_seats=data.reserve_seats,
            holding=data.reserve_seats and (valid_until is None or valid_until > now),
            discount_percent=data.discount_percent,
        )
        try:
            made = await self.storage.codes.create(code, now)
        except DuplicateKey:
            raise CodeTaken() from None
        except (CapacityBelowActive, NoSuchTier) as exc:
            free = exc.active if isinstance(exc, CapacityBelowActive) else 0
            raise InsufficientTickets(
                f"Only {free} free seats to reserve in tier {data.tiers[0]}",
                extra={"available": free},
            ) from None
        await self.events.invalidate(event.id)
        return made

    async def find(self, principal: Principal, event_id: str) -> list[AccessCode]:
        await self.events.managed(principal, event_id)
        return await self.storage.codes.find(event_id)

    async def update(
        self, principal: Principal, event_id: str, code_id: str, data: CodePatchIn
    ) -> AccessCode:
        await self.events.managed(principal, event_id)
        sent = data.model_fields_set
        patch = CodePatch(
            max_uses=data.max_uses,
            valid_from=data.valid_from.astimezone(UTC) if data.valid_from else None,
            valid_until=data.valid_until.astimezone(UTC) if data.valid_until else None,
            clear_valid_from="valid_from" in sent and data.valid_from is None,
            clear_valid_until="valid_until" in sent and data.valid_until is None,
            discount_percent=data.discount_percent,
            enabled=data.enabled,
        )
        try:
            code = await self.storage.codes.update(event_id, code_id, patch, clock.now())
        except Missing:
            raise CodeNotFound() from None
        except CapacityBelowActive as exc:
            if exc.tier == "maxUses":
                raise UsesBelowMade(
                    f"The code has been used {exc.active} times", extra={"uses": exc.active}
                ) from None
            raise InsufficientTickets(
                f"Only {exc.active} more free seats to reserve", extra={"available": exc.active}
            ) from None
        await self.events.invalidate(event_id)
        return code

    async def disable(self, principal: Principal, event_id: str, code_id: str) -> AccessCode:
        return await self.update(principal, event_id, code_id, CodePatchIn(enabled=False))

    async def check(self, event_id: str, text: str) -> CodeCheckOut:
        """What `text` unlocks in the event now, or the error a booking with it would get.
        `available` counts, for a reserving code, the seat its hold keeps for this use."""
        now = clock.now()
        event = policy.bookable(await self.events.for_booking(event_id), now)
        code = next((c for c in await self.storage.codes.find(event.id) if c.code == text), None)
        refusal = claiming.code_refusal(dataclasses.asdict(code) if code else None, now)
        # code_refusal's last reason is "used up": a code that got past the others is usable
        # unless it is.
        if code is None or refusal.reason != "code_used_up" or code.uses >= code.max_uses:
            raise policy.claim_error(refusal)
        counts, _ = await self.events.availability(event.id)
        available = {c.code: c.available for c in counts}
        held = 1 if code.holding else 0
        tiers = [
            CodeTierOut(
                code=t.code,
                name=t.name,
                price_cents=t.price_cents,
                unit_price_cents=claiming.discounted(t.price_cents, code.discount_percent),
                capacity=t.capacity,
                available=available.get(t.code, 0) + held,
                hidden=t.hidden,
                waitlist_open=t.waitlist_open,
            )
            for t in event.tiers
            if t.code in code.tiers
        ]
        return CodeCheckOut(
            code=code.code,
            discount_percent=code.discount_percent,
            valid_until=code.valid_until,
            tiers=tiers,
        )
