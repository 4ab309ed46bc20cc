"""Fan-out: each relayed change record becomes one delivery per webhook that wants it and
whose owner may see it.

This is a consumer of the change-log relay (`core.outbox`), which hands over every change
at least once; a delivery is unique per (webhook, change), so a batch handed over twice
creates nothing the second time.

Who may see a change is decided by the owner's role now, not when the webhook was made: a
partner its own bookings and orders; an organizer its events and their bookings and orders;
an admin everything. An owner who is no longer any of these (a demoted organizer, a deleted
account) receives nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta

from core import clock
from core.config import Settings
from core.deps import AppContext
from core.storage.port import Storage
from core.storage.records import Change, Delivery, Role, Webhook, new_id
from modules.activity.schemas import ChangeOut


def payload_of(change: Change) -> dict[str, object]:
    """The body receivers get: `{type, timestamp, data}`, data as the activity log shows it."""
    return {
        "type": change.type,
        "timestamp": change.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": ChangeOut.of(change).model_dump(mode="json", by_alias=True),
    }


def may_see(role: Role | None, owner_id: str, change: Change, event_owner: str | None) -> bool:
    if role == "admin":
        return True
    if role == "partner":
        return change.subject in ("booking", "order") and change.partner_id == owner_id
    if role == "organizer":
        return event_owner == owner_id
    return False


class FanOut:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.window = timedelta(seconds=settings.webhook_retry_window_seconds)

    async def __call__(self, changes: Sequence[Change]) -> None:
        webhooks = await self.storage.webhooks.enabled()
        if not webhooks:
            return
        roles = {w.owner_id: await self._role_of(w) for w in webhooks}
        owners: dict[str, str | None] = {}
        if "organizer" in roles.values():  # only organizers' scope needs the events' owners
            for change in changes:
                if change.event_id not in owners:
                    owners[change.event_id] = await self._event_owner(change)
        deliveries: list[Delivery] = []
        for change in changes:
            readers = [
                w
                for w in webhooks
                if w.wants(change.type)
                and may_see(roles[w.owner_id], w.owner_id, change, owners.get(change.event_id))
            ]
            if readers:
                payload = payload_of(change)
                deliveries += [self.delivery(w, change, payload) for w in readers]
        for start in range(0, len(deliveries), 500):
            await self.storage.webhooks.enqueue(deliveries[start : start + 500])

    def delivery(self, webhook: Webhook, change: Change, payload: dict[str, object]) -> Delivery:
        created = clock.now()
        return Delivery(
            id=f"msg_{new_id()}",
            webhook_id=webhook.id,
            change_id=change.id,
            type=change.type,
            subject_id=change.subject_id,
            seq=change.seq,
            payload=payload,
            created_at=created,
            next_attempt_at=created,
            retry_until=created + self.window,
        )

    async def _role_of(self, webhook: Webhook) -> Role | None:
        if webhook.owner_role == "partner":
            partner = await self.storage.partners.get(webhook.owner_id)
            return "partner" if partner is not None else None
        user = await self.storage.users.get(webhook.owner_id)
        return user.role if user is not None else None

    async def _event_owner(self, change: Change) -> str | None:
        if change.subject == "event":
            owner = change.data.get("owner_id")
            if isinstance(owner, str):
                return owner
        event = await self.storage.events.get(change.event_id, include_deleted=True)
        return event.owner_id if event is not None else None


async def start_fan_out(ctx: AppContext) -> None:
    """Start-up hook: every relayed change is fanned out to the webhooks that may see it."""
    ctx.outbox.subscribe(FanOut(ctx.storage, ctx.settings))
