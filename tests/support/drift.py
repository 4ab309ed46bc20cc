"""Test-only damage: write a tier's seat counter behind the storage port's back, through the
test's own driver connection, so that reconcile has drift to find."""

from __future__ import annotations

import sqlite3

from core.config import database_kind


async def corrupt_counter(database_url: str, event_id: str, tier: str, value: int) -> None:
    match database_kind(database_url):
        case "sqlite":
            path = database_url.split(":///", 1)[1]
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "UPDATE tiers SET active = ? WHERE event_id = ? AND code = ?",
                    (value, event_id, tier),
                )
        case "postgresql":
            import asyncpg

            conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            try:
                await conn.execute(
                    "UPDATE tiers SET active = $1 WHERE event_id = $2 AND code = $3",
                    value,
                    event_id,
                    tier,
                )
            finally:
                await conn.close()
        case "mongodb":
            from pymongo import AsyncMongoClient

            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(database_url)
            try:
                tiers = client.get_default_database()["tiers"]
                await tiers.update_one({"_id": f"{event_id}/{tier}"}, {"$set": {"active": value}})
            finally:
                await client.close()
