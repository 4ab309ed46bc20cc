"""What every SQL store shares: connections, transactions with retries, and the one place
where driver errors become the port's errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncpg.exceptions import InterfaceError as AsyncpgInterfaceError
from asyncpg.exceptions import InternalClientError, PostgresConnectionError, PostgresError
from sqlalchemy import ColumnElement, Connection, Row, Table, and_, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.storage import key_claims, retries
from core.storage.errors import DuplicateKey, StorageUnavailable
from core.storage.sql import schema as t

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None  # type: ignore[assignment]

READ_ATTEMPTS = 3
CONNECTION_LOST = (
    PostgresConnectionError,
    AsyncpgInterfaceError,
    InternalClientError,  # asyncpg's protocol state after its connection was cut mid-operation
    ConnectionError,
)
LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")  # connection exceptions, shutdowns
TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
UNIQUE_VIOLATION = "23505"

# The port names a taken unique key by what it means; PostgreSQL reports the constraint's name
# (its defaults: <table>_pkey, <table>_<column>_key), SQLite the table and columns.
UNIQUE_KEYS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("users", ("id",), "users_pkey", "id"),
    ("users", ("email",), "users_email_key", "email"),
    ("partners", ("id",), "partners_pkey", "id"),
    ("partners", ("client_id",), "partners_client_id_key", "client_id"),
    ("events", ("id",), "events_pkey", "id"),
    ("tiers", ("event_id", "code"), "tiers_pkey", "tier"),
    ("bookings", ("id",), "bookings_pkey", "id"),
    ("bookings", ("ticket_number",), "bookings_ticket_number_key", "ticket_number"),
    ("bookings", ("owner_id", "idempotency_key"), "uq_bookings_owner_key", "idempotency_key"),
    ("refresh_tokens", ("jti",), "refresh_tokens_pkey", "jti"),
    ("changes", ("id",), "changes_pkey", "change_id"),
    ("orders", ("id",), "orders_pkey", "order_id"),
    ("orders", ("owner_id", "idempotency_key"), "uq_orders_owner_key", "order_key"),
    ("webhooks", ("id",), "webhooks_pkey", "webhook_id"),
    ("mail", ("id",), "mail_pkey", "mail_id"),
    ("checkin_keys", ("event_id", "kid"), "checkin_keys_pkey", "kid"),
    ("checkin_lists", ("id",), "checkin_lists_pkey", "list_id"),
    ("scanners", ("id",), "scanners_pkey", "scanner_id"),
    ("scanners", ("token_hash",), "scanners_token_hash_key", "token_hash"),
    ("waitlist_entries", ("live_key",), "waitlist_entries_live_key_key", "waitlist_entry"),
    ("access_codes", ("event_id", "code"), "uq_access_codes_event_code", "access_code"),
    ("idempotency_keys", ("owner_id", "key"), "idempotency_keys_pkey", key_claims.FIELD),
]
_BY_CONSTRAINT = {name: key for _, _, name, key in UNIQUE_KEYS}
_BY_COLUMNS = {(table, columns): key for table, columns, _, key in UNIQUE_KEYS}
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")


def duplicate_key(exc: BaseException) -> DuplicateKey | None:
    """The port's DuplicateKey for a unique violation from either driver, else None."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    pg = orig if isinstance(orig, PostgresError) else getattr(orig, "__cause__", None)
    if isinstance(pg, PostgresError) and pg.sqlstate == UNIQUE_VIOLATION:
        name = getattr(pg, "constraint_name", None) or ""
        return DuplicateKey(_BY_CONSTRAINT.get(name, name))
    match = _SQLITE_UNIQUE.search(str(orig))
    if match is None:
        return None
    qualified = [c.strip().split(".", 1) for c in match.group(1).split(",")]
    table, columns = qualified[0][0], tuple(c[-1] for c in qualified)
    return DuplicateKey(_BY_COLUMNS.get((table, columns), ",".join(columns)))


