"""Webhook endpoints and their deliveries on SQL: claims are one guarded statement
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's single writer makes it atomic anyway)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from core.storage.attempts import delivery_settled
from core.storage.errors import InvalidTransition, Missing
from core.storage.records import Attempt, Delivery, Webhook, as_fields, from_fields
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first


def webhook_of(row: Row[Any]) -> Webhook:
    return from_fields(Webhook, row._mapping, events=tuple(row._mapping["events"]))


def delivery_of(row: Row[Any]) -> Delivery:
    return from_fields(Delivery, row._mapping)


class SQLWebhooks(SQLBase):
    async def create(self, webhook: Webhook) -> Webhook:
        values = as_fields(webhook) | {"events": list(webhook.events)}
        await self.tx(lambda c: c.execute(insert(t.webhooks).values(**values)))
        return webhook

    async def get(self, webhook_id: str) -> Webhook | None:
        row = await self.first(select(t.webhooks).where(t.webhooks.c.id == webhook_id))
        return webhook_of(row) if row else None

    async def find(
        self, *, owner_id: str | None, after_id: str | None, limit: int
    ) -> list[Webhook]:
        w = t.webhooks
        stmt = select(w).order_by(w.c.id).limit(limit)
        if owner_id is not None:
            stmt = stmt.where(w.c.owner_id == owner_id)
        if after_id is not None:
            stmt = stmt.where(w.c.id > after_id)
        return [webhook_of(r) for r in await self.rows(stmt)]

    async def enabled(self) -> list[Webhook]:
        w = t.webhooks
        return [webhook_of(r) for r in await self.rows(select(w).where(w.c.enabled.is_(True)))]

    async def update(self, webhook_id: str, fields: dict[str, Any], now: datetime) -> Webhook:
        w = t.webhooks
        values = dict(fields, updated_at=now)
        if "events" in values:
            values["events"] = list(values["events"])
        stmt = update(w).where(w.c.id == webhook_id).values(**values).returning(*w.c)
        row = await self.tx(lambda c: first(c, stmt))
        if row is None:
            raise Missing()
        return webhook_of(row)

    async def delete(self, webhook_id: str) -> None:
        w, d = t.webhooks, t.webhook_deliveries

        async def work(conn: Any) -> int:
            await conn.execute(delete(d).where(d.c.webhook_id == webhook_id))
            return int((await conn.execute(delete(w).where(w.c.id == webhook_id))).rowcount)

        if not await self.tx(work):
            raise Missing()

    async def note_outcome(self, webhook_id: str, ok: bool, now: datetime) -> Webhook | None:
        w = t.webhooks
        stmt = (
            update(w)
            .where(w.c.id == webhook_id)
            .values(failing_since=None if ok else func.coalesce(w.c.failing_since, now))
            .returning(*w.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        return webhook_of(row) if row else None

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        d = t.webhook_deliveries
        stmt = (
            self.upsert(d)
            .values([as_fields(x) for x in deliveries])
            .on_conflict_do_nothing(index_elements=[d.c.webhook_id, d.c.change_id])
        )
        return int((await self.tx(lambda c: c.execute(stmt))).rowcount)

    async def claim(
        self,
        now: datetime,
        holder: str,
        until: datetime,
        limit: int,
        delivery_id: str | None = None,
    ) -> list[Delivery]:
        d = t.webhook_deliveries
        earlier = aliased(d)
        due = (
            select(d.c.id)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until < now),
                ~exists().where(
                    earlier.c.webhook_id == d.c.webhook_id,
                    earlier.c.subject_id == d.c.subject_id,
                    earlier.c.status == "pending",
                    earlier.c.seq < d.c.seq,
                ),
            )
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if delivery_id is not None:
            due = due.where(d.c.id == delivery_id)
        stmt = (
            update(d)
            .where(d.c.id.in_(due.scalar_subquery()))
            .values(lease_holder=holder, lease_until=until)
            .returning(*d.c)
        )
        rows = await self.tx(lambda c: c.execute(stmt))
        return sorted((delivery_of(r) for r in rows.all()), key=lambda x: x.next_attempt_at)

    async def settle(self, delivery_id: str, holder: str, attempt: Attempt) -> Delivery | None:
        d = t.webhook_deliveries
        stmt = (
            update(d)
            .where(d.c.id == delivery_id, d.c.lease_holder == holder)
            .values(**delivery_settled(attempt), attempts=d.c.attempts + 1)
            .returning(*d.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        return delivery_of(row) if row else None

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        d = t.webhook_deliveries
        row = await self.first(select(d).where(d.c.id == delivery_id))
        return delivery_of(row) if row else None

    async def deliveries(
        self, webhook_id: str, *, before_id: str | None, limit: int
    ) -> list[Delivery]:
        d = t.webhook_deliveries
        stmt = select(d).where(d.c.webhook_id == webhook_id).order_by(d.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(d.c.id < before_id)
        return [delivery_of(r) for r in await self.rows(stmt)]

    async def retry(
        self, webhook_id: str, delivery_id: str, now: datetime, retry_until: datetime
    ) -> Delivery:
        d = t.webhook_deliveries
        mine = and_(d.c.id == delivery_id, d.c.webhook_id == webhook_id)
        stmt = (
            update(d)
            .where(mine, d.c.status != "pending")
            .values(status="pending", next_attempt_at=now, retry_until=retry_until)
            .returning(*d.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        if row is not None:
            return delivery_of(row)
        if await self.first(select(d.c.id).where(mine)) is None:
            raise Missing()
        raise InvalidTransition("pending")
