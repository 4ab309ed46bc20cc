"""The storage under test: each backend's, migrated, through the port only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.storage import ManagedStorage, build_storage


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[ManagedStorage]:
    store = build_storage(database_url)
    await store.migrate()
    yield store
    await store.close()
