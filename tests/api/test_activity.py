"""The activity log and live availability through the HTTP API."""

from __future__ import annotations

from tests.support.api import Api


async def test_activity_of_an_event_and_a_booking(api: Api) -> None:
    organizer, buyer, stranger, admin = (
        await api.user("organizer"),
        await api.user(),
        await api.user("organizer"),
        await api.user("admin"),
    )
    event = await api.event(organizer)
    held = (await api.book(buyer, event["id"], 2, hold=True)).json()["data"]
    await api.client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=buyer.headers)
    r = await api.client.get(f"/api/v1/events/{event['id']}/activity", headers=organizer.headers)
    assert r.status_code == 200
    types = [c["type"] for c in r.json()["data"]]
    assert types == ["booking.confirmed", "booking.created", "event.published", "event.created"]
    created = r.json()["data"][1]
    assert created["actor"] == {"type": "user", "id": buyer.id}
    assert (
        created["bookingId"] == held["id"]
        and created["data"]["ticketNumber"] == held["ticketNumber"]
    )
    assert "idempotencyKey" not in created["data"] and "requestHash" not in created["data"]
    assert (
        await api.client.get(f"/api/v1/events/{event['id']}/activity", headers=stranger.headers)
    ).status_code == 403
    mine = await api.client.get(f"/api/v1/bookings/{held['id']}/activity", headers=buyer.headers)
    assert [(c["type"], c["seq"]) for c in mine.json()["data"]] == [
        ("booking.confirmed", 2),
        ("booking.created", 1),
    ]
    assert (
        await api.client.get(f"/api/v1/bookings/{held['id']}/activity", headers=stranger.headers)
    ).status_code == 404
    page = await api.client.get(
        f"/api/v1/events/{event['id']}/activity", params={"limit": 2}, headers=admin.headers
    )
    rest = await api.client.get(
        f"/api/v1/events/{event['id']}/activity",
        params={"limit": 2, "cursor": page.json()["meta"]["nextCursor"]},
        headers=admin.headers,
    )
    assert [c["type"] for c in page.json()["data"] + rest.json()["data"]] == types
    everything = await api.client.get(
        "/api/v1/activity",
        params={"type": "booking.confirmed", "actor": buyer.id},
        headers=admin.headers,
    )
    assert [c["bookingId"] for c in everything.json()["data"]] == [held["id"]]
    assert (await api.client.get("/api/v1/activity", headers=organizer.headers)).status_code == 403
