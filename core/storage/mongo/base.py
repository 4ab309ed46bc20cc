"""What every MongoDB store shares: the collections, transactions with retries, and the one
place where driver errors become the port's errors."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from core.storage import key_claims, retries
from core.storage.errors import DuplicateKey
from core.storage.records import from_fields, new_id

Doc = dict[str, Any]
Session = AsyncClientSession
WRITE_CONFLICT = 112

# The port names a taken unique key by what it means; MongoDB reports the index's name.
UNIQUE_INDEXES = {
    "_id_": "id",
    "email_1": "email",
    "client_id_1": "client_id",
    "ticket_number_1": "ticket_number",
    "owner_id_1_idempotency_key_1": "idempotency_key",
    "webhook_id_1_change_id_1": "change_id",
    "token_hash_1": "token_hash",
    "live_key_1": "waitlist_entry",
    "event_id_1_code_1": "access_code",
    "owner_id_1_key_1": key_claims.FIELD,
}
_INDEX_NAME = re.compile(r"index: (\S+)")


def duplicate_key(exc: DuplicateKeyError, collection: str) -> DuplicateKey:
    match = _INDEX_NAME.search(str((exc.details or {}).get("errmsg", exc)))
    name = match.group(1) if match else ""
    field = UNIQUE_INDEXES.get(name, name)
    if field == "id" and collection == "tiers":
        field = "tier"
    if field == "idempotency_key" and collection == "orders":
        field = "order_key"
    if field == "id" and collection == "checkin_keys":
        field = "kid"
    return DuplicateKey(field)


def transient(exc: Exception) -> bool:
    """A conflict that aborted the transaction, so running it again is safe.

    MongoDB labels these TransientTransactionError (WriteConflict is code 112). A server that
    answers a commit with an untagged "write conflict" error has also refused the commit, so
    it is retried too (the mongoeco test server does this).
    """
    if not isinstance(exc, PyMongoError) or isinstance(exc, DuplicateKeyError):
        return False
    if exc.has_error_label("TransientTransactionError"):
        return True
    if not isinstance(exc, OperationFailure):
        return False
    return exc.code == WRITE_CONFLICT or (exc.code is None and "write conflict" in str(exc).lower())


def hold_active(now: datetime) -> Doc:
    """The hold rule (records.hold_active) for a booking or order: pending, not expired."""
    return {"status": "pending", "expires_at": {"$gt": now}}


def hold_expired(now: datetime) -> Doc:
    """A hold past its expiry that the sweeper has not released yet."""
    return {"status": "pending", "expires_at": {"$lte": now}}


def active_at(now: datetime) -> Doc:
    """The active-booking rule: confirmed, or a hold still active."""
    return {"$or": [{"status": "confirmed"}, hold_active(now)]}


HOLDS_SEATS: Doc = {"status": {"$in": ["pending", "confirmed"]}}
"""Bookings whose seats the counters include (expired holds until they are released)."""


def fields_of(doc: Doc, **changed: Any) -> Doc:
    """A document's fields as a record has them (`_id` is the id, PyMongo's naive UTC
    datetimes aware), with `changed` applied."""
    values = {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for k, v in doc.items()}
    return values | {"id": doc.get("_id")} | changed


def record[R](cls: type[R], doc: Doc, **overrides: Any) -> R:
    """A record from a document."""
    return from_fields(cls, fields_of(doc), **overrides)


def buyer_id(event_id: str, owner_id: str) -> str:
    return f"{event_id}/{owner_id}"


def tier_id(event_id: str, code: str) -> str:
    return f"{event_id}/{code}"


def _discard_server_session(session: Session) -> None:
    """Keep a session whose transaction failed out of the pool (as PyMongo does after network
    errors): a server may still tie the failed transaction's state to that session id, and the
    next transaction on it would then conflict forever (seen with the mongoeco test server)."""
    server_session = getattr(session, "_server_session", None)
    if server_session is not None:
        server_session.mark_dirty()


class Lanes:
    """One reserve transaction per event at a time in this process.

    Concurrent transactions on one tier document do not queue in MongoDB: all but one abort
    and retry. So this process sends an event's seat-taking transactions (batches of single
    bookings, orders) one at a time; the requests that wait meanwhile join the next batch."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def of(self, event_id: str) -> asyncio.Lock:
        return self.locks[event_id]