def transient(exc: Exception) -> bool:
    """A conflict that rolled the transaction back, so running it again is safe."""
    if isinstance(exc, PostgresError):  # raised by the raw asyncpg hot path
        return exc.sqlstate in TRANSIENT_SQLSTATES
    if isinstance(exc, IntegrityError) or not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in TRANSIENT_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def connection_lost(exc: BaseException) -> bool:
    """The connection died under the statement (a restart, `pg_terminate_backend`, the network)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or connection_lost(exc.orig or Exception())
    if isinstance(exc, CONNECTION_LOST):
        return True
    if isinstance(exc, PostgresError) and str(exc.sqlstate).startswith(LOST_SQLSTATES):
        return True
    cause = exc.__cause__
    return cause is not None and connection_lost(cause)


class _LostBeforeCommit(Exception):
    """A transaction's connection died before its commit was sent: nothing was written."""


def _transient_or_lost(exc: Exception) -> bool:
    return isinstance(exc, _LostBeforeCommit) or transient(exc)


def hold_active(table: Table, now: datetime) -> ColumnElement[bool]:
    """The hold rule (records.hold_active) for a booking or order row: pending, not expired."""
    return and_(table.c.status == "pending", table.c.expires_at > now)


def hold_expired(table: Table, now: datetime) -> ColumnElement[bool]:
    """A hold past its expiry that the sweeper has not released yet."""
    return and_(table.c.status == "pending", table.c.expires_at <= now)


def active_at(now: datetime) -> ColumnElement[bool]:
    """The active-booking rule: confirmed, or a hold still active."""
    return or_(t.bookings.c.status == "confirmed", hold_active(t.bookings, now))


def before_start(event_id: ColumnElement[str], now: datetime) -> ColumnElement[bool]:
    """The sale rule a confirmation obeys too: the event of `event_id` has not started."""
    e = t.events
    return exists().where(e.c.id == event_id, e.c.starts_at > now)


def holds_seats() -> ColumnElement[bool]:
    """Bookings whose seats the counters include (expired holds until they are released)."""
    return t.bookings.c.status.in_(("pending", "confirmed"))


@dataclass(frozen=True, slots=True)
class Engines:
    """One pool, three ways to use it.

    `writer` runs read-write transactions (READ COMMITTED on PostgreSQL; BEGIN IMMEDIATE on
    SQLite, which takes the write lock up front instead of failing to upgrade a read lock),
    `reader` runs reads and single autocommit statements, `snapshot` runs read-only
    transactions whose statements all see one snapshot (REPEATABLE READ; SQLite's deferred
    BEGIN in WAL mode)."""

    writer: AsyncEngine
    reader: AsyncEngine
    snapshot: AsyncEngine
    lock: contextlib.AbstractAsyncContextManager[Any]
    """SQLite's writers queue here (see WriterLock); a no-op on PostgreSQL."""
    reads_in_transaction: bool = False
    """Behind PgBouncer in transaction mode: SQLAlchemy prepares a statement, then runs it;
    outside a transaction the two may reach different server connections, so a read (or
    single statement) runs in a transaction of its own there, committed at its end."""

    @classmethod
    def of(cls, engine: AsyncEngine, dialect: str, *, pooled: bool = False) -> Engines:
        if dialect == "sqlite":
            database = engine.url.database
            in_memory = not database or database == ":memory:" or database.startswith("file::")
            return cls(
                writer=engine.execution_options(sqlite_begin="BEGIN IMMEDIATE"),
                reader=engine,
                snapshot=engine,
                lock=WriterLock(None if in_memory else f"{database}.writer-lock"),
            )
        return cls(
            writer=engine,
            reader=engine if pooled else engine.execution_options(isolation_level="AUTOCOMMIT"),
            snapshot=engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ),
            lock=contextlib.nullcontext(),
            reads_in_transaction=pooled,
        )


class WriterLock:
    """SQLite has one writer at a time; its writers wait here rather than in SQLite's busy
    handler, which polls, sleeping up to 100 ms between tries: a process whose transactions
    follow one another back to back would starve the others' for seconds.

    A process's writers queue on an asyncio lock, and processes take turns on an flock of a
    file beside the database, which the kernel hands to the next waiter the moment it is
    released (closing the file releases it). Without fcntl (Windows) only the first applies.
    """

    def __init__(self, path: str | None) -> None:
        self.local = asyncio.Lock()
        self.path = path if fcntl else None
        self.fd: int | None = None

    async def __aenter__(self) -> None:
        await self.local.acquire()
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except BaseException:
            self.local.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
            try:
                await asyncio.shield(waiting)
            except BaseException:
                # Given up while the thread waits: let go of the file once the wait ends.
                waiting.add_done_callback(lambda _: self._release(fd))
                raise
        except BaseException:
            self._release(fd)
            raise
        self.fd = fd

    async def __aexit__(self, *_: object) -> None:
        fd, self.fd = self.fd, None
        self._release(fd)

    def _release(self, fd: int | None) -> None:
        if fd is not None:
            os.close(fd)
        self.local.release()


