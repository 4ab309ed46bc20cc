"""Webhooks: endpoints owned by partners, organizers and admins, their secrets and deliveries.

Only the owner (or an admin) sees or changes a webhook; to anyone else it does not exist
(404). A URL is checked against SSRF rules whenever it is set (`urls.py`).
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta

from core import clock
from core.deps import AppContext
from core.errors import Conflict, Forbidden, NotFound
from core.policy import admin_or_owner, listed_owner
from core.security import Principal
from core.storage.errors import InvalidTransition, Missing
from core.storage.records import Delivery, Webhook, new_id
from modules.webhooks.dispatcher import Dispatcher
from modules.webhooks.schemas import WebhookCreate, WebhookPatch
from modules.webhooks.urls import resolve

OWNER_ROLES = ("partner", "organizer", "admin")
MAX_PER_OWNER = 20
"""Each webhook multiplies the outbound requests every change causes: a bound per owner."""
TEST_TYPE = "webhook.test"


class WebhookNotFound(NotFound):
    code, message = "WEBHOOK_NOT_FOUND", "Webhook not found"


class DeliveryNotFound(NotFound):
    code, message = "DELIVERY_NOT_FOUND", "Delivery not found"


class DeliveryPending(Conflict):
    code, message = "DELIVERY_PENDING", "The delivery is still being attempted"


class WebhookDisabled(Conflict):
    code, message = "WEBHOOK_DISABLED", "The webhook is disabled: enable it first (PATCH)"


class TooManyWebhooks(Conflict):
    code = "WEBHOOK_LIMIT_REACHED"
    message = f"An account may have at most {MAX_PER_OWNER} webhooks: delete one first"


class WebhooksNotAllowed(Forbidden):
    code = "WEBHOOKS_NOT_ALLOWED"
    message = "Webhooks are for partners, organizers and admins"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.settings = ctx.settings

    async def _checked_url(self, url: str) -> str:
        await resolve(url, allow_private=self.settings.webhook_allow_private)
        return url

    async def create(self, principal: Principal, body: WebhookCreate) -> Webhook:
        if principal.role not in OWNER_ROLES:
            raise WebhooksNotAllowed()
        owned = await self.storage.webhooks.find(
            owner_id=principal.id, after_id=None, limit=MAX_PER_OWNER
        )
        if len(owned) >= MAX_PER_OWNER:
            raise TooManyWebhooks()
        now = clock.now()
        webhook = Webhook(
            id=new_id(),
            owner_id=principal.id,
            owner_role=principal.role,
            url=await self._checked_url(body.url),
            events=tuple(body.events),
            secret=new_secret(),
            description=body.description,
            created_at=now,
            updated_at=now,
        )
        return await self.storage.webhooks.create(webhook)

    async def owned(self, principal: Principal, webhook_id: str) -> Webhook:
        webhook = await self.storage.webhooks.get(webhook_id)
        if webhook is None or not admin_or_owner(principal, webhook.owner_id):
            raise WebhookNotFound()
        return webhook

    async def find(self, principal: Principal, after_id: str | None, limit: int) -> list[Webhook]:
        """The caller's webhooks (an admin's: everyone's), oldest first."""
        return await self.storage.webhooks.find(
            owner_id=listed_owner(principal), after_id=after_id, limit=limit
        )

    async def update(self, principal: Principal, webhook_id: str, patch: WebhookPatch) -> Webhook:
        await self.owned(principal, webhook_id)
        fields = patch.model_dump(exclude_unset=True, exclude_none=True)
        if "url" in fields:
            fields["url"] = await self._checked_url(fields["url"])
        if "events" in fields:
            fields["events"] = tuple(fields["events"])
        if fields.get("enabled") is True:
            fields |= {"disabled_reason": None, "failing_since": None}
        elif fields.get("enabled") is False:
            fields["disabled_reason"] = "disabled by its owner"
        return await self._update(webhook_id, fields)

    async def _update(self, webhook_id: str, fields: dict[str, object]) -> Webhook:
        try:
            return await self.storage.webhooks.update(webhook_id, fields, clock.now())
        except Missing:
            raise WebhookNotFound() from None

    async def delete(self, principal: Principal, webhook_id: str) -> None:
        await self.owned(principal, webhook_id)
        try:
            await self.storage.webhooks.delete(webhook_id)
        except Missing:
            raise WebhookNotFound() from None

    async def rotate_secret(self, principal: Principal, webhook_id: str) -> Webhook:
        """A new secret signs every attempt from now on (retries of older deliveries too)."""
        await self.owned(principal, webhook_id)
        return await self._update(webhook_id, {"secret": new_secret()})

    async def send_test(self, principal: Principal, webhook_id: str) -> Delivery:
        """A `webhook.test` delivery, sent at once; retried like any other if it fails."""
        webhook = await self.owned(principal, webhook_id)
        if not webhook.enabled:
            raise WebhookDisabled()
        now = clock.now()
        delivery = Delivery(
            id=f"msg_{new_id()}",
            webhook_id=webhook.id,
            change_id=f"test_{new_id()}",
            type=TEST_TYPE,
            subject_id=f"test:{webhook.id}:{new_id()}",
            seq=0,
            payload={
                "type": TEST_TYPE,
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {"webhookId": webhook.id, "message": "A test delivery from TicketBoss"},
            },
            created_at=now,
            next_attempt_at=now,
            retry_until=now + timedelta(seconds=self.settings.webhook_retry_window_seconds),
        )
        await self.storage.webhooks.enqueue([delivery])
        dispatcher = Dispatcher(self.storage, self.settings)
        try:
            sent = await dispatcher.deliver_now(delivery.id)
        finally:
            await dispatcher.close()
        return sent or delivery

    async def deliveries(
        self, principal: Principal, webhook_id: str, before_id: str | None, limit: int
    ) -> list[Delivery]:
        await self.owned(principal, webhook_id)
        return await self.storage.webhooks.deliveries(webhook_id, before_id=before_id, limit=limit)

    async def retry(self, principal: Principal, webhook_id: str, delivery_id: str) -> Delivery:
        """A succeeded or failed delivery is sent again (same `webhook-id`), with a new window."""
        webhook = await self.owned(principal, webhook_id)
        if not webhook.enabled:
            raise WebhookDisabled()
        now = clock.now()
        until = now + timedelta(seconds=self.settings.webhook_retry_window_seconds)
        try:
            return await self.storage.webhooks.retry(webhook_id, delivery_id, now, until)
        except Missing:
            raise DeliveryNotFound() from None
        except InvalidTransition:
            raise DeliveryPending() from None
