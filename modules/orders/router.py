from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from core import clock
from core.deps import CurrentPrincipal, app_context
from core.idempotency import REPLAYED_HEADER, idempotent
from core.pagination import Cursor, decode_cursor, encode_cursor
from core.policy import AdmissionToken
from core.routing import ApiRoute, Guard
from core.schemas import Envelope, ok
from core.storage.records import BookingStatus, Order
from core.storage.requests import OrderQuery
from modules.orders.schemas import OrderCreate, OrderOut
from modules.orders.service import OrderPlacement, OrderService

router = APIRouter(prefix="/orders", tags=["orders"], route_class=ApiRoute)


async def order_service(request: Request) -> OrderService:
    return OrderService(app_context(request))


Orders = Annotated[OrderService, Depends(order_service)]


def _order_response(
    order: Order, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return ok(OrderOut.of(order, clock.now()), status=status, headers=headers)


@router.post(
    "", status_code=201, response_model=Envelope[OrderOut], openapi_extra=idempotent(required=True)
)
async def place_order(
    body: OrderCreate,
    principal: CurrentPrincipal,
    orders: Orders,
    guard: Guard,
    admission_token: AdmissionToken = None,
) -> Response:
    """Book several tiers of one event at once: every item or none (409 INSUFFICIENT_TICKETS
    names the short tiers). `hold: true` holds them all until the order is confirmed."""
    placed = await orders.place(
        principal,
        OrderPlacement(
            event_id=body.event_id,
            items=tuple((item.tier, item.quantity) for item in body.items),
            hold=body.hold,
            external_ref=body.external_ref,
            idempotency_key=guard.key,
            request_hash=guard.fingerprint,
            admission_token=admission_token,
        ),
    )
    headers = {"Location": f"/api/v1/orders/{placed.order.id}"}
    if placed.replayed:
        headers[REPLAYED_HEADER] = "true"
    return _order_response(placed.order, status=201, headers=headers)


@router.get("", response_model=Envelope[list[OrderOut]])
async def list_orders(
    principal: CurrentPrincipal,
    orders: Orders,
    status: BookingStatus | None = None,
    event_id: Annotated[str | None, Query(alias="eventId", max_length=64)] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    query = OrderQuery(
        event_id=event_id,
        status=status,
        before_id=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    found = await orders.find(principal, query, user_id)
    next_cursor = encode_cursor(found[-1].id) if len(found) == limit else None
    now = clock.now()
    return ok(
        [OrderOut.of(o, now) for o in found], meta={"limit": limit, "nextCursor": next_cursor}
    )


@router.get("/{order_id}", response_model=Envelope[OrderOut])
async def get_order(order_id: str, principal: CurrentPrincipal, orders: Orders) -> JSONResponse:
    return _order_response(await orders.get(principal, order_id))


@router.post("/{order_id}/confirm", response_model=Envelope[OrderOut], openapi_extra=idempotent())
async def confirm_order(order_id: str, principal: CurrentPrincipal, orders: Orders) -> Response:
    return _order_response(await orders.confirm(principal, order_id))


@router.post("/{order_id}/cancel", response_model=Envelope[OrderOut], openapi_extra=idempotent())
async def cancel_order(order_id: str, principal: CurrentPrincipal, orders: Orders) -> Response:
    return _order_response(await orders.cancel(principal, order_id))
