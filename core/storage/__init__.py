"""Storage: the port (Protocols, records) and the backend chosen from DATABASE_URL."""

from __future__ import annotations

from typing import Protocol

from core.config import database_kind
from core.storage.port import Storage


class ManagedStorage(Storage, Protocol):
    async def migrate(self) -> None: ...


def build_storage(database_url: str, pool_size: int = 5) -> ManagedStorage:
    """The backend for a DATABASE_URL; drivers are imported only for the one in use."""
    if database_kind(database_url) == "mongodb":
        from core.storage.mongo import MongoStorage

        return MongoStorage(database_url, pool_size=pool_size)
    from core.storage.sql import SQLStorage

    return SQLStorage(database_url, pool_size=pool_size)
