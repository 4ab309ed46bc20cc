"""MongoDB backend: Beanie 2 documents on PyMongo's native AsyncMongoClient.

Beanie declares the collections and their indexes; the atomic operations use the
collections directly inside multi-document transactions (a replica set is required).
Seats are guarded as on SQL: a conditional `$inc` on the tier document
(`active + q <= capacity`) in the transaction that inserts the booking.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from beanie import Document, init_beanie
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from core.metrics import CONFLICTS_RETRIED, HOLDS_EXPIRED
from core.storage.port import (
    BookingExpired,
    CapacityBelowActive,
    DuplicateKey,
    HasActiveBookings,
    InvalidTransition,
    NotPending,
    SpendOutcome,
    StorageBusy,
    VersionMismatch,
)
from core.storage.records import (
    ACTIVE_STATUSES,
    Booking,
    BookingQuery,
    Drift,
    Event,
    EventQuery,
    EventStatus,
    Partner,
    RefreshToken,
    ReserveRequest,
    ReserveResult,
    Role,
    Tier,
    TierCount,
    TierPatch,
    User,
    as_fields,
    from_fields,
    new_id,
    new_ticket_number,
)

MAX_ATTEMPTS = 20
MAX_BACKOFF_SECONDS = 0.25
WRITE_CONFLICT = 112
Doc = dict[str, Any]


class UserDoc(Document):
    id: str  # type: ignore[assignment]
    email: str

    class Settings:
        name = "users"
        indexes = [IndexModel([("email", ASCENDING)], unique=True)]


class PartnerDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "partners"
        indexes = [IndexModel([("client_id", ASCENDING)], unique=True)]


class RefreshTokenDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "refresh_tokens"
        indexes = [IndexModel([("family_id", ASCENDING)])]


class EventDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "events"
        indexes = [
            IndexModel([("status", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("owner_id", ASCENDING)]),
            IndexModel([("name", "text"), ("venue", "text")], weights={"name": 2, "venue": 1}),
        ]


class TierDoc(Document):
    """One document per tier so its seat counter can be updated conditionally on its own."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "tiers"
        indexes = [IndexModel([("event_id", ASCENDING), ("position", ASCENDING)])]


class BookingDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "bookings"
        indexes = [
            IndexModel([("ticket_number", ASCENDING)], unique=True),
            IndexModel(
                [("owner_id", ASCENDING), ("idempotency_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
            IndexModel([("event_id", ASCENDING), ("tier", ASCENDING), ("status", ASCENDING)]),
            IndexModel([("owner_id", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("status", ASCENDING), ("expires_at", ASCENDING)]),
        ]


class UserEventCountDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "user_event_counts"


DOCUMENTS: list[type[Document]] = [
    UserDoc,
    PartnerDoc,
    RefreshTokenDoc,
    EventDoc,
    TierDoc,
    BookingDoc,
    UserEventCountDoc,
]


def _utc(value: datetime) -> datetime:
    """PyMongo returns naive UTC datetimes; the records carry aware ones."""
    return value.replace(tzinfo=UTC)


def _tier_id(event_id: str, code: str) -> str:
    return f"{event_id}/{code}"


def _transient(exc: PyMongoError) -> bool:
    """A conflict that aborted the transaction, so running it again is safe.

    MongoDB labels these TransientTransactionError (WriteConflict is code 112). A server that
    answers a commit with an untagged "write conflict" error has also refused the commit, so
    it is retried too (the mongoeco test server does this).
    """
    if exc.has_error_label("TransientTransactionError"):
        return True
    if not isinstance(exc, OperationFailure):
        return False
    return exc.code == WRITE_CONFLICT or (exc.code is None and "write conflict" in str(exc).lower())


def _discard_server_session(session: AsyncClientSession) -> None:
    """Keep a session whose transaction failed out of the pool (as PyMongo does after network
    errors): a server may still tie the failed transaction's state to that session id, and the
    next transaction on it would then conflict forever (seen with the mongoeco test server)."""
    server_session = getattr(session, "_server_session", None)
    if server_session is not None:
        server_session.mark_dirty()


class _Abort(Exception):
    """Raised inside a transaction to roll it back and hand a result to the caller."""

    def __init__(self, result: Any) -> None:
        self.result = result


class MongoBase:
    def __init__(self, client: AsyncMongoClient[Doc], db_name: str) -> None:
        self.client = client
        self.db = client[db_name]
        self.users = self.db["users"]
        self.partners = self.db["partners"]
        self.tokens = self.db["refresh_tokens"]
        self.events = self.db["events"]
        self.tiers = self.db["tiers"]
        self.bookings = self.db["bookings"]
        self.user_counts = self.db["user_event_counts"]

    async def tx[R](self, work: Callable[[AsyncClientSession], Awaitable[R]]) -> R:
        """Run `work` in a transaction; retry transient conflicts with jittered backoff."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.client.start_session() as session:
                    try:
                        async with await session.start_transaction():
                            return await work(session)
                    except PyMongoError:
                        _discard_server_session(session)
                        raise
            except _Abort as abort:
                return abort.result  # type: ignore[no-any-return]
            except PyMongoError as exc:
                if isinstance(exc, DuplicateKeyError) or not _transient(exc):
                    raise
                CONFLICTS_RETRIED.labels("mongodb").inc()
                await asyncio.sleep(random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.005 * 2**attempt)))  # noqa: S311
        raise StorageBusy("too much contention; try again")


def _record[R](cls: type[R], doc: Doc, **overrides: Any) -> R:
    """A record from a document: `_id` is the id, and PyMongo's naive UTC datetimes become
    aware ones."""
    values = {k: _utc(v) if isinstance(v, datetime) else v for k, v in doc.items()}
    return from_fields(cls, values | {"id": doc.get("_id")}, **overrides)


def _user(d: Doc) -> User:
    return _record(User, d)


def _partner(d: Doc) -> Partner:
    return _record(Partner, d)


def _booking(d: Doc) -> Booking:
    return _record(Booking, d)


def _tier(d: Doc) -> Tier:
    return _record(Tier, d)


def _event(d: Doc, tiers: list[Tier]) -> Event:
    return _record(Event, d, tiers=tuple(tiers))


class MongoUsers(MongoBase):
    async def create(self, user: User) -> User:
        try:
            await self.users.insert_one(
                {
                    "_id": user.id,
                    "email": user.email,
                    "name": user.name,
                    "role": user.role,
                    "password_hash": user.password_hash,
                    "created_at": user.created_at,
                    "updated_at": user.updated_at,
                }
            )
        except DuplicateKeyError:
            raise DuplicateKey("email") from None
        return user

    async def get(self, user_id: str) -> User | None:
        d = await self.users.find_one({"_id": user_id})
        return _user(d) if d else None

    async def get_by_email(self, email: str) -> User | None:
        d = await self.users.find_one({"email": email.lower()})
        return _user(d) if d else None

    async def set_role(self, user_id: str, role: Role, now: datetime) -> User | None:
        d = await self.users.find_one_and_update(
            {"_id": user_id},
            {"$set": {"role": role, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _user(d) if d else None


class MongoPartners(MongoBase):
    async def create(self, partner: Partner) -> Partner:
        await self.partners.insert_one(
            {
                "_id": partner.id,
                "name": partner.name,
                "client_id": partner.client_id,
                "secret_hash": partner.secret_hash,
                "created_at": partner.created_at,
            }
        )
        return partner

    async def get(self, partner_id: str) -> Partner | None:
        d = await self.partners.find_one({"_id": partner_id})
        return _partner(d) if d else None

    async def get_by_client_id(self, client_id: str) -> Partner | None:
        d = await self.partners.find_one({"client_id": client_id})
        return _partner(d) if d else None

    async def set_secret(self, partner_id: str, secret_hash: str) -> Partner | None:
        d = await self.partners.find_one_and_update(
            {"_id": partner_id},
            {"$set": {"secret_hash": secret_hash}},
            return_document=ReturnDocument.AFTER,
        )
        return _partner(d) if d else None


class MongoTokens(MongoBase):
    async def add(self, token: RefreshToken) -> None:
        await self.tokens.insert_one(
            {
                "_id": token.jti,
                "family_id": token.family_id,
                "user_id": token.user_id,
                "expires_at": token.expires_at,
                "spent_at": None,
                "revoked": False,
            }
        )

    async def spend(self, jti: str, now: datetime) -> SpendOutcome:
        result = await self.tokens.update_one(
            {"_id": jti, "spent_at": None, "revoked": False}, {"$set": {"spent_at": now}}
        )
        if result.modified_count:
            return "ok"
        return "spent" if await self.tokens.find_one({"_id": jti}, {"_id": 1}) else "unknown"

    async def revoke_family(self, family_id: str) -> None:
        await self.tokens.update_many({"family_id": family_id}, {"$set": {"revoked": True}})


class MongoEvents(MongoBase):
    async def create(self, ev: Event) -> Event:
        async def work(s: AsyncClientSession) -> None:
            await self.events.insert_one(_event_doc(ev), session=s)
            await self.tiers.insert_many(
                [
                    _tier_doc(ev.id, tier, pos, ev.status == "published")
                    for pos, tier in enumerate(ev.tiers)
                ],
                session=s,
            )

        try:
            await self.tx(work)
        except DuplicateKeyError:
            raise DuplicateKey("id") from None
        return ev

    async def get(
        self,
        event_id: str,
        *,
        include_deleted: bool = False,
        session: AsyncClientSession | None = None,
    ) -> Event | None:
        query: Doc = {"_id": event_id}
        if not include_deleted:
            query["deleted_at"] = None
        d = await self.events.find_one(query, session=session)
        if d is None:
            return None
        return _event(d, (await self._tiers([event_id], session))[event_id])

    async def _tiers(
        self, event_ids: list[str], session: AsyncClientSession | None = None
    ) -> dict[str, list[Tier]]:
        out: dict[str, list[Tier]] = defaultdict(list)
        cursor = self.tiers.find({"event_id": {"$in": event_ids}}, session=session).sort(
            "position", ASCENDING
        )
        async for d in cursor:
            out[d["event_id"]].append(_tier(d))
        return out

    async def find(self, query: EventQuery) -> list[Event]:
        filt: Doc = {"deleted_at": None, "status": {"$in": list(query.statuses)}}
        if query.owner_id:
            filt["owner_id"] = query.owner_id
        starts: Doc = {}
        if query.starts_from:
            starts["$gte"] = query.starts_from
        if query.starts_to:
            starts["$lte"] = query.starts_to
        if starts:
            filt["starts_at"] = starts
        if query.text:
            words = "".join(c if c.isalnum() else " " for c in query.text).split()
            if not words:
                return []
            filt["$text"] = {"$search": " ".join(f'"{w}"' for w in words)}
            cursor = self.events.find(filt).sort(
                [("score", {"$meta": "textScore"}), ("_id", ASCENDING)]
            )
            cursor = cursor.skip(query.offset)
        else:
            if query.after_id:
                filt["_id"] = {"$gt": query.after_id}
            cursor = self.events.find(filt).sort("_id", ASCENDING)
        docs = await cursor.limit(query.limit).to_list()
        tier_map = await self._tiers([d["_id"] for d in docs])
        return [_event(d, tier_map[d["_id"]]) for d in docs]

    async def update(
        self,
        event_id: str,
        *,
        expected_version: int | None,
        fields: dict[str, Any],
        tiers: Sequence[TierPatch],
        now: datetime,
    ) -> Event | None:
        async def work(s: AsyncClientSession) -> Event | None:
            filt: Doc = {"_id": event_id, "deleted_at": None}
            if expected_version is not None:
                filt["version"] = expected_version
            d = await self.events.find_one_and_update(
                filt,
                {"$set": {**fields, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is None:
                current = await self.get(event_id, session=s)
                if current is None:
                    return None
                raise VersionMismatch(current.version)
            for patch in tiers:
                await self._patch_tier(s, event_id, patch, d["status"] == "published", now)
            return await self.get(event_id, session=s)

        return await self.tx(work)

    async def _patch_tier(
        self, s: AsyncClientSession, event_id: str, patch: TierPatch, on_sale: bool, now: datetime
    ) -> None:
        tid = _tier_id(event_id, patch.code)
        existing = await self.tiers.find_one({"_id": tid}, session=s)
        if existing is None:
            position = await self.tiers.count_documents({"event_id": event_id}, session=s)
            tier = Tier(
                patch.code, patch.name or patch.code, patch.price_cents or 0, patch.capacity or 0
            )
            await self.tiers.insert_one(_tier_doc(event_id, tier, position, on_sale), session=s)
            return
        changes: Doc = {
            k: v
            for k, v in (("name", patch.name), ("price_cents", patch.price_cents))
            if v is not None
        }
        filt: Doc = {"_id": tid}
        update: Doc = {}
        if patch.capacity is not None:
            await _release_expired(self, s, now, event_id, patch.code)
            changes["capacity"] = patch.capacity
            filt["active"] = {"$lte": patch.capacity}
            update["$inc"] = {"version": 1}
        if not changes:
            return
        result = await self.tiers.update_one(filt, {"$set": changes, **update}, session=s)
        if result.matched_count == 0:
            current = await self.tiers.find_one({"_id": tid}, session=s)
            raise CapacityBelowActive(patch.code, current["active"] if current else 0)

    async def transition(
        self, event_id: str, allowed_from: Sequence[EventStatus], to: EventStatus, now: datetime
    ) -> Event | None:
        async def work(s: AsyncClientSession) -> Event | None:
            result = await self.events.update_one(
                {"_id": event_id, "deleted_at": None, "status": {"$in": list(allowed_from)}},
                {"$set": {"status": to, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
            )
            if result.matched_count == 0:
                current = await self.get(event_id, session=s)
                if current is None:
                    return None
                raise InvalidTransition(current.status)
            tier_update: Doc = {"$set": {"on_sale": to == "published"}}
            if to == "cancelled":
                await self._release_all(s, event_id, now)
                tier_update["$set"]["active"] = 0
                tier_update["$inc"] = {"version": 1}
            await self.tiers.update_many({"event_id": event_id}, tier_update, session=s)
            return await self.get(event_id, session=s)

        return await self.tx(work)

    async def _release_all(self, s: AsyncClientSession, event_id: str, now: datetime) -> None:
        await self.bookings.update_many(
            {"event_id": event_id, "status": "pending", "expires_at": {"$lte": now}},
            {"$set": {"status": "expired", "updated_at": now}},
            session=s,
        )
        await self.bookings.update_many(
            {"event_id": event_id, "status": {"$in": list(ACTIVE_STATUSES)}},
            {"$set": {"status": "cancelled", "updated_at": now}},
            session=s,
        )
        await self.user_counts.delete_many({"event_id": event_id}, session=s)

    async def soft_delete(self, event_id: str, now: datetime) -> bool:
        async def work(s: AsyncClientSession) -> bool:
            if await self.get(event_id, session=s) is None:
                return False
            await _release_expired(self, s, now, event_id)
            async for tier in self.tiers.find({"event_id": event_id}, session=s):
                if tier["active"]:
                    raise HasActiveBookings()
            await self.events.update_one(
                {"_id": event_id},
                {"$set": {"deleted_at": now, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
            )
            await self.tiers.update_many(
                {"event_id": event_id}, {"$set": {"on_sale": False}}, session=s
            )
            return True

        return await self.tx(work)

    async def availability(self, event_id: str, now: datetime) -> list[TierCount]:
        pipeline: list[Doc] = [
            {
                "$match": {
                    "event_id": event_id,
                    "$or": [
                        {"status": "confirmed"},
                        {"status": "pending", "expires_at": {"$gt": now}},
                    ],
                }
            },
            {
                "$group": {
                    "_id": "$tier",
                    "pending": {
                        "$sum": {"$cond": [{"$eq": ["$status", "pending"]}, "$quantity", 0]}
                    },
                    "confirmed": {
                        "$sum": {"$cond": [{"$eq": ["$status", "confirmed"]}, "$quantity", 0]}
                    },
                }
            },
        ]
        counts = {d["_id"]: d async for d in await self.bookings.aggregate(pipeline)}
        tiers = (await self._tiers([event_id]))[event_id]
        return [
            TierCount(
                t.code,
                t.capacity,
                int(counts.get(t.code, {}).get("pending", 0)),
                int(counts.get(t.code, {}).get("confirmed", 0)),
            )
            for t in tiers
        ]


def _event_doc(ev: Event) -> Doc:
    return {"_id": ev.id, **as_fields(ev, exclude=("id", "tiers"))}


def _tier_doc(event_id: str, tier: Tier, position: int, on_sale: bool) -> Doc:
    new = {"active": 0, "version": 0, "on_sale": on_sale, "position": position}
    return {"_id": _tier_id(event_id, tier.code), "event_id": event_id, **as_fields(tier), **new}


async def _give_back(base: MongoBase, s: AsyncClientSession, released: Sequence[Doc]) -> None:
    per_tier: dict[tuple[str, str], int] = defaultdict(int)
    per_owner: dict[tuple[str, str], int] = defaultdict(int)
    for b in released:
        per_tier[(b["event_id"], b["tier"])] += b["quantity"]
        per_owner[(b["event_id"], b["owner_id"])] += b["quantity"]
    for (event_id, code), seats in sorted(per_tier.items()):
        await base.tiers.update_one(
            {"_id": _tier_id(event_id, code)}, {"$inc": {"active": -seats, "version": 1}}, session=s
        )
    for (event_id, owner_id), seats in sorted(per_owner.items()):
        await base.user_counts.update_one(
            {"_id": f"{event_id}/{owner_id}"}, {"$inc": {"active": -seats}}, session=s
        )


async def _release_expired(
    base: MongoBase,
    s: AsyncClientSession,
    now: datetime,
    event_id: str | None = None,
    tier: str | None = None,
) -> int:
    filt: Doc = {"status": "pending", "expires_at": {"$lte": now}}
    if event_id is not None:
        filt["event_id"] = event_id
    if tier is not None:
        filt["tier"] = tier
    released = await base.bookings.find(filt, session=s).to_list()
    if not released:
        return 0
    await base.bookings.update_many(
        {"_id": {"$in": [b["_id"] for b in released]}, "status": "pending"},
        {"$set": {"status": "expired", "updated_at": now}},
        session=s,
    )
    await _give_back(base, s, released)
    return len(released)


class MongoBookings(MongoBase):
    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        for attempt in range(2):
            result = await self._reserve_once(req)
            if result.outcome not in ("sold_out", "per_user_limit") or attempt:
                return result
            if not await self.release_expired(req.now, req.event_id, req.tier):
                return result
        raise AssertionError("unreachable")

    async def _reserve_once(self, req: ReserveRequest) -> ReserveResult:
        async def work(s: AsyncClientSession) -> ReserveResult:
            if req.max_per_user is not None:
                await self._take_per_user(s, req)
            tier = await self.tiers.find_one_and_update(
                {
                    "_id": _tier_id(req.event_id, req.tier),
                    "on_sale": True,
                    "$expr": {"$lte": [{"$add": ["$active", req.quantity]}, "$capacity"]},
                },
                {"$inc": {"active": req.quantity, "version": 1}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if tier is None:
                raise _Abort(None)
            # Fresh ids on every attempt: an aborted attempt's ids are never reused.
            doc = _booking_doc(req, tier["price_cents"]) | {
                "_id": new_id(),
                "ticket_number": new_ticket_number(),
            }
            await self.bookings.insert_one(doc, session=s)
            return ReserveResult("created", _booking(doc))

        for _ in range(MAX_ATTEMPTS):
            try:
                result: ReserveResult | None = await self.tx(work)
                if result is not None:
                    return result
                refusal = await self._refusal(req)
                if refusal.outcome != "sold_out" or refusal.available < req.quantity:
                    return refusal
                # The committed seats are there: the update lost a race, not the sale.
                CONFLICTS_RETRIED.labels("mongodb").inc()
            except DuplicateKeyError as exc:
                if req.idempotency_key and "idempotency_key" in str(exc):
                    existing = await self.get_by_key(req.owner_id, req.idempotency_key)
                    if existing is not None:
                        return ReserveResult("existing", existing)
                # The other writer of that key aborted (or ids collided): try again.
                CONFLICTS_RETRIED.labels("mongodb").inc()
        raise StorageBusy("too much contention; try again")

    async def _take_per_user(self, s: AsyncClientSession, req: ReserveRequest) -> None:
        assert req.max_per_user is not None
        key = f"{req.event_id}/{req.owner_id}"
        taken = await self.user_counts.find_one_and_update(
            {
                "_id": key,
                "$expr": {"$lte": [{"$add": ["$active", req.quantity]}, req.max_per_user]},
            },
            {"$inc": {"active": req.quantity}},
            session=s,
        )
        if taken is None:
            if await self.user_counts.find_one({"_id": key}, {"_id": 1}, session=s):
                raise _Abort(ReserveResult("per_user_limit"))
            # The buyer's first booking here. If a concurrent first booking inserts this count
            # too, the DuplicateKeyError is retried by _reserve_once and takes the update path.
            doc = {
                "_id": key,
                "event_id": req.event_id,
                "owner_id": req.owner_id,
                "active": req.quantity,
            }
            await self.user_counts.insert_one(doc, session=s)

    async def _refusal(self, req: ReserveRequest) -> ReserveResult:
        tier = await self.tiers.find_one({"_id": _tier_id(req.event_id, req.tier)})
        if tier is None:
            return ReserveResult("no_tier")
        if not tier["on_sale"]:
            return ReserveResult("not_on_sale")
        return ReserveResult("sold_out", available=max(0, tier["capacity"] - tier["active"]))

    async def confirm(self, booking_id: str, owner_id: str, now: datetime) -> Booking | None:
        d = await self.bookings.find_one_and_update(
            {
                "_id": booking_id,
                "owner_id": owner_id,
                "status": "pending",
                "expires_at": {"$gt": now},
            },
            {"$set": {"status": "confirmed", "expires_at": None, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if d is not None:
            return _booking(d)
        current = await self.get(booking_id)
        if current is None or current.owner_id != owner_id:
            return None
        if current.status in ("pending", "expired"):
            raise BookingExpired()
        raise NotPending(current.status)

    async def cancel(self, booking_id: str, owner_id: str | None, now: datetime) -> Booking | None:
        async def work(s: AsyncClientSession) -> Doc | None:
            filt: Doc = {
                "_id": booking_id,
                "$or": [{"status": "confirmed"}, {"status": "pending", "expires_at": {"$gt": now}}],
            }
            if owner_id is not None:
                filt["owner_id"] = owner_id
            d = await self.bookings.find_one_and_update(
                filt,
                {"$set": {"status": "cancelled", "updated_at": now}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is not None:
                await _give_back(self, s, [d])
            return d

        d = await self.tx(work)
        if d is not None:
            return _booking(d)
        current = await self.get(booking_id)
        if current is None or (owner_id is not None and current.owner_id != owner_id):
            return None
        raise NotPending("expired" if current.status == "pending" else current.status)

    async def get(self, booking_id: str) -> Booking | None:
        d = await self.bookings.find_one({"_id": booking_id})
        return _booking(d) if d else None

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        d = await self.bookings.find_one({"owner_id": owner_id, "idempotency_key": idempotency_key})
        return _booking(d) if d else None

    async def find(self, query: BookingQuery) -> list[Booking]:
        filt: Doc = {}
        if query.owner_id:
            filt["owner_id"] = query.owner_id
        if query.event_id:
            filt["event_id"] = query.event_id
        if query.status:
            filt["status"] = query.status
        if query.before_id:
            filt["_id"] = {"$lt": query.before_id}
        docs = await self.bookings.find(filt).sort("_id", DESCENDING).limit(query.limit).to_list()
        return [_booking(d) for d in docs]

    async def count_active(self, event_id: str, now: datetime) -> int:
        return await self.bookings.count_documents(
            {
                "event_id": event_id,
                "$or": [{"status": "confirmed"}, {"status": "pending", "expires_at": {"$gt": now}}],
            }
        )

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self.tx(lambda s: _release_expired(self, s, now, event_id, tier))
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        await self.release_expired(now)

        async def work(s: AsyncClientSession) -> list[Drift]:
            seats: dict[tuple[str, str], int] = defaultdict(int)
            owners: dict[tuple[str, str], int] = defaultdict(int)
            async for b in self.bookings.find(
                {"status": {"$in": list(ACTIVE_STATUSES)}}, session=s
            ):
                seats[(b["event_id"], b["tier"])] += b["quantity"]
                owners[(b["event_id"], b["owner_id"])] += b["quantity"]
            drifts = [
                Drift(t["event_id"], t["code"], t["active"], seats[(t["event_id"], t["code"])])
                async for t in self.tiers.find({}, session=s)
                if t["active"] != seats[(t["event_id"], t["code"])]
            ]
            if fix:
                for d in drifts:
                    await self.tiers.update_one(
                        {"_id": _tier_id(d.event_id, d.tier)},
                        {"$set": {"active": d.actual}, "$inc": {"version": 1}},
                        session=s,
                    )
                await self.user_counts.delete_many({}, session=s)
                if owners:
                    await self.user_counts.insert_many(
                        [
                            {"_id": f"{e}/{o}", "event_id": e, "owner_id": o, "active": n}
                            for (e, o), n in owners.items()
                        ],
                        session=s,
                    )
            return drifts

        return await self.tx(work)


def _booking_doc(req: ReserveRequest, price_cents: int) -> Doc:
    doc: Doc = {
        "_id": req.booking_id,
        "ticket_number": req.ticket_number,
        "event_id": req.event_id,
        "tier": req.tier,
        "quantity": req.quantity,
        "unit_price_cents": price_cents,
        "currency": "USD",
        "status": "pending" if req.hold_until else "confirmed",
        "expires_at": req.hold_until,
        "owner_id": req.owner_id,
        "partner_id": req.partner_id,
        "external_ref": req.external_ref,
        "request_hash": req.request_hash,
        "created_at": req.now,
        "updated_at": req.now,
    }
    if req.idempotency_key is not None:  # the unique index is partial on string keys
        doc["idempotency_key"] = req.idempotency_key
    return doc


class MongoStorage:
    kind = "mongodb"

    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url, tz_aware=False, uuidRepresentation="standard", maxPoolSize=max(10, 4 * pool_size)
        )
        db_name = self.client.get_default_database("ticketboss").name
        self.db_name = db_name
        self.users = MongoUsers(self.client, db_name)
        self.partners = MongoPartners(self.client, db_name)
        self.tokens = MongoTokens(self.client, db_name)
        self.events = MongoEvents(self.client, db_name)
        self.bookings = MongoBookings(self.client, db_name)

    async def migrate(self) -> None:
        await init_beanie(database=self.client[self.db_name], document_models=DOCUMENTS)

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()
