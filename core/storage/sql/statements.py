"""The reserve statements, built once so SQLAlchemy compiles them once: the booking path
only binds values. PostgreSQL's are also compiled to asyncpg's positional SQL, which the hot
path sends straight through the pooled connection."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql

from core.storage import changelog
from core.storage.sql import schema as t

COLUMNS = [c.name for c in t.bookings.c]
_PRIVATE_REMOVED = "to_jsonb(ins)" + "".join(f" - '{name}'" for name in changelog.PRIVATE_FIELDS)


def _statements() -> tuple[Any, Any, Any]:
    """Built once, so SQLAlchemy compiles them once: the booking path only binds values.

    TAKE_SEATS is the guard of the invariant (seats blocked for the waiting list or access
    codes, and hidden tiers, are not for sale here: core/storage/sql/claims.py sells them). RESERVE_SEATS feeds it into the booking INSERT
    (a data-modifying CTE); RESERVE_COUNTED also adds the seats to the buyer's count. Each
    later part reads the guard's RETURNING row, so nothing is written unless the seats were
    taken. Parameters are the booking's column names plus `pending` (the seats held pending).
    """
    b = t.bookings
    columns = [name for name in COLUMNS if name != "unit_price_cents"]
    take_seats = (
        "UPDATE tiers SET active = active + :quantity, version = version + 1 "
        "WHERE event_id = :event_id AND code = :tier AND on_sale AND NOT hidden "
        "AND active + blocked + :quantity <= capacity RETURNING price_cents"
    )
    count_buyer = (
        "INSERT INTO user_event_counts (event_id, owner_id, active, pending) "
        "SELECT :event_id, :owner_id, :quantity, :pending FROM seats "
        "ON CONFLICT (event_id, owner_id) DO UPDATE SET "
        "active = user_event_counts.active + EXCLUDED.active, "
        "pending = user_event_counts.pending + EXCLUDED.pending"
    )
    # Identifiers come from the schema; every value is a bound parameter.
    insert = (
        f"INSERT INTO bookings ({', '.join(columns)}, unit_price_cents) "  # noqa: S608
        f"SELECT {', '.join(f':{name}' for name in columns)}, seats.price_cents FROM seats "
        f"RETURNING {', '.join(COLUMNS)}"
    )
    binds = [bindparam(name, type_=b.c[name].type) for name in columns]
    seats_binds = [bp for bp in binds if bp.key in ("quantity", "event_id", "tier")]
    extra = [
        bindparam("pending", type_=b.c.quantity.type),
        bindparam("change_id", type_=t.changes.c.id.type),
        bindparam("actor_kind", type_=t.changes.c.actor_kind.type),
        bindparam("actor_id", type_=t.changes.c.actor_id.type),
        bindparam("claim_key", type_=t.idempotency_keys.c.key.type),
    ]
    # PostgreSQL's one statement also records the booking's change, from the inserted row.
    record_change = (
        "INSERT INTO changes (id, type, occurred_at, actor_kind, actor_id, subject, "  # noqa: S608
        "subject_id, seq, event_id, booking_id, owner_id, partner_id, data) "
        "SELECT :change_id, 'booking.created', ins.created_at, :actor_kind, :actor_id, "
        "'booking', ins.id, ins.version, ins.event_id, ins.id, ins.owner_id, ins.partner_id, "
        f"{_PRIVATE_REMOVED} FROM ins"
    )
    # And the caller's key, if one was sent (a taken one fails the whole statement).
    claim = (
        "INSERT INTO idempotency_keys (owner_id, key, kind, resource_id, created_at) "
        "SELECT ins.owner_id, :claim_key, 'booking', ins.id, ins.created_at FROM ins "
        "WHERE :claim_key IS NOT NULL"
    )
    counted = (
        f"WITH seats AS ({take_seats}), buyer AS ({count_buyer}), ins AS ({insert}), "  # noqa: S608
        f"change AS ({record_change}), claim AS ({claim}) SELECT * FROM ins"
    )
    return (
        text(take_seats).bindparams(*seats_binds).columns(t.tiers.c.price_cents),
        text(f"WITH seats AS ({take_seats}) {insert}").bindparams(*binds).columns(*b.c),
        text(counted).bindparams(*binds, *extra).columns(*b.c),
    )


TAKE_SEATS, RESERVE_SEATS, RESERVE_COUNTED = _statements()

BATCH_COLUMNS = (
    ("id", "text"),
    ("ticket_number", "text"),
    ("quantity", "int"),
    ("status", "text"),
    ("expires_at", "timestamptz"),
    ("owner_id", "text"),
    ("partner_id", "text"),
    ("external_ref", "text"),
    ("idempotency_key", "text"),
    ("request_hash", "text"),
    ("created_at", "timestamptz"),
    ("change_id", "text"),
    ("actor_kind", "text"),
    ("actor_id", "text"),
    ("claim_key", "text"),
)


def _batch_statement() -> str:
    """One tier's bookings in one statement: `$1` event, `$2` tier, then one array per
    column in BATCH_COLUMNS. The guard takes Σq at once; every row keeps its own id, ticket
    number, owner, key and hash; buyers' counts are grouped (and locked in a fixed order)."""
    names = [name for name, _ in BATCH_COLUMNS]
    arrays = ", ".join(f"${i + 3}::{kind}[]" for i, (_, kind) in enumerate(BATCH_COLUMNS))
    pending = "CASE WHEN r.status = 'pending' THEN r.quantity ELSE 0 END"
    return (
        f"WITH req AS (SELECT * FROM unnest({arrays}) AS r({', '.join(names)})), "  # noqa: S608
        "total AS (SELECT sum(quantity) AS seats FROM req), "
        "seats AS (UPDATE tiers SET active = active + total.seats, version = version + 1 "
        "FROM total WHERE event_id = $1 AND code = $2 AND on_sale AND NOT hidden "
        "AND active + blocked + total.seats <= capacity RETURNING price_cents), "
        "buyer AS (INSERT INTO user_event_counts (event_id, owner_id, active, pending) "
        f"SELECT $1, r.owner_id, sum(r.quantity), sum({pending}) FROM req r, seats "
        "GROUP BY r.owner_id ORDER BY r.owner_id "
        "ON CONFLICT (event_id, owner_id) DO UPDATE SET "
        "active = user_event_counts.active + EXCLUDED.active, "
        "pending = user_event_counts.pending + EXCLUDED.pending), "
        f"ins AS (INSERT INTO bookings ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(_batch_value(name) for name in COLUMNS)} FROM req r, seats "
        f"RETURNING {', '.join(COLUMNS)}), "
        "change AS (INSERT INTO changes (id, type, occurred_at, actor_kind, actor_id, subject, "
        "subject_id, seq, event_id, booking_id, owner_id, partner_id, data) "
        "SELECT r.change_id, 'booking.created', ins.created_at, r.actor_kind, r.actor_id, "
        "'booking', ins.id, ins.version, ins.event_id, ins.id, ins.owner_id, ins.partner_id, "
        f"{_PRIVATE_REMOVED} FROM ins JOIN req r ON r.id = ins.id), "
        "claim AS (INSERT INTO idempotency_keys (owner_id, key, kind, resource_id, created_at) "
        "SELECT ins.owner_id, r.claim_key, 'booking', ins.id, ins.created_at "
        "FROM ins JOIN req r ON r.id = ins.id WHERE r.claim_key IS NOT NULL) "
        "SELECT * FROM ins"
    )


def _batch_value(column: str) -> str:
    if column in dict(BATCH_COLUMNS):
        return f"r.{column}"
    return {
        "event_id": "$1",
        "tier": "$2",
        "unit_price_cents": "seats.price_cents",
        "currency": "'USD'",
        "version": "1",
        "updated_at": "r.created_at",
        "order_id": "NULL",
    }[column]


@dataclasses.dataclass(frozen=True, slots=True)
class AsyncpgStatement:
    """A statement compiled once to asyncpg's positional SQL, with its parameter order."""

    sql: str
    names: list[str]

    @classmethod
    def of(cls, statement: Any) -> AsyncpgStatement:
        compiled = statement.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
        return cls(str(compiled), list(compiled.positiontup or []))

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


PG_RESERVE = AsyncpgStatement.of(RESERVE_COUNTED)
PG_RESERVE_BATCH = _batch_statement()
