"""Email codes on SQL: an attempt is one guarded UPDATE (attempts below the limit), a use one
transaction (the code deleted, the account changed, the old address's mail enqueued)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from core.storage.records import EmailCode, Mail, User, as_fields, from_fields
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first


def code_of(row: Row[Any]) -> EmailCode:
    return from_fields(EmailCode, row._mapping)


class SQLEmailCodes(SQLBase):
    async def issue(self, code: EmailCode, mail: Mail) -> None:
        c = t.email_codes
        fields = as_fields(code)
        replace = (
            self.upsert(c)
            .values(**fields)
            .on_conflict_do_update(index_elements=[c.c.user_id, c.c.purpose], set_=fields)
        )

        async def work(conn: Any) -> None:
            await conn.execute(replace)
            await conn.execute(insert(t.mail).values(**as_fields(mail)))

        await self.tx(work)

    async def attempt(self, email: str, now: datetime, max_attempts: int) -> list[EmailCode]:
        c = t.email_codes
        stmt = (
            update(c)
            .where(c.c.email == email, c.c.attempts < max_attempts, c.c.expires_at > now)
            .values(attempts=c.c.attempts + 1)
            .returning(*c.c)
        )
        rows = await self.tx(lambda conn: conn.execute(stmt))
        return [code_of(r) for r in rows.all()]

    async def find(self, email: str) -> list[EmailCode]:
        c = t.email_codes
        return [code_of(r) for r in await self.rows(select(c).where(c.c.email == email))]

    async def use(self, code: EmailCode, now: datetime, mail: Mail | None) -> User | None:
        c, u = t.email_codes, t.users
        spend = delete(c).where(
            c.c.user_id == code.user_id,
            c.c.purpose == code.purpose,
            c.c.code_hash == code.code_hash,
        )
        account = u.c.id == code.user_id
        apply = (
            update(u)
            .where(account if code.purpose == "change" else account & (u.c.email == code.email))
            .values(email=code.email, email_verified_at=now, updated_at=now)
            .returning(*u.c)
        )

        async def work(conn: Any) -> User | None:
            if not (await conn.execute(spend)).rowcount:
                return None
            row = await first(conn, apply)
            if row is None:
                return None
            if mail is not None:
                await conn.execute(insert(t.mail).values(**as_fields(mail)))
            return from_fields(User, row._mapping)

        return await self.tx(work)