def sqlite_begin(conn: Connection) -> None:
    """The `begin` hook of SQLite engines (whose driver is told to emit no BEGIN itself)."""
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


class SQLBase:
    """A store's access to the database, shared by the stores of one SQLStorage."""

    def __init__(self, engines: Engines, dialect: str) -> None:
        self.engines = engines
        self.dialect = dialect
        self.upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def tx[R](self, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """Run `work` in a transaction, retrying conflicts with bounded, jittered backoff.

        A connection lost while `work` runs is retried too (the transaction rolled back). One
        lost while committing is not: the commit may have happened, so the caller gets
        StorageUnavailable and decides (a request retried with its Idempotency-Key replays).
        A unique violation becomes the port's DuplicateKey."""

        async def attempt() -> R:
            committing = False
            try:
                async with self.engines.lock, self.engines.writer.begin() as conn:
                    result = await work(conn)
                    committing = True
                return result
            except Exception as exc:
                if connection_lost(exc):
                    if committing:
                        raise StorageUnavailable("the connection broke during a commit") from exc
                    raise _LostBeforeCommit() from exc
                raise

        try:
            return await retries.retrying(attempt, _transient_or_lost, self.dialect)
        except IntegrityError as exc:
            raise duplicate_key(exc) or exc from None
        except _LostBeforeCommit as exc:
            raise StorageUnavailable("the database connection keeps failing") from exc

    async def read[R](
        self, work: Callable[[AsyncConnection], Awaitable[R]], *, snapshot: bool = False
    ) -> R:
        """Run the reads of `work` on one connection (in one snapshot of the database if
        `snapshot`), again on a fresh connection if this one is lost: reads are safe to
        repeat."""
        engine = self.engines.snapshot if snapshot else self.engines.reader
        for attempt in range(READ_ATTEMPTS):
            try:
                if snapshot or self.engines.reads_in_transaction:
                    async with engine.begin() as conn:
                        return await work(conn)
                async with engine.connect() as conn:
                    return await work(conn)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                if attempt == READ_ATTEMPTS - 1:
                    raise StorageUnavailable("the database connection keeps failing") from exc
                await retries.pause(attempt)
        raise AssertionError("unreachable")

    async def first(self, stmt: Any) -> Row[Any] | None:
        """The first row a read (or a single autocommit statement) returns."""
        return await self.read(lambda conn: first(conn, stmt))

    async def started(self, event_id: str, now: datetime) -> bool:
        """Whether the event has started (sales, confirmations included, are over)."""
        e = t.events
        return (
            await self.first(select(e.c.id).where(e.c.id == event_id, e.c.starts_at <= now))
            is not None
        )

    async def key_kind(self, owner_id: str, key: str) -> str | None:
        """What the caller's Idempotency-Key made (booking, order), None if nothing yet."""
        k = t.idempotency_keys
        row = await self.first(select(k.c.kind).where(k.c.owner_id == owner_id, k.c.key == key))
        return row.kind if row else None

    async def rows(self, stmt: Any) -> Sequence[Row[Any]]:
        async def fetch(conn: AsyncConnection) -> Sequence[Row[Any]]:
            return (await conn.execute(stmt)).all()

        return await self.read(fetch)


async def first(conn: AsyncConnection, stmt: Any, params: Any = None) -> Row[Any] | None:
    return (await conn.execute(stmt, params)).first()


async def claim_keys(conn: AsyncConnection, claims: Sequence[dict[str, Any]]) -> None:
    """Write these Idempotency-Key claims (key_claims.claim_values) in the caller's
    transaction; a taken one is DuplicateKey(key_claims.FIELD) and rolls all of it back."""
    if claims:
        await conn.execute(t.idempotency_keys.insert(), list(claims))


def async_url(url: str) -> str:
    """Map DATABASE_URL to the async driver SQLAlchemy should use."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
