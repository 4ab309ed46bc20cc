"""Orders: several tiers of one event booked together, all or nothing, confirmed, cancelled
and expiring as one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.deps import AppContext
from core.errors import Conflict, NotFound
from core.idempotency import IdempotencyKeyReused
from core.security import Principal
from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    ItemsShort,
    Missing,
    NotOnSale,
    NotPending,
    Refused,
)
from core.storage.records import Event, Order, utcnow
from core.storage.requests import OrderItem, OrderQuery, OrderRequest
from modules.bookings.service import (
    STARTED_CONFIRM,
    EventNotBookable,
    EventStarted,
    HoldLimitExceeded,
    InsufficientTickets,
    PerUserLimitExceeded,
    refusal_error,
)
from modules.events.service import EventNotFound, EventService


class OrderNotFound(NotFound):
    code, message = "ORDER_NOT_FOUND", "Order not found"


class OrderExpired(Conflict):
    code, message = "ORDER_EXPIRED", "The order's hold expired; its seats were released"


class OrderNotPending(Conflict):
    code = "ORDER_NOT_PENDING"


class OrderNotCancellable(Conflict):
    code = "ORDER_NOT_CANCELLABLE"


@dataclass(frozen=True, slots=True)
class OrderPlacement:
    event_id: str
    items: tuple[tuple[str, int], ...]
    hold: bool = False
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    replayed: bool


class OrderService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)
        self.hold_ttl = timedelta(seconds=ctx.settings.hold_ttl_seconds)
        self.max_pending = ctx.settings.max_pending_per_user

    async def place(self, principal: Principal, placement: OrderPlacement) -> Placed:
        """Book every item or none. The event's per-customer limit and the hold cap count the
        order's seats together (partners are held to neither, as for single bookings)."""
        now = utcnow()
        event = await self.events.for_booking(placement.event_id)
        if event is None or event.status == "draft":
            raise EventNotFound()
        if event.status != "published" or event.starts_at <= now:
            raise EventNotBookable()
        consumer = not principal.is_partner
        request = OrderRequest(
            event_id=event.id,
            items=tuple(OrderItem(tier, quantity) for tier, quantity in placement.items),
            owner_id=principal.id,
            now=now,
            hold_until=now + self.hold_ttl if placement.hold else None,
            max_per_user=event.max_per_user if consumer else None,
            max_pending=self.max_pending if consumer else None,
            partner_id=principal.id if principal.is_partner else None,
            external_ref=placement.external_ref,
            idempotency_key=placement.idempotency_key,
            request_hash=placement.request_hash,
            actor=principal.actor,
        )
        try:
            made = await self.storage.orders.reserve(request)
        except Refused as refused:
            raise _refusal(refused, event, placement) from None
        if made.replayed and made.order.request_hash != placement.request_hash:
            raise IdempotencyKeyReused()
        if not made.replayed:
            await self.events.invalidate(event.id)
        return Placed(made.order, made.replayed)

    async def confirm(self, principal: Principal, order_id: str) -> Order:
        current = await self.get(principal, order_id)
        if current.owner_id != principal.id:
            raise OrderNotFound()  # an admin sees it, but only its buyer can confirm it
        try:
            order = await self.storage.orders.confirm(
                order_id, principal.id, utcnow(), principal.actor
            )
        except Missing:
            raise OrderNotFound() from None
        except BookingExpired:
            raise OrderExpired() from None
        except NotPending as exc:
            raise OrderNotPending(f"The order is {exc.current}, not pending") from None
        except NotOnSale:
            raise EventNotBookable(STARTED_CONFIRM) from None
        await self.events.invalidate(order.event_id)
        return order

    async def cancel(self, principal: Principal, order_id: str) -> Order:
        """Cancel an order: its buyer until the event starts; the event's organizer or an
        admin at any time."""
        order = await self.storage.orders.get(order_id)
        if order is None:
            raise OrderNotFound()
        event = await self.storage.events.get(order.event_id, include_deleted=True)
        staff = principal.role == "admin" or (
            principal.role == "organizer" and event is not None and event.owner_id == principal.id
        )
        if not staff:
            if order.owner_id != principal.id:
                raise OrderNotFound()
            if event is not None and event.starts_at <= utcnow():
                raise EventStarted()
        try:
            cancelled = await self.storage.orders.cancel(
                order_id, None if staff else principal.id, utcnow(), principal.actor
            )
        except Missing:
            raise OrderNotFound() from None
        except NotPending as exc:
            raise OrderNotCancellable(
                f"An order that is {exc.current} cannot be cancelled"
            ) from None
        await self.events.invalidate(cancelled.event_id)
        return cancelled

    async def get(self, principal: Principal, order_id: str) -> Order:
        order = await self.storage.orders.get(order_id)
        if order is None or (principal.role != "admin" and order.owner_id != principal.id):
            raise OrderNotFound()
        return order

    async def find(
        self, principal: Principal, query: OrderQuery, user_id: str | None
    ) -> list[Order]:
        owner = user_id if principal.role == "admin" else principal.id
        return await self.storage.orders.find(
            OrderQuery(
                owner_id=owner,
                event_id=query.event_id,
                status=query.status,
                before_id=query.before_id,
                limit=query.limit,
            )
        )


def _refusal(refused: Refused, event: Event, placement: OrderPlacement) -> Conflict | NotFound:
    if isinstance(refused, ItemsShort):
        position = {tier: i for i, (tier, _) in enumerate(placement.items)}
        return InsufficientTickets(
            "Not enough tickets left in " + ", ".join(tier for tier, _, _ in refused.short),
            errors=[
                {
                    "field": f"items.{position[tier]}.quantity",
                    "message": f"only {available} left in tier {tier}",
                }
                for tier, _, available in refused.short
            ],
            extra={
                "tiers": [
                    {"tier": tier, "requested": requested, "available": available}
                    for tier, requested, available in refused.short
                ]
            },
        )
    if isinstance(refused, BuyerLimit):
        if refused.limit == "max_per_user":
            return PerUserLimitExceeded(extra={"maxPerUser": event.max_per_user})
        return HoldLimitExceeded()
    return refusal_error(refused, event, placement.items[0][0])
