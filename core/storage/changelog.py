"""Change records: what the activity log, webhooks and live availability learn of a change
to a booking, an order or an event (written in the change's own transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from core.storage.records import SYSTEM_ACTOR, Actor, Change, Event, as_fields, new_id

PRIVATE_FIELDS = ("idempotency_key", "request_hash")
"""Booking fields a change record leaves out: they belong to the caller's retries."""


def jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def booking_change(
    what: str, booking: Mapping[Any, Any], actor: Actor, now: datetime, change_id: str | None = None
) -> Change:
    """The change record of a booking (a row or document with its fields after the change)."""
    links = {"booking_id": booking["id"], "order_id": booking.get("order_id")}
    return _sale_change("booking", what, booking, actor, now, change_id, **links)


def order_change(what: str, order: Mapping[Any, Any], actor: Actor, now: datetime) -> Change:
    """The change record of an order (its row or document's fields after the change)."""
    return _sale_change("order", what, order, actor, now, order_id=order["id"])


def _sale_change(
    subject: Literal["booking", "order"],
    what: str,
    fields: Mapping[Any, Any],
    actor: Actor,
    now: datetime,
    change_id: str | None = None,
    **links: str | None,
) -> Change:
    return Change(
        id=change_id or new_id(),
        type=f"{subject}.{what}",
        occurred_at=now,
        actor=actor,
        subject=subject,
        subject_id=fields["id"],
        seq=fields["version"],
        event_id=fields["event_id"],
        data={k: jsonable(v) for k, v in fields.items() if k not in PRIVATE_FIELDS},
        owner_id=fields["owner_id"],
        partner_id=fields.get("partner_id"),
        **links,
    )


def event_change(what: str, event: Event, actor: Actor, now: datetime) -> Change:
    fields = as_fields(event, exclude=("tiers",))
    tiers = [as_fields(t, exclude=("active", "version", "blocked")) for t in event.tiers]
    return Change(
        id=new_id(),
        type=f"event.{what}",
        occurred_at=now,
        actor=actor,
        subject="event",
        subject_id=event.id,
        seq=event.version,
        event_id=event.id,
        data={k: jsonable(v) for k, v in fields.items()} | {"tiers": tiers},
    )


def waitlist_change(what: str, entry: Mapping[Any, Any], now: datetime) -> Change:
    """The change record of a waiting-list entry (`waitlist.offered`: its seats are blocked
    for its owner until `offer_expires_at`)."""
    return Change(
        id=new_id(),
        type=f"waitlist.{what}",
        occurred_at=now,
        actor=SYSTEM_ACTOR,
        subject="waitlist",
        subject_id=entry["id"],
        seq=entry["version"],
        event_id=entry["event_id"],
        data={k: jsonable(v) for k, v in entry.items() if k != "_id"},
        owner_id=entry["owner_id"],
    )


def order_changes(
    what: str,
    order: Mapping[Any, Any],
    bookings: Iterable[Mapping[Any, Any]],
    actor: Actor,
    now: datetime,
) -> list[Change]:
    """The change records of an order and of each of its bookings, changed together."""
    return [order_change(what, order, actor, now)] + [
        booking_change(what, booking, actor, now) for booking in bookings
    ]
