"""MongoDB backend: PyMongo's native AsyncMongoClient, multi-document transactions (a replica
set is required), the collections and indexes declared with Beanie 2 (documents.py).

One module per part of the port (accounts, events, bookings), the seat release they share
(seats.py), and base.py: transactions with retries, driver errors → port errors.
"""

from __future__ import annotations

from beanie import init_beanie
from pymongo import AsyncMongoClient

from core.storage.batching import ReserveBatcher
from core.storage.bookings import Bookings
from core.storage.drift import Recount
from core.storage.mongo import claims, reserve
from core.storage.mongo.accounts import MongoPartners, MongoTokens, MongoUsers
from core.storage.mongo.base import Doc, Lanes, MongoBase
from core.storage.mongo.bookings import MongoBookings
from core.storage.mongo.changes import MongoChanges
from core.storage.mongo.checkin import MongoCheckin
from core.storage.mongo.documents import DOCUMENTS
from core.storage.mongo.email_codes import MongoEmailCodes
from core.storage.mongo.events import MongoEvents
from core.storage.mongo.mail import MongoMail, MongoResets
from core.storage.mongo.orders import MongoOrders
from core.storage.mongo.recount import Counters, rebuild_buyer_counts
from core.storage.mongo.seats import release_expired_alone
from core.storage.mongo.waitlist import MongoCodes, MongoWaitlist
from core.storage.mongo.webhooks import MongoWebhooks
from core.storage.reserving import Reserver, Sweeper

SCHEMA_VERSION = 2


class MongoStorage:
    kind = "mongodb"

    def __init__(self, url: str, pool_size: int = 5, batch_size: int = 64) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url, tz_aware=False, uuidRepresentation="standard", maxPoolSize=max(10, 4 * pool_size)
        )
        self.db_name = self.client.get_default_database("ticketboss").name
        lanes = Lanes()
        self.users = MongoUsers(self.client, self.db_name)
        self.partners = MongoPartners(self.client, self.db_name)
        self.tokens = MongoTokens(self.client, self.db_name)
        self.events = MongoEvents(self.client, self.db_name)
        self.bookings = booking_store(self.client, self.db_name, lanes, batch_size)
        self.orders = MongoOrders(self.client, self.db_name, lanes)
        self.changes = MongoChanges(self.client, self.db_name)
        self.webhooks = MongoWebhooks(self.client, self.db_name)
        self.mail = MongoMail(self.client, self.db_name)
        self.resets = MongoResets(self.client, self.db_name)
        self.checkin = MongoCheckin(self.client, self.db_name)
        self.email_codes = MongoEmailCodes(self.client, self.db_name)
        self.waitlist = MongoWaitlist(self.client, self.db_name)
        self.codes = MongoCodes(self.client, self.db_name)

    async def migrate(self) -> None:
        """Create the collections' indexes (idempotent) and bring the data to SCHEMA_VERSION."""
        db = self.client[self.db_name]
        await init_beanie(database=db, document_models=DOCUMENTS)
        schema = await db["meta"].find_one({"_id": "schema"}) or {"version": 1}
        if schema["version"] < 2:
            # Buyers were counted only while an event had a limit: count every booking now.
            await rebuild_buyer_counts(MongoBase(self.client, self.db_name))
        if schema["version"] < SCHEMA_VERSION:
            await db["meta"].update_one(
                {"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True
            )

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()


def booking_store(
    client: AsyncMongoClient[Doc], db_name: str, lanes: Lanes, batch_size: int
) -> Bookings:
    """The booking path on MongoDB, each part built here and passed in (the variants: the
    table in core/storage/reserving.py). `batch_size` 1 turns group commit off."""
    base = MongoBase(client, db_name, lanes)
    sweeper = Sweeper(lambda now, event_id, tier: release_expired_alone(base, now, event_id, tier))
    alone = reserve.InTransaction(base)
    batcher = None
    if batch_size > 1:
        batch = reserve.BatchInTransaction(base)
        batcher = ReserveBatcher(
            batch.reserve_batch,
            alone.reserve,
            max_size=batch_size,
            in_flight=1,
            fallback_in_parallel=False,
        )
    return Bookings(
        reserver=Reserver(
            limited=alone,
            unlimited=alone,
            claimed=claims.Claimed(base),
            sweeper=sweeper,
            batcher=batcher,
        ),
        sweeper=sweeper,
        recount=Recount(sweeper, Counters(base)),
        rows=MongoBookings(client, db_name, lanes),
    )
