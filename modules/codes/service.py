"""Access codes: the organizer creates, lists, edits and disables them; a booking redeems one
(its use counted by storage in the booking's atomic step)."""

from __future__ import annotations

from datetime import UTC

from core import clock
from core.deps import AppContext
from core.errors import Conflict, NotFound, ValidationFailed
from core.policy import InsufficientTickets
from core.security import Principal
from core.storage.errors import CapacityBelowActive, DuplicateKey, Missing, NoSuchTier
from core.storage.records import AccessCode, new_id
from core.storage.requests import CodePatch
from modules.codes.schemas import CodeCreate, CodePatchIn
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
