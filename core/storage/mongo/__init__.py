"""MongoDB backend: PyMongo's native AsyncMongoClient, multi-document transactions (a replica
set is required), the collections and indexes declared with Beanie 2 (documents.py).

One module per part of the port (accounts, events, bookings), the seat release they share
(seats.py), and base.py: transactions with retries, driver errors → port errors.
"""

from __future__ import annotations

from beanie import init_beanie
from pymongo import AsyncMongoClient

from core.storage.mongo.accounts import MongoPartners, MongoTokens, MongoUsers
from core.storage.mongo.base import Doc, Lanes
from core.storage.mongo.bookings import MongoBookings
from core.storage.mongo.changes import MongoChanges
from core.storage.mongo.documents import DOCUMENTS
from core.storage.mongo.events import MongoEvents
from core.storage.mongo.mail import MongoMail, MongoResets
from core.storage.mongo.orders import MongoOrders
from core.storage.mongo.waitlist import MongoCodes, MongoWaitlist
from core.storage.mongo.webhooks import MongoWebhooks

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
        self.bookings = MongoBookings(self.client, self.db_name, lanes)
        self.orders = MongoOrders(self.client, self.db_name, lanes)
        self.changes = MongoChanges(self.client, self.db_name)
        self.webhooks = MongoWebhooks(self.client, self.db_name)
        self.mail = MongoMail(self.client, self.db_name)
        self.resets = MongoResets(self.client, self.db_name)
        self.waitlist = MongoWaitlist(self.client, self.db_name)
        self.codes = MongoCodes(self.client, self.db_name)
        self.bookings.batch_size = batch_size

    async def migrate(self) -> None:
        """Create the collections' indexes (idempotent) and bring the data to SCHEMA_VERSION."""
        db = self.client[self.db_name]
        await init_beanie(database=db, document_models=DOCUMENTS)
        schema = await db["meta"].find_one({"_id": "schema"}) or {"version": 1}
        if schema["version"] < 2:
            # Buyers were counted only while an event had a limit: count every booking now.
            await self.bookings.rebuild_buyer_counts()
        if schema["version"] < SCHEMA_VERSION:
            await db["meta"].update_one(
                {"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True
            )

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()
