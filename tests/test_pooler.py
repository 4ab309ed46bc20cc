"""DATABASE_URL's `pooler` parameter: read, taken out of the URL asyncpg gets, checked."""

from __future__ import annotations

import pytest

from core.storage.sql import SQLStorage


async def test_pooler_parameter_turns_statement_caches_off_and_leaves_the_url() -> None:
    storage = SQLStorage("postgresql://u@127.0.0.1:6432/db?pooler=pgbouncer&ssl=prefer")
    try:
        assert "pooler" not in storage.url and "ssl=prefer" in storage.url
        assert storage.events.engines.reads_in_transaction
    finally:
        await storage.close()
    direct = SQLStorage("postgresql://u@127.0.0.1:5432/db")
    try:
        assert not direct.events.engines.reads_in_transaction
    finally:
        await direct.close()


def test_an_unknown_pooler_is_refused() -> None:
    with pytest.raises(ValueError, match="pooler=pgbouncer"):
        SQLStorage("postgresql://u@127.0.0.1:6432/db?pooler=odyssey")
