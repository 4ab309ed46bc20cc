"""Users, partners and refresh tokens on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from core.storage.errors import Missing
from core.storage.port import SpendOutcome
from core.storage.records import Partner, RefreshToken, Role, User, as_fields, from_fields
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first


class SQLUsers(SQLBase):
    async def create(self, user: User) -> User:
        await self.tx(lambda c: c.execute(insert(t.users).values(**as_fields(user))))
        return user

    async def get(self, user_id: str) -> User | None:
        row = await self.first(select(t.users).where(t.users.c.id == user_id))
        return from_fields(User, row._mapping) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = await self.first(select(t.users).where(t.users.c.email == email.lower()))
        return from_fields(User, row._mapping) if row else None

    async def set_role(self, user_id: str, role: Role, now: datetime) -> User:
        return await self._change(user_id, now, role=role)

    async def bump_token_version(self, user_id: str, now: datetime) -> User:
        return await self._change(user_id, now)

    async def set_password(self, user_id: str, password_hash: str, now: datetime) -> User:
        row = await self.tx(lambda c: password_set(c, user_id, password_hash, now))
        if row is None:
            raise Missing()
        return from_fields(User, row._mapping)

    async def _change(self, user_id: str, now: datetime, **values: Any) -> User:
        stmt = bumped(user_id, now, **values)
        row = await self.tx(lambda c: first(c, stmt))
        if row is None:
            raise Missing()
        return from_fields(User, row._mapping)


def bumped(user_id: str, now: datetime, **values: Any) -> Any:
    """The statement that changes an account and moves its token version on."""
    u = t.users
    return (
        update(u)
        .where(u.c.id == user_id)
        .values(**values, token_version=u.c.token_version + 1, updated_at=now)
        .returning(*u.c)
    )


async def password_set(
    conn: Any, user_id: str, password_hash: str, now: datetime
) -> Row[Any] | None:
    """Within a transaction: the new password, every session ended (token version, refresh
    tokens); the account's row after, or None if there is no such account."""
    row = await first(conn, bumped(user_id, now, password_hash=password_hash))
    if row is not None:
        rt = t.refresh_tokens
        await conn.execute(update(rt).where(rt.c.user_id == user_id).values(revoked=True))
    return row


class SQLPartners(SQLBase):
    async def create(self, partner: Partner) -> Partner:
        await self.tx(lambda c: c.execute(insert(t.partners).values(**as_fields(partner))))
        return partner

    async def get(self, partner_id: str) -> Partner | None:
        row = await self.first(select(t.partners).where(t.partners.c.id == partner_id))
        return from_fields(Partner, row._mapping) if row else None

    async def get_by_client_id(self, client_id: str) -> Partner | None:
        row = await self.first(select(t.partners).where(t.partners.c.client_id == client_id))
        return from_fields(Partner, row._mapping) if row else None

    async def find(self, *, after_id: str | None, limit: int) -> list[Partner]:
        p = t.partners
        stmt = select(p).order_by(p.c.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(p.c.id > after_id)
        return [from_fields(Partner, r._mapping) for r in await self.rows(stmt)]

    async def set_secret(self, partner_id: str, secret_hash: str) -> Partner:
        p = t.partners
        stmt = (
            update(p)
            .where(p.c.id == partner_id)
            .values(secret_hash=secret_hash, token_version=p.c.token_version + 1)
            .returning(*p.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        if row is None:
            raise Missing()
        return from_fields(Partner, row._mapping)


class SQLTokens(SQLBase):
    async def add(self, token: RefreshToken) -> None:
        stmt = insert(t.refresh_tokens).values(**as_fields(token), revoked=False)
        await self.tx(lambda c: c.execute(stmt))

    async def spend(self, jti: str, now: datetime) -> SpendOutcome:
        rt = t.refresh_tokens
        stmt = (
            update(rt)
            .where(rt.c.jti == jti, rt.c.spent_at.is_(None), rt.c.revoked.is_(False))
            .values(spent_at=now)
            .returning(rt.c.jti)
        )
        if await self.tx(lambda c: first(c, stmt)):
            return "ok"
        row = await self.first(select(rt.c.spent_at).where(rt.c.jti == jti))
        if row is None:
            return "unknown"
        return "revoked" if row.spent_at is None else "spent"

    async def revoke_family(self, family_id: str) -> None:
        rt = t.refresh_tokens
        stmt = update(rt).where(rt.c.family_id == family_id).values(revoked=True)
        await self.tx(lambda c: c.execute(stmt))
