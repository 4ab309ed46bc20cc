from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from core.deps import CurrentPrincipal, app_context
from core.pagination import Cursor, decode_cursor, encode_cursor
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from modules.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookPatch,
    WebhookWithSecret,
)
from modules.webhooks.service import WebhookService

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=ApiRoute)
Limit = Annotated[int, Query(ge=1, le=100)]


async def webhook_service(request: Request) -> WebhookService:
    return WebhookService(app_context(request))


Webhooks = Annotated[WebhookService, Depends(webhook_service)]


@router.post("", status_code=201, response_model=Envelope[WebhookWithSecret])
async def create_webhook(
    body: WebhookCreate, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    """Receive the changes you may see at `url`, signed with the `secret` returned (once)."""
    webhook = await webhooks.create(principal, body)
    return ok(
        WebhookWithSecret.with_secret(webhook),
        status=201,
        headers={"Location": f"/api/v1/webhooks/{webhook.id}"},
    )


@router.get("", response_model=Envelope[list[WebhookOut]])
async def list_webhooks(
    principal: CurrentPrincipal, webhooks: Webhooks, limit: Limit = 20, cursor: Cursor = None
) -> JSONResponse:
    """Your webhooks, oldest first (an admin's: everyone's). Secrets are never listed."""
    found = await webhooks.find(principal, decode_cursor(cursor) if cursor else None, limit)
    next_cursor = encode_cursor(found[-1].id) if len(found) == limit else None
    return ok([WebhookOut.of(w) for w in found], meta={"limit": limit, "nextCursor": next_cursor})


@router.get("/{webhook_id}", response_model=Envelope[WebhookOut])
async def get_webhook(
    webhook_id: str, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    return ok(WebhookOut.of(await webhooks.owned(principal, webhook_id)))


@router.patch("/{webhook_id}", response_model=Envelope[WebhookOut])
async def update_webhook(
    webhook_id: str, body: WebhookPatch, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    """Change the URL or the event types; `enabled: true` re-enables a disabled webhook."""
    return ok(WebhookOut.of(await webhooks.update(principal, webhook_id, body)))


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: str, principal: CurrentPrincipal, webhooks: Webhooks
) -> Response:
    """The webhook and its deliveries (pending ones are not sent)."""
    await webhooks.delete(principal, webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", response_model=Envelope[WebhookWithSecret])
async def rotate_secret(
    webhook_id: str, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    """A new signing secret, shown once; the old one signs nothing from now on."""
    return ok(WebhookWithSecret.with_secret(await webhooks.rotate_secret(principal, webhook_id)))


@router.post("/{webhook_id}/test", response_model=Envelope[DeliveryOut])
async def test_webhook(
    webhook_id: str, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    """Send a `webhook.test` delivery now; the answer says how the receiver answered."""
    return ok(DeliveryOut.of(await webhooks.send_test(principal, webhook_id)))


@router.get("/{webhook_id}/deliveries", response_model=Envelope[list[DeliveryOut]])
async def list_deliveries(
    webhook_id: str,
    principal: CurrentPrincipal,
    webhooks: Webhooks,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    """Newest first: attempts, the last status code, latency and error, the next retry."""
    before = decode_cursor(cursor) if cursor else None
    found = await webhooks.deliveries(principal, webhook_id, before, limit)
    next_cursor = encode_cursor(found[-1].id) if len(found) == limit else None
    return ok([DeliveryOut.of(d) for d in found], meta={"limit": limit, "nextCursor": next_cursor})


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", response_model=Envelope[DeliveryOut])
async def retry_delivery(
    webhook_id: str, delivery_id: str, principal: CurrentPrincipal, webhooks: Webhooks
) -> JSONResponse:
    """Send a finished (failed or succeeded) delivery again, with the same `webhook-id`."""
    return ok(DeliveryOut.of(await webhooks.retry(principal, webhook_id, delivery_id)))
