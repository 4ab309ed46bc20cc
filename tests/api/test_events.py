"""Events on every backend: ownership, status machine, validation, listing, search, availability."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import Api


async def test_only_organizers_and_admins_create(api: Api) -> None:
    user = await api.user()
    r = await api.client.post("/api/v1/events", json={"name": "x"}, headers=user.headers)
    assert r.status_code == 403
    r = await api.client.post("/api/v1/events", json={"name": "x"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tiers": []}, "tiers"),
        ({"tiers": [{"code": "GA", "name": "A", "priceCents": 1, "capacity": 1}] * 2}, "tiers"),
        (
            {"tiers": [{"code": "GA", "name": "A", "priceCents": -1, "capacity": 1}]},
            "tiers.0.priceCents",
        ),
        ({"startsAt": "2030-01-01T10:00:00"}, "startsAt"),
        ({"name": ""}, "name"),
        ({"maxPerUser": 0}, "maxPerUser"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_create_validation(api: Api, change: dict, field: str) -> None:
    organizer = await api.user("organizer")
    body = {
        "name": "Show",
        "venue": "Hall",
        "startsAt": "2030-01-01T10:00:00Z",
        "tiers": [{"code": "GA", "name": "General", "priceCents": 100, "capacity": 10}],
    } | change
    r = await api.client.post("/api/v1/events", json=body, headers=organizer.headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert field in [e["field"] for e in r.json()["errors"]]


async def test_ends_before_start_is_rejected(api: Api) -> None:
    organizer = await api.user("organizer")
    body = {
        "name": "S",
        "venue": "V",
        "startsAt": "2030-01-01T10:00:00Z",
        "endsAt": "2030-01-01T09:00:00Z",
        "tiers": [{"code": "GA", "name": "G", "priceCents": 1, "capacity": 1}],
    }
    r = await api.client.post("/api/v1/events", json=body, headers=organizer.headers)
    assert r.status_code == 422


async def test_status_machine(api: Api) -> None:
    organizer = await api.user("organizer")
    draft = await api.event(organizer, publish=False)
    assert draft["status"] == "draft"
    h = organizer.headers
    assert (
        await api.client.post(f"/api/v1/events/{draft['id']}/complete", headers=h)
    ).status_code == 409
    published = await api.client.post(f"/api/v1/events/{draft['id']}/publish", headers=h)
    assert published.json()["data"]["status"] == "published"
    again = await api.client.post(f"/api/v1/events/{draft['id']}/publish", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "INVALID_TRANSITION"
    done = await api.client.post(f"/api/v1/events/{draft['id']}/complete", headers=h)
    assert done.json()["data"]["status"] == "completed"
    assert (
        await api.client.post(f"/api/v1/events/{draft['id']}/cancel", headers=h)
    ).status_code == 409
    other = await api.event(organizer, publish=False)
    cancelled = await api.client.post(f"/api/v1/events/{other['id']}/cancel", headers=h)
    assert cancelled.json()["data"]["status"] == "cancelled"
    assert (
        await api.client.post(f"/api/v1/events/{other['id']}/publish", headers=h)
    ).status_code == 409


async def test_ownership(api: Api) -> None:
    owner = await api.user("organizer")
    rival = await api.user("organizer")
    admin = await api.user("admin")
    user = await api.user()
    draft = await api.event(owner, publish=False)
    # drafts are invisible to everyone but the owner and admins
    assert (await api.client.get(f"/api/v1/events/{draft['id']}")).status_code == 404
    assert (
        await api.client.get(f"/api/v1/events/{draft['id']}", headers=rival.headers)
    ).status_code == 404
    assert (
        await api.client.get(f"/api/v1/events/{draft['id']}", headers=admin.headers)
    ).status_code == 200
    event = await api.event(owner)
    for who in (rival, user):
        r = await api.client.patch(
            f"/api/v1/events/{event['id']}", json={"name": "Mine now"}, headers=who.headers
        )
        assert r.status_code == 403
        assert (
            await api.client.post(f"/api/v1/events/{event['id']}/cancel", headers=who.headers)
        ).status_code == 403
        assert (
            await api.client.delete(f"/api/v1/events/{event['id']}", headers=who.headers)
        ).status_code == 403
    r = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"name": "Admin edit"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["data"]["name"] == "Admin edit"


async def test_if_match_optimistic_concurrency(api: Api) -> None:
    organizer = await api.user("organizer")
    event = await api.event(organizer)
    version = event["version"]
    h = organizer.headers
    first = await api.client.patch(
        f"/api/v1/events/{event['id']}",
        json={"venue": "New Hall"},
        headers=h | {"If-Match": f'"{version}"'},
    )
    assert first.status_code == 200 and first.json()["data"]["version"] == version + 1
    assert first.headers["ETag"] == f'"{version + 1}"'
    stale = await api.client.patch(
        f"/api/v1/events/{event['id']}",
        json={"venue": "Old"},
        headers=h | {"If-Match": str(version)},
    )
    assert stale.status_code == 412 and stale.json()["code"] == "PRECONDITION_FAILED"
    bad = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"venue": "Old"}, headers=h | {"If-Match": "abc"}
    )
    assert bad.status_code == 400


async def test_capacity_cannot_drop_below_active_bookings(api: Api) -> None:
    organizer = await api.user("organizer")
    buyer = await api.user()
    event = await api.event(organizer)
    assert (await api.book(buyer, event["id"], 7)).status_code == 201
    h = organizer.headers
    low = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"tiers": [{"code": "GA", "capacity": 6}]}, headers=h
    )
    assert low.status_code == 409 and low.json()["code"] == "CAPACITY_BELOW_ACTIVE"
    exact = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"tiers": [{"code": "GA", "capacity": 7}]}, headers=h
    )
    assert exact.status_code == 200 and exact.json()["data"]["tiers"][0]["capacity"] == 7
    dup = await api.client.patch(
        f"/api/v1/events/{event['id']}",
        json={"tiers": [{"code": "GA", "capacity": 9}, {"code": "GA", "capacity": 8}]},
        headers=h,
    )
    assert dup.status_code == 422
    new_incomplete = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"tiers": [{"code": "VIP", "capacity": 9}]}, headers=h
    )
    assert new_incomplete.status_code == 409


async def test_delete_is_soft_and_refused_with_active_bookings(api: Api) -> None:
    organizer = await api.user("organizer")
    buyer = await api.user()
    event = await api.event(organizer)
    booking = (await api.book(buyer, event["id"], 1)).json()["data"]
    h = organizer.headers
    refused = await api.client.delete(f"/api/v1/events/{event['id']}", headers=h)
    assert refused.status_code == 409 and refused.json()["code"] == "EVENT_HAS_ACTIVE_BOOKINGS"
    await api.client.patch(f"/api/v1/bookings/{booking['id']}/cancel", headers=buyer.headers)
    assert (await api.client.delete(f"/api/v1/events/{event['id']}", headers=h)).status_code == 204
    assert (await api.client.get(f"/api/v1/events/{event['id']}")).status_code == 404
    assert await api.ctx.storage.events.get(event["id"], include_deleted=True) is not None


async def test_cancel_releases_every_booking(api: Api) -> None:
    organizer = await api.user("organizer")
    buyer = await api.user()
    event = await api.event(organizer)
    booking = (await api.book(buyer, event["id"], 3)).json()["data"]
    held = (await api.book(buyer, event["id"], 2, hold=True)).json()["data"]
    await api.client.post(f"/api/v1/events/{event['id']}/cancel", headers=organizer.headers)
    for b in (booking, held):
        r = await api.client.get(f"/api/v1/bookings/{b['id']}", headers=buyer.headers)
        assert r.json()["data"]["status"] == "cancelled"
    avail = (await api.client.get(f"/api/v1/events/{event['id']}/availability")).json()["data"]
    assert avail["available"] == 100
    r = await api.book(buyer, event["id"], 1)
    assert r.status_code == 409 and r.json()["code"] == "EVENT_NOT_BOOKABLE"


async def test_paginated_walk_sees_each_event_once_while_inserting(api: Api) -> None:
    organizer = await api.user("organizer")
    existing = {
        (await api.event(organizer, publish=False, name=f"Walk {i}"))["id"] for i in range(7)
    }
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "draft", "limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await api.client.get("/api/v1/events", params=params, headers=organizer.headers)
        assert r.status_code == 200
        seen += [e["id"] for e in r.json()["data"]]
        await api.event(organizer, publish=False, name="Inserted during the walk")
        cursor = r.json()["meta"]["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # nothing twice
    assert existing <= set(seen)  # nothing that existed before the walk is missed


async def test_drafts_listing_needs_an_organizer(api: Api) -> None:
    user = await api.user()
    r = await api.client.get("/api/v1/events", params={"status": "draft"}, headers=user.headers)
    assert r.status_code == 403
    r = await api.client.get("/api/v1/events", params={"cursor": "%%%"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_CURSOR"
    r = await api.client.get("/api/v1/events", params={"limit": 101})
    assert r.status_code == 422


async def test_search_and_date_filters(api: Api) -> None:
    organizer = await api.user("organizer")
    tag = uuid.uuid4().hex[:8]
    soon = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    by_name = await api.event(
        organizer, name=f"Symphony{tag} Gala", venue="Royal Hall", startsAt=soon
    )
    by_venue = await api.event(
        organizer, name="Quartet Evening", venue=f"Symphony{tag} Center", startsAt=later
    )
    r = await api.client.get("/api/v1/events", params={"q": f"symphony{tag}"})
    assert [e["id"] for e in r.json()["data"]] == [by_name["id"], by_venue["id"]]
    r = await api.client.get("/api/v1/events", params={"q": f"symphony{tag} gala"})
    assert [e["id"] for e in r.json()["data"]] == [by_name["id"]]
    window = {"q": f"symphony{tag}", "from": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    r = await api.client.get("/api/v1/events", params=window)
    assert [e["id"] for e in r.json()["data"]] == [by_venue["id"]]
    r = await api.client.get("/api/v1/events", params={"q": f"symphony{tag}", "limit": 1})
    page1 = r.json()
    r = await api.client.get(
        "/api/v1/events",
        params={"q": f"symphony{tag}", "limit": 1, "cursor": page1["meta"]["nextCursor"]},
    )
    assert [e["id"] for e in page1["data"] + r.json()["data"]] == [by_name["id"], by_venue["id"]]


async def test_availability_is_computed_from_bookings_and_read_your_writes(api: Api) -> None:
    organizer = await api.user("organizer")
    buyer = await api.user()
    event = await api.event(
        organizer,
        tiers=[
            {"code": "VIP", "name": "VIP", "priceCents": 10000, "capacity": 5},
            {"code": "GA", "name": "General", "priceCents": 2000, "capacity": 50},
        ],
    )
    url = f"/api/v1/events/{event['id']}/availability"
    first = (await api.client.get(url)).json()["data"]  # warms the cache
    assert first["available"] == 55
    await api.book(buyer, event["id"], 2, tier="VIP")
    held = (await api.book(buyer, event["id"], 3, tier="GA", hold=True)).json()["data"]
    data = (await api.client.get(url)).json()["data"]
    tiers = {t["code"]: t for t in data["tiers"]}
    assert tiers["VIP"] == {
        "code": "VIP",
        "capacity": 5,
        "available": 3,
        "pending": 0,
        "confirmed": 2,
        "blocked": 0,
    }
    assert tiers["GA"] == {
        "code": "GA",
        "capacity": 50,
        "available": 47,
        "pending": 3,
        "confirmed": 0,
        "blocked": 0,
    }
    assert data["available"] == 50 and data["eventId"] == event["id"] and data["asOf"]
    await api.client.patch(f"/api/v1/bookings/{held['id']}/cancel", headers=buyer.headers)
    detail = (await api.client.get(f"/api/v1/events/{event['id']}")).json()["data"]
    assert {t["code"]: t["available"] for t in detail["tiers"]} == {"VIP": 3, "GA": 50}


async def test_unknown_event_is_404_in_the_envelope(api: Api) -> None:
    r = await api.client.get("/api/v1/events/does-not-exist")
    assert r.status_code == 404
    assert r.json()["code"] == "EVENT_NOT_FOUND" and r.json()["success"] is False


async def test_patch_cannot_null_required_fields(api: Api) -> None:
    organizer = await api.user("organizer")
    event = await api.event(organizer)
    for field in ("name", "venue", "startsAt"):
        r = await api.client.patch(
            f"/api/v1/events/{event['id']}", json={field: None}, headers=organizer.headers
        )
        assert r.status_code == 422, (field, r.text)
    r = await api.client.patch(
        f"/api/v1/events/{event['id']}", json={"maxPerUser": None}, headers=organizer.headers
    )
    assert r.status_code == 200 and r.json()["data"]["maxPerUser"] is None
