"""SQLAlchemy 2 async backend for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Seats are guarded by a conditional UPDATE of the tier row (`active + q <= capacity`) inside
the statement or transaction that inserts the booking. On PostgreSQL, when no per-user limit
applies, both happen in one statement (a data-modifying CTE) run in autocommit mode, so the
hot row's lock is held only inside the database, never across an event-loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.metrics import CONFLICTS_RETRIED, HOLDS_EXPIRED
from core.storage import sql_schema as t
from core.storage.port import (
    BookingExpired,
    CapacityBelowActive,
    DuplicateKey,
    HasActiveBookings,
    InvalidTransition,
    NotPending,
    SpendOutcome,
    StorageBusy,
    VersionMismatch,
)
from core.storage.records import (
    ACTIVE_STATUSES,
    Booking,
    BookingQuery,
    Drift,
    Event,
    EventQuery,
    EventStatus,
    Partner,
    RefreshToken,
    ReserveRequest,
    ReserveResult,
    Role,
    Tier,
    TierCount,
    TierPatch,
    User,
    as_fields,
    from_fields,
)

MAX_ATTEMPTS = 8
TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock


def async_url(url: str) -> str:
    """Map DATABASE_URL to the async driver SQLAlchemy should use."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _is_transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in TRANSIENT_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


