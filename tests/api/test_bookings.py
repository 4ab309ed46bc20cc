"""Bookings through the HTTP API on every backend."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import Api


async def test_book_confirmed_at_once(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    r = await api.book(buyer, event["id"], 3, externalRef="order-77")
    assert r.status_code == 201
    b = r.json()["data"]
    assert (b["status"], b["quantity"], b["unitPriceCents"], b["totalCents"], b["currency"]) == (
        "confirmed",
        3,
        2500,
        7500,
        "USD",
    )
    assert b["externalRef"] == "order-77" and b["expiresAt"] is None and b["partnerId"] is None
    assert re.fullmatch(
        r"TB-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}", b["ticketNumber"]
    )
    assert r.headers["Location"] == f"/api/v1/bookings/{b['id']}"


async def test_hold_then_confirm(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    hold = (await api.book(buyer, event["id"], 2, hold=True)).json()["data"]
    assert hold["status"] == "pending"
    expires = datetime.fromisoformat(hold["expiresAt"])
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    other = await api.user()
    assert (
        await api.client.post(f"/api/v1/bookings/{hold['id']}/confirm", headers=other.headers)
    ).status_code == 404
    r = await api.client.post(f"/api/v1/bookings/{hold['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "confirmed"
    again = await api.client.post(f"/api/v1/bookings/{hold['id']}/confirm", headers=buyer.headers)
    assert again.status_code == 409 and again.json()["code"] == "BOOKING_NOT_PENDING"


async def test_expired_hold_cannot_be_confirmed_and_frees_its_seats(
    api: Api, advance_clock: Callable[[timedelta], None]
) -> None:
    organizer, buyer, rival = await api.user("organizer"), await api.user(), await api.user()
    event = await api.event(
        organizer, tiers=[{"code": "GA", "name": "G", "priceCents": 100, "capacity": 2}]
    )
    hold = (await api.book(buyer, event["id"], 2, hold=True)).json()["data"]
    assert (await api.book(rival, event["id"], 1)).status_code == 409
    advance_clock(timedelta(seconds=api.ctx.settings.hold_ttl_seconds - 1))
    r = await api.client.get(f"/api/v1/bookings/{hold['id']}", headers=buyer.headers)
    assert r.json()["data"]["status"] == "pending"  # a second before its expiry
    assert (await api.book(rival, event["id"], 1)).status_code == 409
    advance_clock(timedelta(seconds=1))
    r = await api.client.post(f"/api/v1/bookings/{hold['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 409 and r.json()["code"] == "BOOKING_EXPIRED"
    seen = (await api.client.get(f"/api/v1/bookings/{hold['id']}", headers=buyer.headers)).json()[
        "data"
    ]
    assert seen["status"] == "expired"
    # seats really are free, so the expired hold must not cause a 409
    assert (await api.book(rival, event["id"], 2)).status_code == 201


async def test_refusals(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(
        organizer, tiers=[{"code": "GA", "name": "G", "priceCents": 100, "capacity": 3}]
    )
    assert (await api.book(buyer, event["id"], 2)).status_code == 201
    r = await api.book(buyer, event["id"], 2)
    assert (
        r.status_code == 409
        and r.json()["code"] == "INSUFFICIENT_TICKETS"
        and r.json()["available"] == 1
    )
    r = await api.book(buyer, "missing-event", 1)
    assert r.status_code == 404 and r.json()["code"] == "EVENT_NOT_FOUND"
    r = await api.book(buyer, event["id"], 1, tier="NOPE")
    assert r.status_code == 404 and r.json()["code"] == "TIER_NOT_FOUND"
    draft = await api.event(organizer, publish=False)
    assert (await api.book(buyer, draft["id"], 1)).status_code == 404
    for quantity in (0, 11):
        r = await api.book(buyer, event["id"], quantity)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantity"
    assert (
        await api.client.post(
            "/api/v1/bookings", json={"eventId": event["id"], "tier": "GA", "quantity": 1}
        )
    ).status_code == 401


async def test_started_event_is_not_bookable(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"startsAt": past}, headers=organizer.headers
    )
    r = await api.book(buyer, event["id"], 1)
    assert r.status_code == 409 and r.json()["code"] == "EVENT_NOT_BOOKABLE"


async def test_max_per_user_counts_active_bookings(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, maxPerUser=4)
    first = (await api.book(buyer, event["id"], 3)).json()["data"]
    r = await api.book(buyer, event["id"], 2)
    assert r.status_code == 409 and r.json()["code"] == "PER_USER_LIMIT_EXCEEDED"
    assert (await api.book(buyer, event["id"], 5)).status_code == 409
    await api.client.patch(f"/api/v1/bookings/{first['id']}/cancel", headers=buyer.headers)
    assert (await api.book(buyer, event["id"], 4)).status_code == 201


async def test_max_per_user_holds_under_concurrency(api: Api) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, maxPerUser=4)
    parallel = 4 if api.ctx.storage.kind == "mongodb" else 12
    results = await asyncio.gather(*(api.book(buyer, event["id"], 1) for _ in range(parallel)))
    assert sum(r.status_code == 201 for r in results) == 4  # the limit, not a spurious refusal
    mine = (
        await api.client.get(
            "/api/v1/bookings", params={"eventId": event["id"]}, headers=buyer.headers
        )
    ).json()["data"]
    assert sum(b["quantity"] for b in mine) == 4


async def test_cancel_rules(api: Api) -> None:
    organizer, buyer, stranger, admin = (
        await api.user("organizer"),
        await api.user(),
        await api.user(),
        await api.user("admin"),
    )
    event = await api.event(organizer)
    one = (await api.book(buyer, event["id"], 1)).json()["data"]
    two = (await api.book(buyer, event["id"], 1)).json()["data"]
    assert (
        await api.client.patch(f"/api/v1/bookings/{one['id']}/cancel", headers=stranger.headers)
    ).status_code == 404
    assert (
        await api.client.patch(f"/api/v1/bookings/{one['id']}/cancel", headers=buyer.headers)
    ).json()["data"]["status"] == "cancelled"
    again = await api.client.patch(f"/api/v1/bookings/{one['id']}/cancel", headers=buyer.headers)
    assert again.status_code == 409 and again.json()["code"] == "BOOKING_NOT_CANCELLABLE"
    assert (
        await api.client.patch(f"/api/v1/bookings/{two['id']}/cancel", headers=admin.headers)
    ).status_code == 200
    avail = (await api.client.get(f"/api/v1/events/{event['id']}/availability")).json()["data"]
    assert avail["available"] == 100


async def test_reading_bookings(api: Api) -> None:
    organizer, buyer, stranger, admin = (
        await api.user("organizer"),
        await api.user(),
        await api.user(),
        await api.user("admin"),
    )
    event = await api.event(organizer)
    made = [(await api.book(buyer, event["id"], 1)).json()["data"]["id"] for _ in range(5)]
    await api.client.patch(f"/api/v1/bookings/{made[0]}/cancel", headers=buyer.headers)
    assert (
        await api.client.get(f"/api/v1/bookings/{made[1]}", headers=stranger.headers)
    ).status_code == 404
    assert (
        await api.client.get(f"/api/v1/bookings/{made[1]}", headers=admin.headers)
    ).status_code == 200
    walked: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (
            await api.client.get("/api/v1/bookings", params=params, headers=buyer.headers)
        ).json()
        walked += [b["id"] for b in page["data"]]
        if not (cursor := page["meta"]["nextCursor"]):
            break
    assert walked == list(reversed(made))  # newest first, each once
    cancelled = (
        await api.client.get(
            "/api/v1/bookings", params={"status": "cancelled"}, headers=buyer.headers
        )
    ).json()["data"]
    assert [b["id"] for b in cancelled] == [made[0]]
    assert (await api.client.get("/api/v1/bookings", headers=stranger.headers)).json()["data"] == []
    by_admin = (
        await api.client.get(
            "/api/v1/bookings",
            params={"userId": buyer.id, "limit": 100},
            headers=admin.headers,
        )
    ).json()["data"]
    assert len(by_admin) == 5


async def test_partner_bookings_carry_partner_id(api: Api) -> None:
    organizer = await api.user("organizer")
    partner = await api.partner()
    event = await api.event(organizer)
    r = await api.book(partner, event["id"], 2, externalRef="resale-1")
    assert r.status_code == 201
    assert (
        r.json()["data"]["partnerId"] == partner.id
        and r.json()["data"]["externalRef"] == "resale-1"
    )


@pytest.mark.parametrize(
    "body", [{"eventId": "x", "tier": "GA"}, {"eventId": "x", "tier": "GA", "quantity": "two"}, {}]
)
async def test_bad_bodies_change_nothing(api: Api, body: dict) -> None:
    buyer = await api.user()
    r = await api.client.post(
        "/api/v1/bookings", json=body, headers=buyer.headers | {"Idempotency-Key": "k"}
    )
    assert r.status_code == 422 and r.json()["success"] is False
    assert (await api.client.get("/api/v1/bookings", headers=buyer.headers)).json()["data"] == []
