"""Orders: several tiers' seats in one atomic step, placed the same way on every backend
around the backend's own step (`OrderSteps`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from core.storage import key_claims, refusals, retries
from core.storage.errors import DuplicateKey, ItemsShort, Refused, StorageBusy
from core.storage.records import Order, Ordered, Tier
from core.storage.requests import OrderRequest
from core.storage.reserving import releasing_expired
from core.storage.sale_rows import sale_values


class SeatsShort(Exception):
    """Raised inside an order's atomic step to abort it when one of its tiers lacks seats."""


class OrderSteps(Protocol):
    """What a backend does its own way when an order is placed."""

    async def order_once(self, request: OrderRequest) -> None:
        """Write the order in one atomic step; SeatsShort (nothing written) if a tier lacks
        the seats, DuplicateKey if its key is taken (`order_key`, or `key_claims.FIELD` when
        the caller's Idempotency-Key is claimed)."""

    async def order_by_key(self, owner_id: str, key: str) -> Order | None: ...

    async def key_kind(self, owner_id: str, key: str) -> str | None: ...

    async def tiers_of(self, event_id: str) -> Mapping[str, Tier | None]: ...

    async def get(self, order_id: str) -> Order | None: ...

    async def release_expired_of(self, now: datetime, event_id: str) -> int: ...

    async def started(self, event_id: str, now: datetime) -> bool: ...


async def confirmed(
    steps: OrderSteps, written: object, order_id: str, owner_id: str, now: datetime
) -> Order:
    """The order a confirm wrote (`written`: its step's result, None if it matched nothing),
    read back; else why it changed nothing."""
    if written is not None and (changed := await steps.get(order_id)):
        return changed
    raise await refusals.confirmation_refused(steps.get, steps.started, order_id, owner_id, now)


async def cancelled(
    steps: OrderSteps, written: object, order_id: str, owner_id: str | None
) -> Order:
    """The order a cancel wrote, read back; else why it changed nothing."""
    if written is not None and (changed := await steps.get(order_id)):
        return changed
    raise refusals.not_cancelled(await steps.get(order_id), owner_id)


async def placing_order(steps: OrderSteps, request: OrderRequest) -> Ordered:
    """Place an order: its atomic step retried when a concurrent change got in the way, a
    taken key answered with the order stored under it, a refusal only for its own reason."""

    async def place() -> Ordered:
        for attempt in range(retries.MAX_ATTEMPTS):
            try:
                await steps.order_once(request)
            except DuplicateKey as dup:
                if dup.field not in ("order_key", key_claims.FIELD):
                    raise
                existing = await steps.order_by_key(request.owner_id, request.storage_key)
                if existing is not None:
                    return Ordered(existing, replayed=request.idempotency_key is not None)
                await key_claims.refuse_other_kind(
                    steps.key_kind, request.owner_id, request.idempotency_key, key_claims.ORDER
                )
                # else the other writer of that key rolled back: try again
            except SeatsShort:
                refused = order_refusal(request, await steps.tiers_of(request.event_id))
                if refused is not None:
                    raise refused from None
                # else seats were given back since the step ran: try again
            else:
                made = await steps.get(request.order_id)
                assert made is not None  # committed above
                return Ordered(made)
            await retries.pause(attempt)
        raise StorageBusy("too much contention; try again")

    return await releasing_expired(
        place, lambda: steps.release_expired_of(request.now, request.event_id), request
    )


def order_refusal(request: OrderRequest, tiers: Mapping[str, Tier | None]) -> Refused | None:
    """Why an order that changed nothing was refused, from a fresh read of its tiers; None if
    every item fits now (the order lost a race with a release: try again)."""
    for item in request.items:
        tier = tiers.get(item.tier)
        if tier is None or not tier.on_sale or tier.hidden:
            return refusals.refusal(tier)
    short = [
        (item.tier, item.quantity, max(0, tier.free))
        for item in request.items
        if (tier := tiers[item.tier]) is not None and tier.free < item.quantity
    ]
    return ItemsShort(short) if short else None


def order_values(request: OrderRequest) -> dict[str, Any]:
    return {"id": request.order_id} | sale_values(request)
