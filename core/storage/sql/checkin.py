"""Check-in on SQL: a redemption is one `INSERT … ON CONFLICT DO NOTHING` on its unique key,
in the transaction that records the scan's answer, so concurrent scanners of one ticket
cannot both be the one that let it in (no read-then-write decides it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage.errors import Missing
from core.storage.records import (
    CheckinList,
    DoorCount,
    Scan,
    ScanAnswer,
    Scanner,
    ScanResult,
    SigningKey,
    as_fields,
    from_fields,
)
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first


class _AnsweredMeanwhile(Exception):
    """Another scan with the same nonce recorded its answer first: roll this one back."""


def list_of(row: Row[Any]) -> CheckinList:
    return from_fields(CheckinList, row._mapping, tiers=tuple(row.tiers))


def scanner_of(row: Row[Any]) -> Scanner:
    return from_fields(Scanner, row._mapping)


def answer_of(row: Row[Any], *, replayed: bool) -> ScanAnswer:
    return ScanAnswer(
        result=row.result, ticket=row.ticket, scanned_at=row.scanned_at, replayed=replayed
    )


class SQLCheckin(SQLBase):
    async def add_key(self, key: SigningKey) -> SigningKey:
        stmt = insert(t.checkin_keys).values(**as_fields(key))
        await self.tx(lambda c: c.execute(stmt))
        return key

    async def keys(self, event_id: str) -> list[SigningKey]:
        k = t.checkin_keys
        stmt = select(k).where(k.c.event_id == event_id).order_by(k.c.created_at, k.c.kid)
        return [from_fields(SigningKey, r._mapping) for r in await self.rows(stmt)]

    async def remove_key(self, event_id: str, kid: str) -> None:
        k = t.checkin_keys
        stmt = delete(k).where(k.c.event_id == event_id, k.c.kid == kid)
        if (await self.tx(lambda c: c.execute(stmt))).rowcount == 0:
            raise Missing()

    async def create_list(self, checkin_list: CheckinList) -> CheckinList:
        values = as_fields(checkin_list) | {"tiers": list(checkin_list.tiers)}
        await self.tx(lambda c: c.execute(insert(t.checkin_lists).values(**values)))
        return checkin_list

    async def get_list(self, list_id: str) -> CheckinList | None:
        row = await self.first(select(t.checkin_lists).where(t.checkin_lists.c.id == list_id))
        return list_of(row) if row else None

    async def lists(self, event_id: str) -> list[CheckinList]:
        cl = t.checkin_lists
        stmt = select(cl).where(cl.c.event_id == event_id).order_by(cl.c.id)
        return [list_of(r) for r in await self.rows(stmt)]

    async def create_scanner(self, scanner: Scanner) -> Scanner:
        stmt = insert(t.scanners).values(**as_fields(scanner))
        await self.tx(lambda c: c.execute(stmt))
        return scanner

    async def scanner_by_token(self, token_hash: str) -> Scanner | None:
        row = await self.first(select(t.scanners).where(t.scanners.c.token_hash == token_hash))
        return scanner_of(row) if row else None

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        row = await self.first(select(t.scanners).where(t.scanners.c.id == scanner_id))
        return scanner_of(row) if row else None

    async def scanners(self, event_id: str) -> list[Scanner]:
        s = t.scanners
        stmt = select(s).where(s.c.event_id == event_id).order_by(s.c.id)
        return [scanner_of(r) for r in await self.rows(stmt)]

    async def revoke_scanner(self, scanner_id: str, now: datetime) -> Scanner:
        s = t.scanners
        stmt = (
            update(s)
            .where(s.c.id == scanner_id)
            .values(revoked_at=func.coalesce(s.c.revoked_at, now))
            .returning(*s.c)
        )
        row = await self.tx(lambda c: first(c, stmt))
        if row is None:
            raise Missing()
        return scanner_of(row)

    async def redeem(self, scan: Scan) -> ScanAnswer:
        a = t.checkin_answers
        stored = select(a).where(a.c.scanner_id == scan.scanner_id, a.c.nonce == scan.nonce)

        async def work(conn: AsyncConnection) -> ScanAnswer:
            before = await first(conn, stored)
            if before is not None:
                return answer_of(before, replayed=True)
            result = scan.refused or await self._record(conn, scan)
            answer = ScanAnswer(result=result, ticket=scan.ticket, scanned_at=scan.scanned_at)
            values = {
                "scanner_id": scan.scanner_id,
                "nonce": scan.nonce,
                "result": result,
                "ticket": scan.ticket,
                "scanned_at": scan.scanned_at,
                "created_at": scan.at,
            }
            written = await conn.execute(self.upsert(a).values(**values).on_conflict_do_nothing())
            if written.rowcount == 0:
                raise _AnsweredMeanwhile()
            return answer

        try:
            return await self.tx(work)
        except _AnsweredMeanwhile:
            row = await self.first(stored)
            assert row is not None
            return answer_of(row, replayed=True)

    async def _record(self, conn: AsyncConnection, scan: Scan) -> ScanResult:
        """Insert the scan's redemption under the one key it may take; whether it took it."""
        r = t.checkin_redemptions
        assert scan.ticket_id is not None and scan.tier is not None
        counted = (
            select(r.c.type, func.count())
            .where(r.c.list_id == scan.list_id, r.c.ticket_id == scan.ticket_id)
            .group_by(r.c.type)
        )
        done = {row[0]: int(row[1]) for row in (await conn.execute(counted)).all()}
        entries, exits = done.get("entry", 0), done.get("exit", 0)
        if scan.type == "entry":
            seq = exits
        elif entries > exits:
            seq = entries - 1
        else:
            return "already_used"
        values = {
            "list_id": scan.list_id,
            "ticket_id": scan.ticket_id,
            "type": scan.type,
            "seq": seq,
            "event_id": scan.event_id,
            "tier": scan.tier,
            "scanner_id": scan.scanner_id,
            "nonce": scan.nonce,
            "scanned_at": scan.scanned_at,
            "created_at": scan.at,
        }
        taken = await conn.execute(self.upsert(r).values(**values).on_conflict_do_nothing())
        return "ok" if taken.rowcount == 1 else "already_used"

    async def entries(
        self,
        event_id: str,
        *,
        list_id: str | None = None,
        ticket_ids: Sequence[str] | None = None,
    ) -> dict[str, datetime]:
        r = t.checkin_redemptions
        stmt = (
            select(r.c.ticket_id, func.min(r.c.scanned_at).label("first"))
            .where(r.c.event_id == event_id, r.c.type == "entry")
            .group_by(r.c.ticket_id)
        )
        if list_id is not None:
            stmt = stmt.where(r.c.list_id == list_id)
        if ticket_ids is not None:
            stmt = stmt.where(r.c.ticket_id.in_(list(ticket_ids)))
        return {row.ticket_id: row.first for row in await self.rows(stmt)}

    async def counts(self, event_id: str) -> list[DoorCount]:
        r = t.checkin_redemptions
        stmt = (
            select(r.c.list_id, r.c.tier, func.count().label("n"))
            .where(r.c.event_id == event_id, r.c.type == "entry", r.c.seq == 0)
            .group_by(r.c.list_id, r.c.tier)
            .order_by(r.c.list_id, r.c.tier)
        )
        anywhere = (
            select(r.c.tier, func.count(r.c.ticket_id.distinct()).label("n"))
            .where(r.c.event_id == event_id, r.c.type == "entry", r.c.seq == 0)
            .group_by(r.c.tier)
            .order_by(r.c.tier)
        )
        per_list = [DoorCount(row.list_id, row.tier, int(row.n)) for row in await self.rows(stmt)]
        return per_list + [
            DoorCount(None, row.tier, int(row.n)) for row in await self.rows(anywhere)
        ]
