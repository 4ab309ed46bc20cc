"""SQLAlchemy 2 async backend for SQLite (aiosqlite) and PostgreSQL (asyncpg).

One module per part of the port (accounts, events, bookings), the seat release they share
(seats.py), and base.py: connections, transactions with retries, driver errors → port errors.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.storage.batching import ReserveBatcher
from core.storage.bookings import Bookings
from core.storage.drift import Recount
from core.storage.reserving import Batch, Reserver, Sweeper
from core.storage.sql import claims, reserve
from core.storage.sql.accounts import SQLPartners, SQLTokens, SQLUsers
from core.storage.sql.base import Engines, SQLBase, async_url, sqlite_begin
from core.storage.sql.bookings import SQLBookings
from core.storage.sql.changes import SQLChanges
from core.storage.sql.checkin import SQLCheckin
from core.storage.sql.email_codes import SQLEmailCodes
from core.storage.sql.events import SQLEvents
from core.storage.sql.mail import SQLMail, SQLResets
from core.storage.sql.orders import SQLOrders
from core.storage.sql.recount import Counters
from core.storage.sql.seats import release_expired_alone
from core.storage.sql.waitlist import SQLCodes, SQLWaitlist
from core.storage.sql.webhooks import SQLWebhooks


class SQLStorage:
    def __init__(
        self, url: str, pool_size: int = 5, batch_size: int = 64, *, one_statement: bool = True
    ) -> None:
        self.url, pooler = _without_pooler(async_url(url))
        self.kind: Literal["sqlite", "postgresql"] = (
            "sqlite" if self.url.startswith("sqlite") else "postgresql"
        )
        if self.kind == "sqlite":
            self._prepare_sqlite_path()
            engine = create_async_engine(self.url, connect_args={"timeout": 30})
            event.listen(engine.sync_engine, "connect", _sqlite_connect)
            event.listen(engine.sync_engine, "begin", sqlite_begin)
        else:
            # A small, fixed pool. More connections than cores only queue on the hot tier row
            # inside PostgreSQL; and an overflow connection is closed when returned, so under
            # load it would be reopened (prepared statements lost) again and again.
            engine = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=0,
                connect_args=_pooler_args(pooler),
            )
        self.engine = engine
        engines = Engines.of(engine, self.kind, pooled=pooler == "pgbouncer")
        self.users = SQLUsers(engines, self.kind)
        self.partners = SQLPartners(engines, self.kind)
        self.tokens = SQLTokens(engines, self.kind)
        self.events = SQLEvents(engines, self.kind)
        self.bookings = booking_store(engines, self.kind, batch_size, one_statement)
        self.orders = SQLOrders(engines, self.kind)
        self.changes = SQLChanges(engines, self.kind)
        self.webhooks = SQLWebhooks(engines, self.kind)
        self.mail = SQLMail(engines, self.kind)
        self.resets = SQLResets(engines, self.kind)
        self.checkin = SQLCheckin(engines, self.kind)
        self.email_codes = SQLEmailCodes(engines, self.kind)
        self.waitlist = SQLWaitlist(engines, self.kind)
        self.codes = SQLCodes(engines, self.kind)

    def _prepare_sqlite_path(self) -> None:
        database = make_url(self.url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    async def migrate(self) -> None:
        from core.storage.migrations import upgrade

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def booking_store(
    engines: Engines, kind: str, batch_size: int, one_statement: bool = True
) -> Bookings:
    """The booking path on SQL, each part built here and passed in (the variants: the table
    in core/storage/reserving.py). `batch_size` 1 turns group commit off; `one_statement`
    False sends PostgreSQL's unbatched bookings through the short transaction instead."""
    db = SQLBase(engines, kind)
    sweeper = Sweeper(lambda now, event_id, tier: release_expired_alone(db, now, event_id, tier))
    transaction = reserve.Alone(db, reserve.InTransaction(db))
    batcher = None
    unlimited = transaction
    if kind == "postgresql":
        if one_statement:
            unlimited = reserve.Alone(db, reserve.OneStatement(db))
        batch: Batch = reserve.BatchStatement(db)
    else:
        batch = reserve.BatchInTransaction(db)
    if batch_size > 1:
        # PostgreSQL: while one batch of a tier runs, the next can already be on its way (the
        # tier row's lock orders them inside the database); SQLite has one writer anyway.
        batcher = ReserveBatcher(
            batch.reserve_batch,
            unlimited.reserve,
            max_size=batch_size,
            in_flight=2 if kind == "postgresql" else 1,
            fallback_in_parallel=kind == "postgresql",
        )
    return Bookings(
        reserver=Reserver(
            limited=transaction,
            unlimited=unlimited,
            claimed=reserve.Alone(db, claims.Claimed(db)),
            sweeper=sweeper,
            batcher=batcher,
        ),
        sweeper=sweeper,
        recount=Recount(sweeper, Counters(db)),
        rows=SQLBookings(engines, kind),
    )


def _without_pooler(url: str) -> tuple[str, str | None]:
    """The URL without its `pooler` parameter (asyncpg would refuse it), and that pooler."""
    parsed = make_url(url)
    pooler = parsed.query.get("pooler")
    if isinstance(pooler, tuple):
        pooler = pooler[-1]
    if pooler not in (None, "pgbouncer"):
        raise ValueError(f"unknown pooler {pooler!r} in DATABASE_URL: use pooler=pgbouncer")
    return parsed.difference_update_query(["pooler"]).render_as_string(False), pooler


def _pooler_args(pooler: str | None) -> dict[str, Any]:
    """asyncpg's arguments for what stands in front of PostgreSQL.

    PgBouncer in transaction mode gives each transaction whichever server connection is free,
    so a statement prepared in one transaction is unknown (or, by name, already taken) in the
    next. Its `max_prepared_statements` (1.21+) would track them, but Debian 12 ships 1.18:
    no statement cache then, and unique names for the statements SQLAlchemy still prepares
    within a transaction. Measured cost: README, "PostgreSQL through PgBouncer"."""
    if pooler != "pgbouncer":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
    # The driver would emit its own deferred BEGIN; `sqlite_begin` emits the right one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