class MongoBase:
    """A store's access to the database, shared by the stores of one MongoStorage.

    Beanie declares the collections and their indexes (documents.py); the operations use
    PyMongo's async collections directly, because they are conditional updates inside
    multi-document transactions, which Beanie's document API does not express."""

    def __init__(
        self, client: AsyncMongoClient[Doc], db_name: str, lanes: Lanes | None = None
    ) -> None:
        self.client = client
        self.lanes = lanes if lanes is not None else Lanes()
        db = client[db_name]
        self.users = db["users"]
        self.partners = db["partners"]
        self.tokens = db["refresh_tokens"]
        self.events = db["events"]
        self.tiers = db["tiers"]
        self.bookings = db["bookings"]
        self.buyers = db["user_event_counts"]
        self.orders = db["orders"]
        self.key_claims = db["idempotency_keys"]
        self.changes = db["changes"]
        self.leases = db["leases"]
        self.webhooks = db["webhooks"]
        self.webhook_deliveries = db["webhook_deliveries"]
        self.mail = db["mail"]
        self.resets = db["password_resets"]
        self.checkin_keys = db["checkin_keys"]
        self.checkin_lists = db["checkin_lists"]
        self.scanner_docs = db["scanners"]
        self.redemptions = db["checkin_redemptions"]
        self.answers = db["checkin_answers"]
        self.email_codes = db["email_codes"]
        self.waitlist = db["waitlist_entries"]
        self.codes = db["access_codes"]
        self.code_uses = db["code_uses"]

    async def started(self, event_id: str, now: datetime, s: Session | None = None) -> bool:
        """Whether the event has started (sales, confirmations included, are over)."""
        query: Doc = {"_id": event_id, "starts_at": {"$lte": now}}
        return await self.events.find_one(query, {"_id": 1}, session=s) is not None

    async def key_kind(self, owner_id: str, key: str) -> str | None:
        """What the caller's Idempotency-Key made (booking, order), None if nothing yet."""
        claim = await self.key_claims.find_one({"owner_id": owner_id, "key": key})
        return claim["kind"] if claim else None

    async def claim_keys(self, s: Session, claims: list[Doc]) -> None:
        """Insert these claims (key_claims.claim_values) in the transaction `s`; a taken one
        is DuplicateKey(key_claims.FIELD) and aborts it."""
        docs = [{"_id": new_id(), **claim} for claim in claims]
        if len(docs) == 1:  # insert_many reports a taken key as a BulkWriteError instead
            await self.key_claims.insert_one(docs[0], session=s)
        elif docs:  # a batch: any error makes each of its requests run alone
            await self.key_claims.insert_many(docs, session=s)

    async def tx[R](self, work: Callable[[Session], Awaitable[R]], *, read_only: bool = False) -> R:
        """Run `work` in a transaction, retrying transient conflicts with jittered backoff.
        A read-only one reads one snapshot of the database."""

        async def attempt() -> R:
            async with self.client.start_session() as session:
                try:
                    concern = ReadConcern("snapshot") if read_only else None
                    async with await session.start_transaction(read_concern=concern):
                        return await work(session)
                except PyMongoError:
                    _discard_server_session(session)
                    raise

        try:
            return await retries.retrying(attempt, transient, "mongodb")
        except DuplicateKeyError as exc:
            raise duplicate_key(exc, _collection_of(exc)) from None

    async def write[R](self, op: Callable[[], Awaitable[R]]) -> R:
        """One single-document write (atomic on its own), its duplicate key translated."""
        try:
            return await op()
        except DuplicateKeyError as exc:
            raise duplicate_key(exc, _collection_of(exc)) from None


def _collection_of(exc: DuplicateKeyError) -> str:
    match = re.search(r"collection: \S+?\.(\S+)", str((exc.details or {}).get("errmsg", "")))
    return match.group(1) if match else ""
