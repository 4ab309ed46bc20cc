"""The recount on MongoDB: every counter compared with the bookings it counts, and rebuilt."""

from __future__ import annotations

from dataclasses import dataclass

from core.storage import drift
from core.storage.mongo import waitlist
from core.storage.mongo.base import MongoBase, Session, buyer_id
from core.storage.mongo.seats import derive_counters, tallies
from core.storage.records import Drift


@dataclass(frozen=True, slots=True)
class Counters:
    """drift.Counters on MongoDB."""

    base: MongoBase

    async def read(self) -> list[Drift]:
        return await self.base.tx(self._drifts, read_only=True)

    async def repair(self) -> list[Drift]:
        async def repair(s: Session) -> list[Drift]:
            found = await self._drifts(s)
            for event_id in sorted({d.event_id for d in found}):
                await derive_counters(self.base, s, event_id)
            if drift.of_claims(found):
                await waitlist.repair_claims(self.base, s)
            return found

        return await self.base.tx(repair)

    async def _drifts(self, s: Session) -> list[Drift]:
        base = self.base
        by_tier, by_buyer = await tallies(base, s, {})
        tiers = [
            (d["event_id"], d["code"], d["active"]) async for d in base.tiers.find({}, session=s)
        ]
        buyers = [
            (d["event_id"], d["owner_id"], d["active"], d.get("pending", 0))
            async for d in base.buyers.find({}, session=s)
        ]
        return drift.drifts(tiers, buyers, by_tier, by_buyer) + await waitlist.claim_drifts(base, s)


async def rebuild_buyer_counts(base: MongoBase) -> None:
    """Every buyer's counts from the bookings (a one-off data migration)."""

    async def work(s: Session) -> None:
        _, by_buyer = await tallies(base, s, {})
        await base.buyers.delete_many({}, session=s)
        if by_buyer:
            await base.buyers.insert_many(
                [
                    {
                        "_id": buyer_id(event_id, owner_id),
                        "event_id": event_id,
                        "owner_id": owner_id,
                        "active": seats.active,
                        "pending": seats.pending,
                    }
                    for (event_id, owner_id), seats in by_buyer.items()
                ],
                session=s,
            )

    await base.tx(work)
