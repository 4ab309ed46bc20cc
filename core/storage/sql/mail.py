"""The mail outbox and password-reset tokens on SQL: a claim is one guarded statement (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite's single writer makes it atomic anyway)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update

from core.storage.attempts import mail_settled
from core.storage.port import SpendOutcome
from core.storage.records import Attempt, Mail, ResetToken, User, as_fields, from_fields
from core.storage.sql import schema as t
from core.storage.sql.accounts import password_set
from core.storage.sql.base import SQLBase, first


def mail_of(row: Row[Any]) -> Mail:
    return from_fields(Mail, row._mapping)


class SQLMail(SQLBase):
    async def enqueue(self, mails: Sequence[Mail]) -> int:
        if not mails:
            return 0
        m = t.mail
        stmt = (
            self.upsert(m)
            .values([as_fields(x) for x in mails])
            .on_conflict_do_nothing(index_elements=[m.c.id])
        )
        return int((await self.tx(lambda c: c.execute(stmt))).rowcount)

    async def claim(self, now: datetime, holder: str, until: datetime, limit: int) -> list[Mail]:
        m = t.mail
        due = (
            select(m.c.id)
            .where(
                m.c.status == "pending",
                m.c.next_attempt_at <= now,
                or_(m.c.lease_until.is_(None), m.c.lease_until < now),
            )
            .order_by(m.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(m)
            .where(m.c.id.in_(due.scalar_subquery()))
            .values(lease_holder=holder, lease_until=until)
            .returning(*m.c)
        )
        rows = await self.tx(lambda c: c.execute(stmt))
        return sorted((mail_of(r) for r in rows.all()), key=lambda x: x.next_attempt_at)

    async def settle(self, mail_id: str, holder: str, attempt: Attempt) -> Mail | None:
        m = t.mail
        stmt = (
            update(m)
            .where(m.c.id == mail_id, m.c.lease_holder == holder)
            .values(**mail_settled(attempt), attempts=m.c.attempts + 1)
            .returning(*m.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        return mail_of(row) if row else None

    async def get(self, mail_id: str) -> Mail | None:
        row = await self.first(select(t.mail).where(t.mail.c.id == mail_id))
        return mail_of(row) if row else None

    async def find(self, *, status: str | None, before_id: str | None, limit: int) -> list[Mail]:
        m = t.mail
        stmt = select(m).order_by(m.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(m.c.status == status)
        if before_id is not None:
            stmt = stmt.where(m.c.id < before_id)
        return [mail_of(r) for r in await self.rows(stmt)]


class SQLResets(SQLBase):
    async def issue(self, token: ResetToken, mail: Mail) -> None:
        r = t.password_resets
        fields = as_fields(token)
        replace = (
            self.upsert(r)
            .values(**fields)
            .on_conflict_do_update(index_elements=[r.c.user_id], set_=fields)
        )

        async def work(conn: Any) -> None:
            await conn.execute(replace)
            await conn.execute(insert(t.mail).values(**as_fields(mail)))

        await self.tx(work)

    async def reset(
        self, token_hash: str, password_hash: str, now: datetime
    ) -> tuple[SpendOutcome, User | None]:
        r = t.password_resets
        spend = delete(r).where(r.c.token_hash == token_hash).returning(r.c.user_id, r.c.expires_at)

        async def work(conn: Any) -> tuple[SpendOutcome, User | None]:
            row = await first(conn, spend)
            if row is None:
                return "unknown", None
            if row.expires_at <= now:
                return "spent", None
            user = await password_set(conn, row.user_id, password_hash, now)
            return ("ok", from_fields(User, user._mapping)) if user else ("unknown", None)

        return await self.tx(work)
