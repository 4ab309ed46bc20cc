"""Check-in on MongoDB: a redemption is one `insert_one` whose `_id` is its unique key
(`<list>|<ticket>|<type>|<n>`), so of concurrent scanners of one ticket exactly one inserts
it. Each redemption names the answer it belongs to: a scan sent again after a crash between
the redemption and its answer finds its own redemption and answers `ok` again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from core.storage.errors import Missing
from core.storage.mongo.base import Doc, MongoBase, fields_of, record
from core.storage.records import (
    CheckinList,
    DoorCount,
    Scan,
    ScanAnswer,
    Scanner,
    ScanResult,
    SigningKey,
    as_fields,
)


def list_of(doc: Doc) -> CheckinList:
    return record(CheckinList, doc, tiers=tuple(doc["tiers"]))


def scanner_of(doc: Doc) -> Scanner:
    return record(Scanner, doc)


def answer_of(doc: Doc, *, replayed: bool) -> ScanAnswer:
    values = fields_of(doc)
    return ScanAnswer(
        result=values["result"],
        ticket=values["ticket"],
        scanned_at=values["scanned_at"],
        replayed=replayed,
    )


class MongoCheckin(MongoBase):
    async def add_key(self, key: SigningKey) -> SigningKey:
        doc = {"_id": f"{key.event_id}:{key.kid}", **as_fields(key)}
        await self.write(lambda: self.checkin_keys.insert_one(doc))
        return key

    async def keys(self, event_id: str) -> list[SigningKey]:
        cursor = self.checkin_keys.find({"event_id": event_id}).sort(
            [("created_at", ASCENDING), ("kid", ASCENDING)]
        )
        return [record(SigningKey, d) for d in await cursor.to_list()]

    async def remove_key(self, event_id: str, kid: str) -> None:
        result = await self.checkin_keys.delete_one({"_id": f"{event_id}:{kid}"})
        if result.deleted_count == 0:
            raise Missing()

    async def create_list(self, checkin_list: CheckinList) -> CheckinList:
        fields = as_fields(checkin_list, exclude=("id",)) | {"tiers": list(checkin_list.tiers)}
        await self.write(lambda: self.checkin_lists.insert_one({"_id": checkin_list.id, **fields}))
        return checkin_list

    async def get_list(self, list_id: str) -> CheckinList | None:
        doc = await self.checkin_lists.find_one({"_id": list_id})
        return list_of(doc) if doc else None

    async def lists(self, event_id: str) -> list[CheckinList]:
        cursor = self.checkin_lists.find({"event_id": event_id}).sort("_id", ASCENDING)
        return [list_of(d) for d in await cursor.to_list()]

    async def create_scanner(self, scanner: Scanner) -> Scanner:
        doc = {"_id": scanner.id, **as_fields(scanner, exclude=("id",))}
        await self.write(lambda: self.scanner_docs.insert_one(doc))
        return scanner

    async def scanner_by_token(self, token_hash: str) -> Scanner | None:
        doc = await self.scanner_docs.find_one({"token_hash": token_hash})
        return scanner_of(doc) if doc else None

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        doc = await self.scanner_docs.find_one({"_id": scanner_id})
        return scanner_of(doc) if doc else None

    async def scanners(self, event_id: str) -> list[Scanner]:
        cursor = self.scanner_docs.find({"event_id": event_id}).sort("_id", ASCENDING)
        return [scanner_of(d) for d in await cursor.to_list()]

    async def revoke_scanner(self, scanner_id: str, now: datetime) -> Scanner:
        await self.scanner_docs.update_one(
            {"_id": scanner_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        doc = await self.scanner_docs.find_one({"_id": scanner_id})
        if doc is None:
            raise Missing()
        return scanner_of(doc)

    async def redeem(self, scan: Scan) -> ScanAnswer:
        key = f"{scan.scanner_id}|{scan.nonce}"
        before = await self.answers.find_one({"_id": key})
        if before is not None:
            return answer_of(before, replayed=True)
        result = scan.refused or await self._record(scan, key)
        doc: Doc = {
            "_id": key,
            "result": result,
            "ticket": scan.ticket,
            "scanned_at": scan.scanned_at,
            "created_at": scan.at,
        }
        try:
            await self.answers.insert_one(doc)
        except DuplicateKeyError:
            stored = await self.answers.find_one({"_id": key})
            assert stored is not None
            return answer_of(stored, replayed=True)
        return ScanAnswer(result=result, ticket=scan.ticket, scanned_at=scan.scanned_at)

    async def _record(self, scan: Scan, answer_key: str) -> ScanResult:
        assert scan.ticket_id is not None and scan.tier is not None
        of_ticket: Doc = {"list_id": scan.list_id, "ticket_id": scan.ticket_id}
        if await self.redemptions.find_one({**of_ticket, "answer_key": answer_key}) is not None:
            return "ok"  # this very scan, recorded before its answer was
        entries = await self.redemptions.count_documents({**of_ticket, "type": "entry"})
        exits = await self.redemptions.count_documents({**of_ticket, "type": "exit"})
        if scan.type == "entry":
            seq = exits
        elif entries > exits:
            seq = entries - 1
        else:
            return "already_used"
        doc: Doc = {
            "_id": f"{scan.list_id}|{scan.ticket_id}|{scan.type}|{seq}",
            **of_ticket,
            "type": scan.type,
            "seq": seq,
            "event_id": scan.event_id,
            "tier": scan.tier,
            "scanner_id": scan.scanner_id,
            "nonce": scan.nonce,
            "answer_key": answer_key,
            "scanned_at": scan.scanned_at,
            "created_at": scan.at,
        }
        try:
            await self.redemptions.insert_one(doc)
        except DuplicateKeyError:
            return "already_used"
        return "ok"

    async def entries(
        self,
        event_id: str,
        *,
        list_id: str | None = None,
        ticket_ids: Sequence[str] | None = None,
    ) -> dict[str, datetime]:
        match: Doc = {"event_id": event_id, "type": "entry"}
        if list_id is not None:
            match["list_id"] = list_id
        if ticket_ids is not None:
            match["ticket_id"] = {"$in": list(ticket_ids)}
        first: dict[str, datetime] = {}
        async for doc in self.redemptions.find(match, {"ticket_id": 1, "scanned_at": 1}):
            at = fields_of(doc)["scanned_at"]
            if doc["ticket_id"] not in first or at < first[doc["ticket_id"]]:
                first[doc["ticket_id"]] = at
        return first

    async def counts(self, event_id: str) -> list[DoorCount]:
        counted: dict[tuple[str, str], int] = {}
        anywhere: dict[str, set[str]] = {}
        match = {"event_id": event_id, "type": "entry", "seq": 0}
        fields = {"list_id": 1, "tier": 1, "ticket_id": 1}
        async for doc in self.redemptions.find(match, fields):
            group = (doc["list_id"], doc["tier"])
            counted[group] = counted.get(group, 0) + 1
            anywhere.setdefault(doc["tier"], set()).add(doc["ticket_id"])
        per_list = [DoorCount(lst, tier, n) for (lst, tier), n in sorted(counted.items())]
        return per_list + [DoorCount(None, tier, len(t)) for tier, t in sorted(anywhere.items())]
