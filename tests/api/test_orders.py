"""Orders through the HTTP API on every backend."""

from __future__ import annotations

import uuid

from tests.support.accounts import Account
from tests.support.api import Api

TIERS = [
    {"code": "GA", "name": "General", "priceCents": 2500, "capacity": 10},
    {"code": "VIP", "name": "VIP", "priceCents": 9000, "capacity": 2},
]


async def place(api: Api, who: Account, event_id: str, key: str | None = None, **body: object):
    headers = who.headers | {"Idempotency-Key": key or uuid.uuid4().hex}
    payload = {
        "eventId": event_id,
        "items": [{"tier": "GA", "quantity": 2}, {"tier": "VIP", "quantity": 1}],
    } | body
    return await api.client.post("/api/v1/orders", json=payload, headers=headers)


async def test_an_order_books_every_tier_or_none(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, tiers=TIERS)
    r = await place(api, buyer, event["id"])
    assert r.status_code == 201, r.text
    order = r.json()["data"]
    assert order["status"] == "confirmed" and order["totalCents"] == 2 * 2500 + 9000
    assert [(b["tier"], b["quantity"], b["orderId"]) for b in order["bookings"]] == [
        ("GA", 2, order["id"]),
        ("VIP", 1, order["id"]),
    ]
    assert r.headers["Location"] == f"/api/v1/orders/{order['id']}"
    short = await place(
        api,
        buyer,
        event["id"],
        items=[{"tier": "GA", "quantity": 1}, {"tier": "VIP", "quantity": 2}],
    )
    assert short.status_code == 409 and short.json()["code"] == "INSUFFICIENT_TICKETS"
    assert short.json()["tiers"] == [{"tier": "VIP", "requested": 2, "available": 1}]
    assert short.json()["errors"] == [
        {"field": "items.1.quantity", "message": "only 1 left in tier VIP"}
    ]
    avail = (await api.client.get(f"/api/v1/events/{event['id']}/availability")).json()["data"]
    assert [t["available"] for t in avail["tiers"]] == [8, 1]  # the refused order took nothing


async def test_hold_confirm_cancel_and_reads(api: Api) -> None:
    organizer, buyer, other = await api.user("organizer"), await api.user(), await api.user()
    event = await api.event(organizer, tiers=TIERS)
    held = (await place(api, buyer, event["id"], hold=True)).json()["data"]
    assert held["status"] == "pending" and held["expiresAt"]
    booking = held["bookings"][0]["id"]
    single = await api.client.post(f"/api/v1/bookings/{booking}/confirm", headers=buyer.headers)
    assert single.status_code == 409 and single.json()["code"] == "BOOKING_IN_ORDER"
    assert (
        await api.client.get(f"/api/v1/orders/{held['id']}", headers=other.headers)
    ).status_code == 404
    r = await api.client.post(f"/api/v1/orders/{held['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "confirmed"
    assert {b["status"] for b in r.json()["data"]["bookings"]} == {"confirmed"}
    listed = (await api.client.get("/api/v1/orders", headers=buyer.headers)).json()
    assert [o["id"] for o in listed["data"]] == [held["id"]]
    r = await api.client.post(f"/api/v1/orders/{held['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 200 and {b["status"] for b in r.json()["data"]["bookings"]} == {
        "cancelled"
    }
    again = await api.client.post(f"/api/v1/orders/{held['id']}/cancel", headers=buyer.headers)
    assert again.status_code == 409 and again.json()["code"] == "ORDER_NOT_CANCELLABLE"


async def test_the_key_replays_and_bad_orders_are_refused(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, tiers=TIERS)
    first = await place(api, buyer, event["id"], key="order-1")
    again = await place(api, buyer, event["id"], key="order-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    reused = await place(
        api, buyer, event["id"], key="order-1", items=[{"tier": "GA", "quantity": 1}]
    )
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    no_key = await api.client.post(
        "/api/v1/orders",
        json={"eventId": event["id"], "items": [{"tier": "GA", "quantity": 1}]},
        headers=buyer.headers,
    )
    assert no_key.status_code == 400 and no_key.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    twice = await place(
        api,
        buyer,
        event["id"],
        items=[{"tier": "GA", "quantity": 1}, {"tier": "GA", "quantity": 1}],
    )
    assert twice.status_code == 422
    unknown = await place(api, buyer, event["id"], items=[{"tier": "NOPE", "quantity": 1}])
    assert unknown.status_code == 404 and unknown.json()["code"] == "TIER_NOT_FOUND"
