"""Orders: several tiers of one event booked together, all or nothing, confirmed, cancelled
and expiring as one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core import clock, policy
from core.deps import AppContext
from core.errors import AppError, Conflict, NotFound
from core.idempotency import IdempotencyKeyReused
from core.policy import STARTED_CONFIRM, EventNotBookable
from core.security import Principal
from core.storage.errors import (
    BookingExpired,
    ItemsShort,
    KeyClaimed,
    Missing,
    NotOnSale,
    NotPending,
    Refused,
)
from core.storage.records import Event, Order
from core.storage.requests import OrderItem, OrderQuery, OrderRequest
from modules.events.service import EventService


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
    admission_token: str | None = None


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
        now = clock.now()
        event = await self.events.open_sale(
            principal, placement.event_id, placement.admission_token, now
        )
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
        except KeyClaimed:
            raise IdempotencyKeyReused() from None  # the key made a booking
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
                order_id, principal.id, clock.now(), principal.actor
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
        owner = policy.cancel_scope(principal, order.owner_id, event, clock.now(), OrderNotFound)
        try:
            cancelled = await self.storage.orders.cancel(
                order_id, owner, clock.now(), principal.actor
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
        if order is None or not policy.admin_or_owner(principal, order.owner_id):
            raise OrderNotFound()
        return order

    async def find(
        self, principal: Principal, query: OrderQuery, user_id: str | None
    ) -> list[Order]:
        return await self.storage.orders.find(
            OrderQuery(
                owner_id=policy.listed_owner(principal, user_id),
                event_id=query.event_id,
                status=query.status,
                before_id=query.before_id,
                limit=query.limit,
            )
        )


def _refusal(refused: Refused, event: Event, placement: OrderPlacement) -> AppError:
    tiers = [tier for tier, _ in placement.items]
    if isinstance(refused, ItemsShort):
        return policy.order_shortage(refused, tiers)
    return policy.refusal_error(refused, event, tiers[0])