class SQLBase:
    def __init__(
        self,
        engine: AsyncEngine,
        autocommit: AsyncEngine,
        dialect: str,
        writer: asyncio.Lock | None,
    ) -> None:
        self.engine = engine
        self.autocommit = autocommit
        self.dialect = dialect
        self.insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.writer = writer or contextlib.nullcontext()

    async def tx[R](self, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """Run `work` in a transaction, retrying conflicts with bounded, jittered backoff."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.writer, self.engine.begin() as conn:
                    return await work(conn)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) or not _is_transient(exc):
                    raise
                CONFLICTS_RETRIED.labels(self.dialect).inc()
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
        raise StorageBusy("too much contention; try again")

    async def one(self, stmt: Any) -> Row[Any] | None:
        async with self.autocommit.connect() as conn:
            return (await conn.execute(stmt)).first()

    async def all(self, stmt: Any) -> Sequence[Row[Any]]:
        async with self.autocommit.connect() as conn:
            return (await conn.execute(stmt)).all()


def _user(row: Row[Any]) -> User:
    return from_fields(User, row._mapping)


def _partner(row: Row[Any]) -> Partner:
    return from_fields(Partner, row._mapping)


def _booking(row: Row[Any]) -> Booking:
    return from_fields(Booking, row._mapping)


class SQLUsers(SQLBase):
    async def create(self, user: User) -> User:
        try:
            await self.tx(
                lambda c: c.execute(
                    insert(t.users).values(
                        id=user.id,
                        email=user.email,
                        name=user.name,
                        role=user.role,
                        password_hash=user.password_hash,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                    )
                )
            )
        except IntegrityError:
            raise DuplicateKey("email") from None
        return user

    async def get(self, user_id: str) -> User | None:
        row = await self.one(select(t.users).where(t.users.c.id == user_id))
        return _user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = await self.one(select(t.users).where(t.users.c.email == email.lower()))
        return _user(row) if row else None

    async def set_role(self, user_id: str, role: Role, now: datetime) -> User | None:
        stmt = (
            update(t.users)
            .where(t.users.c.id == user_id)
            .values(role=role, updated_at=now)
            .returning(*t.users.c)
        )
        row = await self.tx(lambda c: _first(c, stmt))
        return _user(row) if row else None


class SQLPartners(SQLBase):
    async def create(self, partner: Partner) -> Partner:
        values = {
            "id": partner.id,
            "name": partner.name,
            "client_id": partner.client_id,
            "secret_hash": partner.secret_hash,
            "created_at": partner.created_at,
        }
        await self.tx(lambda c: c.execute(insert(t.partners).values(**values)))
        return partner

    async def get(self, partner_id: str) -> Partner | None:
        row = await self.one(select(t.partners).where(t.partners.c.id == partner_id))
        return _partner(row) if row else None

    async def get_by_client_id(self, client_id: str) -> Partner | None:
        row = await self.one(select(t.partners).where(t.partners.c.client_id == client_id))
        return _partner(row) if row else None

    async def set_secret(self, partner_id: str, secret_hash: str) -> Partner | None:
        stmt = (
            update(t.partners)
            .where(t.partners.c.id == partner_id)
            .values(secret_hash=secret_hash)
            .returning(*t.partners.c)
        )
        row = await self.tx(lambda c: _first(c, stmt))
        return _partner(row) if row else None


class SQLTokens(SQLBase):
    async def add(self, token: RefreshToken) -> None:
        stmt = insert(t.refresh_tokens).values(
            jti=token.jti,
            family_id=token.family_id,
            user_id=token.user_id,
            expires_at=token.expires_at,
            revoked=False,
        )
        await self.tx(lambda c: c.execute(stmt))

    async def spend(self, jti: str, now: datetime) -> SpendOutcome:
        rt = t.refresh_tokens
        stmt = (
            update(rt)
            .where(rt.c.jti == jti, rt.c.spent_at.is_(None), rt.c.revoked.is_(False))
            .values(spent_at=now)
            .returning(rt.c.jti)
        )
        if await self.tx(lambda c: _first(c, stmt)):
            return "ok"
        exists = await self.one(select(rt.c.jti).where(rt.c.jti == jti))
        return "spent" if exists else "unknown"

    async def revoke_family(self, family_id: str) -> None:
        rt = t.refresh_tokens
        stmt = update(rt).where(rt.c.family_id == family_id).values(revoked=True)
        await self.tx(lambda c: c.execute(stmt))


async def _first(
    conn: AsyncConnection, stmt: Any, params: dict[str, Any] | None = None
) -> Row[Any] | None:
    return (await conn.execute(stmt, params)).first()


class SQLEvents(SQLBase):
    async def create(self, ev: Event) -> Event:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(t.events).values(**_event_values(ev)))
            await conn.execute(
                insert(t.tiers),
                [
                    _tier_values(ev.id, tier, pos, ev.status == "published")
                    for pos, tier in enumerate(ev.tiers)
                ],
            )

        try:
            await self.tx(work)
        except IntegrityError:
            raise DuplicateKey("id") from None
        return ev

    async def get(self, event_id: str, *, include_deleted: bool = False) -> Event | None:
        async with self.autocommit.connect() as conn:
            return await self._get(conn, event_id, include_deleted)

    async def _get(
        self, conn: AsyncConnection, event_id: str, include_deleted: bool = False
    ) -> Event | None:
        stmt = select(t.events).where(t.events.c.id == event_id)
        if not include_deleted:
            stmt = stmt.where(t.events.c.deleted_at.is_(None))
        row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        tier_map = await self._tiers(conn, [event_id])
        return _event(row, tier_map[event_id])

    async def _tiers(self, conn: AsyncConnection, event_ids: list[str]) -> dict[str, list[Tier]]:
        rows = await conn.execute(
            select(t.tiers).where(t.tiers.c.event_id.in_(event_ids)).order_by(t.tiers.c.position)
        )
        out: dict[str, list[Tier]] = defaultdict(list)
        for r in rows:
            out[r.event_id].append(from_fields(Tier, r._mapping))
        return out

    async def find(self, query: EventQuery) -> list[Event]:
        e = t.events
        stmt = select(e).where(e.c.deleted_at.is_(None), e.c.status.in_(query.statuses))
        if query.owner_id:
            stmt = stmt.where(e.c.owner_id == query.owner_id)
        if query.starts_from:
            stmt = stmt.where(e.c.starts_at >= query.starts_from)
        if query.starts_to:
            stmt = stmt.where(e.c.starts_at <= query.starts_to)
        if query.text:
            stmt = self._search(stmt, query.text).offset(query.offset)
        else:
            if query.after_id:
                stmt = stmt.where(e.c.id > query.after_id)
            stmt = stmt.order_by(e.c.id)
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(stmt.limit(query.limit))).all()
            tier_map = await self._tiers(conn, [r.id for r in rows])
        return [_event(r, tier_map[r.id]) for r in rows]

    def _search(self, stmt: Any, text_query: str) -> Any:
        e = t.events
        words = [w for w in "".join(c if c.isalnum() else " " for c in text_query).split() if w]
        if not words:
            return stmt.where(literal(False))
        if self.dialect == "postgresql":
            document = func.to_tsvector("english", e.c.name + " " + e.c.venue)
            tsquery = func.plainto_tsquery("english", " ".join(words))
            return stmt.where(document.op("@@")(tsquery)).order_by(
                func.ts_rank(document, tsquery).desc(), e.c.id
            )
        match = " ".join(f'"{w}"' for w in words)
        fts = (
            text(
                "SELECT event_id, bm25(events_fts, 0.0, 2.0, 1.0) AS rank FROM events_fts "
                "WHERE events_fts MATCH :match"
            )
            .bindparams(match=match)
            .columns(event_id=t.events.c.id.type, rank=t.tiers.c.capacity.type)
            .subquery()
        )
        return stmt.join(fts, fts.c.event_id == e.c.id).order_by(fts.c.rank, e.c.id)

    async def update(
        self,
        event_id: str,
        *,
        expected_version: int | None,
        fields: dict[str, Any],
        tiers: Sequence[TierPatch],
        now: datetime,
    ) -> Event | None:
        async def work(conn: AsyncConnection) -> Event | None:
            e = t.events
            cond = [e.c.id == event_id, e.c.deleted_at.is_(None)]
            if expected_version is not None:
                cond.append(e.c.version == expected_version)
            row = await _first(
                conn,
                update(e)
                .where(*cond)
                .values(**fields, version=e.c.version + 1, updated_at=now)
                .returning(e.c.status),
            )
            if row is None:
                current = await self._get(conn, event_id)
                if current is None:
                    return None
                raise VersionMismatch(current.version)
            for patch in tiers:
                await self._patch_tier(conn, event_id, patch, row.status == "published", now)
            return await self._get(conn, event_id)

        return await self.tx(work)

    async def _patch_tier(
        self, conn: AsyncConnection, event_id: str, patch: TierPatch, on_sale: bool, now: datetime
    ) -> None:
        tr = t.tiers
        where = and_(tr.c.event_id == event_id, tr.c.code == patch.code)
        existing = (await conn.execute(select(tr.c.active).where(where))).first()
        if existing is None:
            position = (
                await conn.execute(select(func.count()).where(tr.c.event_id == event_id))
            ).scalar_one()
            tier = Tier(
                patch.code, patch.name or patch.code, patch.price_cents or 0, patch.capacity or 0
            )
            await conn.execute(insert(tr).values(**_tier_values(event_id, tier, position, on_sale)))
            return
        values: dict[str, Any] = {
            k: v
            for k, v in (("name", patch.name), ("price_cents", patch.price_cents))
            if v is not None
        }
        if patch.capacity is not None:
            await _release_expired(conn, now, event_id, patch.code)
            values["capacity"] = patch.capacity
            values["version"] = tr.c.version + 1
            where = and_(where, tr.c.active <= patch.capacity)
        if values and (await conn.execute(update(tr).where(where).values(**values))).rowcount == 0:
            active = (
                await conn.execute(
                    select(tr.c.active).where(tr.c.event_id == event_id, tr.c.code == patch.code)
                )
            ).scalar_one()
            raise CapacityBelowActive(patch.code, active)

    async def transition(
        self, event_id: str, allowed_from: Sequence[EventStatus], to: EventStatus, now: datetime
    ) -> Event | None:
        async def work(conn: AsyncConnection) -> Event | None:
            e = t.events
            changed = await conn.execute(
                update(e)
                .where(e.c.id == event_id, e.c.deleted_at.is_(None), e.c.status.in_(allowed_from))
                .values(status=to, version=e.c.version + 1, updated_at=now)
            )
            if changed.rowcount == 0:
                current = await self._get(conn, event_id)
                if current is None:
                    return None
                raise InvalidTransition(current.status)
            tier_values: dict[str, Any] = {"on_sale": to == "published"}
            if to == "cancelled":
                await _release_all(conn, event_id, now)
                tier_values.update(active=0, version=t.tiers.c.version + 1)
            await conn.execute(
                update(t.tiers).where(t.tiers.c.event_id == event_id).values(**tier_values)
            )
            return await self._get(conn, event_id)

        return await self.tx(work)

    async def soft_delete(self, event_id: str, now: datetime) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            if await self._get(conn, event_id) is None:
                return False
            await _release_expired(conn, now, event_id)
            active = (
                await conn.execute(
                    select(func.coalesce(func.sum(t.tiers.c.active), 0)).where(
                        t.tiers.c.event_id == event_id
                    )
                )
            ).scalar_one()
            if active:
                raise HasActiveBookings()
            await conn.execute(
                update(t.events)
                .where(t.events.c.id == event_id)
                .values(deleted_at=now, updated_at=now, version=t.events.c.version + 1)
            )
            await conn.execute(
                update(t.tiers).where(t.tiers.c.event_id == event_id).values(on_sale=False)
            )
            return True

        return await self.tx(work)

    async def availability(self, event_id: str, now: datetime) -> list[TierCount]:
        b = t.bookings
        counted = (
            select(
                b.c.tier,
                func.sum(case((b.c.status == "pending", b.c.quantity), else_=0)).label("pending"),
                func.sum(case((b.c.status == "confirmed", b.c.quantity), else_=0)).label(
                    "confirmed"
                ),
            )
            .where(
                b.c.event_id == event_id,
                or_(b.c.status == "confirmed", and_(b.c.status == "pending", b.c.expires_at > now)),
            )
            .group_by(b.c.tier)
            .subquery()
        )
        stmt = (
            select(t.tiers.c.code, t.tiers.c.capacity, counted.c.pending, counted.c.confirmed)
            .select_from(t.tiers.outerjoin(counted, counted.c.tier == t.tiers.c.code))
            .where(t.tiers.c.event_id == event_id)
            .order_by(t.tiers.c.position)
        )
        rows = await self.all(stmt)
        return [
            TierCount(r.code, r.capacity, int(r.pending or 0), int(r.confirmed or 0)) for r in rows
        ]


def _event_values(ev: Event) -> dict[str, Any]:
    return as_fields(ev, exclude=("tiers",))


def _tier_values(event_id: str, tier: Tier, position: int, on_sale: bool) -> dict[str, Any]:
    new = {"active": 0, "version": 0, "on_sale": on_sale, "position": position}
    return {"event_id": event_id, **as_fields(tier), **new}


def _event(row: Row[Any], tier_list: list[Tier]) -> Event:
    return from_fields(Event, row._mapping, tiers=tuple(tier_list))


async def _give_back(conn: AsyncConnection, released: Sequence[Row[Any]]) -> None:
    """Return released bookings' seats to their tiers and owners' per-event counts."""
    per_tier: dict[tuple[str, str], int] = defaultdict(int)
    per_owner: dict[tuple[str, str], int] = defaultdict(int)
    for r in released:
        per_tier[(r.event_id, r.tier)] += r.quantity
        per_owner[(r.event_id, r.owner_id)] += r.quantity
    for (event_id, code), seats in sorted(per_tier.items()):  # fixed order: no deadlocks
        await conn.execute(
            update(t.tiers)
            .where(t.tiers.c.event_id == event_id, t.tiers.c.code == code)
            .values(active=t.tiers.c.active - seats, version=t.tiers.c.version + 1)
        )
    u = t.user_event_counts
    for (event_id, owner_id), seats in sorted(per_owner.items()):
        await conn.execute(
            update(u)
            .where(u.c.event_id == event_id, u.c.owner_id == owner_id)
            .values(active=u.c.active - seats)
        )


async def _release_expired(
    conn: AsyncConnection, now: datetime, event_id: str | None = None, tier: str | None = None
) -> int:
    b = t.bookings
    cond = [b.c.status == "pending", b.c.expires_at <= now]
    if event_id is not None:
        cond.append(b.c.event_id == event_id)
    if tier is not None:
        cond.append(b.c.tier == tier)
    released = (
        await conn.execute(
            update(b)
            .where(*cond)
            .values(status="expired", updated_at=now)
            .returning(b.c.event_id, b.c.tier, b.c.owner_id, b.c.quantity)
        )
    ).all()
    await _give_back(conn, released)
    return len(released)


async def _release_all(conn: AsyncConnection, event_id: str, now: datetime) -> None:
    b = t.bookings
    expired = and_(b.c.status == "pending", b.c.expires_at <= now)
    await conn.execute(
        update(b)
        .where(b.c.event_id == event_id, b.c.status.in_(ACTIVE_STATUSES))
        .values(status=case((expired, "expired"), else_="cancelled"), updated_at=now)
    )
    await conn.execute(
        delete(t.user_event_counts).where(t.user_event_counts.c.event_id == event_id)
    )


def _reserve_statements() -> tuple[Any, Any, Any]:
    """Built once, so SQLAlchemy compiles them once: the booking path only binds values.

    TAKE_SEATS is the conditional update that guards the invariant; RESERVE_IN_ONE_STATEMENT
    feeds it into the booking INSERT (PostgreSQL's data-modifying CTE). Parameters are the
    booking's column names prefixed `b_`.
    """
    b = t.bookings
    columns = [c.name for c in b.c if c.name != "unit_price_cents"]
    take_seats = (
        "UPDATE tiers SET active = active + :b_quantity, version = version + 1 "
        "WHERE event_id = :b_event_id AND code = :b_tier AND on_sale "
        "AND active + :b_quantity <= capacity RETURNING price_cents"
    )
    # Identifiers come from the schema; every value is a bound parameter.
    in_one = (
        f"WITH seats AS ({take_seats}) "  # noqa: S608
        f"INSERT INTO bookings ({', '.join(columns)}, unit_price_cents) "
        f"SELECT {', '.join(f':b_{name}' for name in columns)}, seats.price_cents FROM seats "
        f"RETURNING {', '.join(c.name for c in b.c)}"
    )
    binds = [bindparam(f"b_{name}", type_=b.c[name].type) for name in columns]
    seats_binds = [bp for bp in binds if bp.key in ("b_quantity", "b_event_id", "b_tier")]
    return (
        text(take_seats).bindparams(*seats_binds).columns(t.tiers.c.price_cents),
        text(in_one).bindparams(*binds).columns(*b.c),
        insert(b).returning(*b.c),
    )


TAKE_SEATS, RESERVE_IN_ONE_STATEMENT, INSERT_BOOKING = _reserve_statements()


class _CompiledForAsyncpg:
    """RESERVE_IN_ONE_STATEMENT as asyncpg's positional SQL and the parameter order."""

    def __init__(self) -> None:
        dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
        compiled = RESERVE_IN_ONE_STATEMENT.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names: list[str] = list(compiled.positiontup or [])


PG_RESERVE = _CompiledForAsyncpg()


def _prefixed(values: dict[str, Any]) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in values.items()}


class _Refused(Exception):
    """Raised inside a reserve transaction to roll it back when the seats are not there."""


class SQLBookings(SQLBase):
    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        for attempt in range(2):
            result = await self._reserve_once(req)
            if result.outcome not in ("sold_out", "per_user_limit") or attempt:
                return result
            # An expired hold must never block a sale: give its seats back, then try again.
            if not await self.release_expired(req.now, req.event_id, req.tier):
                return result
        raise AssertionError("unreachable")

    async def _reserve_once(self, req: ReserveRequest) -> ReserveResult:
        row: Row[Any] | ReserveResult | None
        try:
            if self.dialect == "postgresql" and req.max_per_user is None:
                booking = await self._reserve_in_one_statement(req)
                if booking is not None:
                    return ReserveResult("created", booking)
                row = None
            else:
                row = await self.tx(lambda conn: self._reserve_in_tx(conn, req))
        except _Refused:
            row = None
        except (IntegrityError, UniqueViolationError) as exc:
            reason = str(getattr(exc, "orig", exc))  # the driver's words, not the SQL
            if req.idempotency_key and "ticket_number" not in reason:
                existing = await self.get_by_key(req.owner_id, req.idempotency_key)
                if existing is not None:
                    return ReserveResult("existing", existing)
            raise
        if isinstance(row, ReserveResult):
            return row
        if row is not None:
            return ReserveResult("created", _booking(row))
        return await self._refusal(req)

    async def _reserve_in_one_statement(self, req: ReserveRequest) -> Booking | None:
        """The hot path on PostgreSQL: one autocommit statement, sent straight through the
        pooled asyncpg connection (SQLAlchemy compiled it once; its per-call execution
        machinery would cost more than the statement)."""
        params = _prefixed(self._booking_values(req))
        async with self.autocommit.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            record = await driver.fetchrow(
                PG_RESERVE.sql, *(params[name] for name in PG_RESERVE.names)
            )
        return None if record is None else from_fields(Booking, record)

    def _booking_values(self, req: ReserveRequest) -> dict[str, Any]:
        return {
            "id": req.booking_id,
            "ticket_number": req.ticket_number,
            "event_id": req.event_id,
            "tier": req.tier,
            "quantity": req.quantity,
            "currency": "USD",
            "status": "pending" if req.hold_until else "confirmed",
            "expires_at": req.hold_until,
            "owner_id": req.owner_id,
            "partner_id": req.partner_id,
            "external_ref": req.external_ref,
            "idempotency_key": req.idempotency_key,
            "request_hash": req.request_hash,
            "created_at": req.now,
            "updated_at": req.now,
        }

    async def _reserve_in_tx(
        self, conn: AsyncConnection, req: ReserveRequest
    ) -> Row[Any] | ReserveResult | None:
        if req.max_per_user is not None:
            u = t.user_event_counts
            insert_count = self.insert(u).values(
                event_id=req.event_id, owner_id=req.owner_id, active=req.quantity
            )
            upsert = insert_count.on_conflict_do_update(
                index_elements=[u.c.event_id, u.c.owner_id],
                set_={"active": u.c.active + req.quantity},
                where=u.c.active + req.quantity <= req.max_per_user,
            ).returning(u.c.active)
            if (await _first(conn, upsert)) is None:
                return ReserveResult("per_user_limit")
        values = self._booking_values(req)
        if self.dialect == "postgresql":
            row = await _first(conn, RESERVE_IN_ONE_STATEMENT, _prefixed(values))
        else:
            price = await _first(conn, TAKE_SEATS, _prefixed(values))
            row = None
            if price is not None:
                values["unit_price_cents"] = price.price_cents
                row = await _first(conn, INSERT_BOOKING, values)
        if row is None and req.max_per_user is not None:
            raise _Refused()  # undo the per-user count taken above
        return row

    async def _refusal(self, req: ReserveRequest) -> ReserveResult:
        tr = t.tiers
        row = await self.one(select(tr).where(tr.c.event_id == req.event_id, tr.c.code == req.tier))
        if row is None:
            return ReserveResult("no_tier")
        if not row.on_sale:
            return ReserveResult("not_on_sale")
        return ReserveResult("sold_out", available=max(0, row.capacity - row.active))

    async def confirm(self, booking_id: str, owner_id: str, now: datetime) -> Booking | None:
        b = t.bookings
        stmt = (
            update(b)
            .where(
                b.c.id == booking_id,
                b.c.owner_id == owner_id,
                b.c.status == "pending",
                b.c.expires_at > now,
            )
            .values(status="confirmed", expires_at=None, updated_at=now)
            .returning(*b.c)
        )
        row = await self.tx(lambda c: _first(c, stmt))
        if row is not None:
            return _booking(row)
        current = await self.get(booking_id)
        if current is None or current.owner_id != owner_id:
            return None
        if current.status == "pending" or current.status == "expired":
            raise BookingExpired()
        raise NotPending(current.status)

    async def cancel(self, booking_id: str, owner_id: str | None, now: datetime) -> Booking | None:
        b = t.bookings

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            cond = [
                b.c.id == booking_id,
                or_(b.c.status == "confirmed", and_(b.c.status == "pending", b.c.expires_at > now)),
            ]
            if owner_id is not None:
                cond.append(b.c.owner_id == owner_id)
            row = await _first(
                conn,
                update(b).where(*cond).values(status="cancelled", updated_at=now).returning(*b.c),
            )
            if row is not None:
                await _give_back(conn, [row])
            return row

        row = await self.tx(work)
        if row is not None:
            return _booking(row)
        current = await self.get(booking_id)
        if current is None or (owner_id is not None and current.owner_id != owner_id):
            return None
        raise NotPending("expired" if current.status == "pending" else current.status)

    async def get(self, booking_id: str) -> Booking | None:
        row = await self.one(select(t.bookings).where(t.bookings.c.id == booking_id))
        return _booking(row) if row else None

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        b = t.bookings
        row = await self.one(
            select(b).where(b.c.owner_id == owner_id, b.c.idempotency_key == idempotency_key)
        )
        return _booking(row) if row else None

    async def find(self, query: BookingQuery) -> list[Booking]:
        b = t.bookings
        stmt = select(b)
        if query.owner_id:
            stmt = stmt.where(b.c.owner_id == query.owner_id)
        if query.event_id:
            stmt = stmt.where(b.c.event_id == query.event_id)
        if query.status:
            stmt = stmt.where(b.c.status == query.status)
        if query.before_id:
            stmt = stmt.where(b.c.id < query.before_id)
        rows = await self.all(stmt.order_by(b.c.id.desc()).limit(query.limit))
        return [_booking(r) for r in rows]

    async def count_active(self, event_id: str, now: datetime) -> int:
        b = t.bookings
        stmt = select(func.count()).where(
            b.c.event_id == event_id,
            or_(b.c.status == "confirmed", and_(b.c.status == "pending", b.c.expires_at > now)),
        )
        row = await self.one(stmt)
        return int(row[0]) if row else 0

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self.tx(lambda c: _release_expired(c, now, event_id, tier))
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        await self.release_expired(now)

        async def work(conn: AsyncConnection) -> list[Drift]:
            b, tr = t.bookings, t.tiers
            actual = (
                select(b.c.event_id, b.c.tier, func.sum(b.c.quantity).label("seats"))
                .where(b.c.status.in_(ACTIVE_STATUSES))
                .group_by(b.c.event_id, b.c.tier)
                .subquery()
            )
            rows = await conn.execute(
                select(
                    tr.c.event_id,
                    tr.c.code,
                    tr.c.active,
                    func.coalesce(actual.c.seats, 0).label("seats"),
                ).select_from(
                    tr.outerjoin(
                        actual, and_(actual.c.event_id == tr.c.event_id, actual.c.tier == tr.c.code)
                    )
                )
            )
            drifts = [
                Drift(r.event_id, r.code, r.active, int(r.seats))
                for r in rows
                if r.active != r.seats
            ]
            if fix:
                for d in drifts:
                    await conn.execute(
                        update(tr)
                        .where(tr.c.event_id == d.event_id, tr.c.code == d.tier)
                        .values(active=d.actual, version=tr.c.version + 1)
                    )
                await self._recount_owners(conn)
            return drifts

        return await self.tx(work)

    async def _recount_owners(self, conn: AsyncConnection) -> None:
        b, u = t.bookings, t.user_event_counts
        await conn.execute(delete(u))
        await conn.execute(
            insert(u).from_select(
                ["event_id", "owner_id", "active"],
                select(b.c.event_id, b.c.owner_id, func.sum(b.c.quantity))
                .where(b.c.status.in_(ACTIVE_STATUSES))
                .group_by(b.c.event_id, b.c.owner_id),
            )
        )


class SQLStorage:
    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.url = async_url(url)
        self.kind: Literal["sqlite", "postgresql"] = (
            "sqlite" if self.url.startswith("sqlite") else "postgresql"
        )
        if self.kind == "sqlite":
            self._prepare_sqlite_path()
            engine = create_async_engine(self.url, connect_args={"timeout": 30})
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A small, fixed pool. More connections than cores only queue on the hot tier row
            # inside PostgreSQL; and an overflow connection is closed when returned, so under
            # load it would be reopened (prepared statements lost) again and again.
            engine = create_async_engine(self.url, pool_size=pool_size, max_overflow=0)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.engine = engine
        # SQLite has one writer at a time: queue this process's writers here, where waiting is
        # cheap, instead of in SQLite's busy handler, which sleeps up to 100 ms per retry.
        writer = asyncio.Lock() if self.kind == "sqlite" else None
        parts = (engine, autocommit, self.kind, writer)
        self.users = SQLUsers(*parts)
        self.partners = SQLPartners(*parts)
        self.tokens = SQLTokens(*parts)
        self.events = SQLEvents(*parts)
        self.bookings = SQLBookings(*parts)

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


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
