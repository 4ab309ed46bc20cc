"""Once an event has started nothing more is sold: a hold can no longer be confirmed (a
confirmation is a sale), and its buyer can no longer cancel; its organizer and admins can."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from core import clock
from core.storage.errors import NotOnSale
from core.storage.records import SYSTEM_ACTOR
from tests.support.accounts import Account
from tests.support.api import Api


async def start_now(api: Api, event_id: str) -> None:
    """Move the event's start into the past through the storage port (the API refuses a
    start in the past); this process's event snapshot is deliberately left as it is."""
    now = clock.now()
    await api.ctx.storage.events.update(
        event_id,
        expected_version=None,
        fields={"starts_at": now - timedelta(minutes=1)},
        tiers=[],
        now=now,
        actor=SYSTEM_ACTOR,
    )


async def hold(api: Api, buyer: Account, event_id: str, quantity: int = 2) -> dict[str, Any]:
    r = await api.book(buyer, event_id, quantity, hold=True)
    assert r.status_code == 201, r.text
    booking: dict[str, Any] = r.json()["data"]
    assert booking["status"] == "pending"
    return booking


async def test_a_hold_cannot_be_confirmed_after_the_start(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    held = await hold(api, buyer, event["id"])
    await start_now(api, event["id"])
    r = await api.client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "EVENT_NOT_BOOKABLE"
    booking = await api.ctx.storage.bookings.get(held["id"])
    assert booking is not None and booking.status == "pending"


async def test_storage_refuses_the_confirmation_in_the_same_step(api: Api) -> None:
    """The rule lives in the atomic confirm itself, not in a check before it."""
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    held = await hold(api, buyer, event["id"])
    await start_now(api, event["id"])
    with pytest.raises(NotOnSale):
        await api.ctx.storage.bookings.confirm(held["id"], buyer.id, clock.now(), SYSTEM_ACTOR)
    booking = await api.ctx.storage.bookings.get(held["id"])
    assert booking is not None and booking.status == "pending"


async def test_an_order_hold_cannot_be_confirmed_after_the_start(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    r = await api.client.post(
        "/api/v1/orders",
        json={"eventId": event["id"], "items": [{"tier": "GA", "quantity": 2}], "hold": True},
        headers=buyer.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    order = r.json()["data"]
    await start_now(api, event["id"])
    r = await api.client.post(f"/api/v1/orders/{order['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "EVENT_NOT_BOOKABLE"
    with pytest.raises(NotOnSale):
        await api.ctx.storage.orders.confirm(order["id"], buyer.id, clock.now(), SYSTEM_ACTOR)


@pytest.mark.parametrize("staff", ["organizer", "admin"])
async def test_only_staff_cancel_after_the_start(api: Api, staff: str) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    r = await api.book(buyer, event["id"], 2)
    assert r.status_code == 201, r.text
    booking = r.json()["data"]
    await start_now(api, event["id"])
    path = f"/api/v1/bookings/{booking['id']}/cancel"
    r = await api.client.patch(path, headers=buyer.headers)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "EVENT_STARTED"
    canceller = organizer if staff == "organizer" else await api.user("admin")
    r = await api.client.patch(path, headers=canceller.headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "cancelled"
