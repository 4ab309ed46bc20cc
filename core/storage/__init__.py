"""Storage: the port (Protocols, records) and the backend chosen from DATABASE_URL."""

from __future__ import annotations

from typing import Protocol

from core.config import database_kind
from core.storage.port import Storage


class ManagedStorage(Storage, Protocol):
    async def migrate(self) -> None: ...


def build_storage(
    database_url: str, pool_size: int = 5, batch_size: int = 64, *, one_statement: bool = True
) -> ManagedStorage:
    """The backend for a DATABASE_URL; drivers are imported only for the one in use.
    `batch_size` bounds a group-commit batch of one tier's bookings (1: no batching);
    `one_statement` (PostgreSQL): an unbatched booking without a buyer limit is one statement."""
    if database_kind(database_url) == "mongodb":
        from core.storage.mongo import MongoStorage

        return MongoStorage(database_url, pool_size=pool_size, batch_size=batch_size)
    from core.storage.sql import SQLStorage

    return SQLStorage(
        database_url, pool_size=pool_size, batch_size=batch_size, one_statement=one_statement
    )
