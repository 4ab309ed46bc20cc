"""The app with webhooks that may reach the test's own receiver on 127.0.0.1, and retries
fast enough to watch (a real receiver, the real dispatcher, every backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.api import Api, make_settings, running_api

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.2,
    "webhook_poll_seconds": 0.05,
}


def fast_settings(database_url: str, **overrides: Any) -> Any:
    return make_settings(database_url, **(FAST | overrides))


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[Api]:
    async with running_api(fast_settings(database_url)) as running:
        yield running


@pytest.fixture
async def sqlite_hooks(sqlite_url: str) -> AsyncIterator[Api]:
    async with running_api(fast_settings(sqlite_url)) as running:
        yield running
