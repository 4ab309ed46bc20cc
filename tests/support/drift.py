"""Test-only damage: write a tier's seat counter behind the storage port's back, through the
test's own driver connection, so that reconcile has drift to find."""

from __future__ import annotations

import sqlite3

from core.config import database_kind


async def corrupt_counter(database_url: str, event_id: str, tier: str, value: int) -> None:
    await _set(database_url, "tiers", ("event_id", event_id), ("code", tier), value)


async def corrupt_blocked(database_url: str, event_id: str, tier: str, value: int) -> None:
    """Set a tier's blocked seats (offers and codes' holds) to `value`."""
    await _set(database_url, "tiers", ("event_id", event_id), ("code", tier), value, "blocked")


async def corrupt_buyer_count(database_url: str, event_id: str, owner: str, value: int) -> None:
    await _set(
        database_url, "user_event_counts", ("event_id", event_id), ("owner_id", owner), value
    )


async def _set(
    database_url: str,
    table: str,
    first: tuple[str, str],
    second: tuple[str, str],
    value: int,
    column: str = "active",
) -> None:
    """Set `column` of the row keyed by the two (column, value) pairs."""
    where = f"{first[0]} = ? AND {second[0]} = ?"
    match database_kind(database_url):
        case "sqlite":
            path = database_url.split(":///", 1)[1]
            with sqlite3.connect(path) as conn:
                conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {where}", (value, first[1], second[1])
                )
        case "postgresql":
            import asyncpg

            # Without the URL's `pooler` parameter, and no statement cache (PgBouncer's
            # transaction mode, see core/storage/sql).
            url = database_url.replace("+asyncpg", "").split("?", 1)[0]
            conn = await asyncpg.connect(url, statement_cache_size=0)
            try:
                await conn.execute(
                    f"UPDATE {table} SET {column} = $1 WHERE {first[0]} = $2 AND {second[0]} = $3",
                    value,
                    first[1],
                    second[1],
                )
            finally:
                await conn.close()
        case "mongodb":
            from pymongo import AsyncMongoClient

            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(database_url)
            try:
                rows = client.get_default_database()[table]
                await rows.update_one({"_id": f"{first[1]}/{second[1]}"}, {"$set": {column: value}})
            finally:
                await client.close()
