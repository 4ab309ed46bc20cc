"""The migrations produce exactly the tables the code declares (core/storage/sql/schema.py):
the next migration cannot drift from the table definitions unnoticed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from core.storage import build_storage
from core.storage.sql.schema import metadata
from tests.support.services import PG_HOST, PG_PORT, pg_admin, port_open, service_missing

# Search structures that live beside the tables and are made by raw SQL in the migrations.
NOT_DECLARED = {"events_fts", "ix_events_search", "alembic_version"}


def _declared(obj: Any, name: str | None, type_: str, reflected: bool, _: Any) -> bool:
    return not (name or "").startswith(tuple(NOT_DECLARED))


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={"include_object": _declared, "compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, metadata))


async def _migrated_differences(url: str) -> list[Any]:
    storage = build_storage(url)
    try:
        await storage.migrate()
        async with storage.engine.connect() as conn:  # type: ignore[attr-defined]
            return await conn.run_sync(_differences)
    finally:
        await storage.close()


async def test_sqlite_migrations_match_the_tables(tmp_path: Path) -> None:
    assert await _migrated_differences(f"sqlite:///{tmp_path / 'schema.db'}") == []


@pytest.mark.postgresql
async def test_postgresql_migrations_match_the_tables() -> None:
    if not port_open(PG_HOST, PG_PORT):
        service_missing(f"PostgreSQL on {PG_HOST}:{PG_PORT}")
    name = f"tb_schema_{uuid.uuid4().hex[:8]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
        assert await _migrated_differences(url) == []
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
