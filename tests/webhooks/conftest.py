"""The app with webhooks that may reach the test's own receiver on 127.0.0.1, and retries
fast enough to watch (a real receiver, the real dispatcher, every backend)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Api, make_settings, running_api
from tests.support.services import fresh_postgresql, mongo_url

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.2,
    "webhook_poll_seconds": 0.05,
}


def fast_settings(database_url: str, **overrides: Any) -> Any:
    return make_settings(database_url, **(FAST | overrides))


# A fresh database per test: every dispatcher retries every webhook in its database, so the
# webhooks an earlier test left behind (their receivers gone) would compete with this test's.


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    with fresh_postgresql() as url:
        yield url


@pytest.fixture
def mongodb_url(mongo_base_uri: str) -> str:
    return mongo_url(mongo_base_uri, f"tb_test_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ticketboss.db'}"


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[Api]:
    async with running_api(fast_settings(database_url)) as running:
        yield running


@pytest.fixture
async def sqlite_hooks(sqlite_url: str) -> AsyncIterator[Api]:
    async with running_api(fast_settings(sqlite_url)) as running:
        yield running
