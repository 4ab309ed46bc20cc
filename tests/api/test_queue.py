"""The waiting room through the app in-process (settings, places, tokens, enforcement); the
real-server races (2 workers, a killed admitter, the measured rate) are in tests/races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.support.accounts import Account
from tests.support.api import Api, event_body
from tests.support.queue import queue_settings, wait_for_state
from tests.support.services import free_port
from tests.support.tokens import forge

Advance = Callable[[timedelta], None]


async def _queued_event(api: Api, organizer: Account, **queue: Any) -> dict[str, Any]:
    return await api.event(organizer, queue=queue_settings(**queue))


async def _order(api: Api, who: Account, event_id: str, token: str | None) -> int:
    headers = who.headers | {"Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Admission-Token"] = token
    body = {"eventId": event_id, "items": [{"tier": "GA", "quantity": 1}]}
    r = await api.client.post("/api/v1/orders", json=body, headers=headers)
    return r.status_code


async def test_queue_settings_are_validated_on_create_and_patch(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer = await api.user("organizer")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for bad in (
        {"opensAt": past},
        {"admitPerMinute": 0},
        {"admitPerMinute": -5},
        {"sessionSeconds": 0},
        {"sessionSeconds": 86_401},
        {"maxActive": 0},
        {"admitPerMinute": "10"},
        {"opensAt": (datetime.now(UTC) + timedelta(days=60)).isoformat()},  # after startsAt
    ):
        r = await api.client.post(
            "/api/v1/events",
            json=event_body(queue=queue_settings(**bad)),
            headers=organizer.headers,
        )
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "VALIDATION_ERROR"
    event = await _queued_event(api, organizer)
    assert event["queue"]["sessionSeconds"] == 600 and event["queue"]["maxActive"] is None
    url = f"/api/v1/events/{event['id']}"
    for bad in ({"admitPerMinute": -1}, {"sessionSeconds": 0}, {"enabled": None}):
        r = await api.client.patch(url, json={"queue": bad}, headers=organizer.headers)
        assert r.status_code == 422, (bad, r.text)
    r = await api.client.patch(url, json={"queue": None}, headers=organizer.headers)
    assert r.status_code == 422
    r = await api.client.patch(
        url, json={"queue": {"admitPerMinute": 0, "maxActive": 3}}, headers=organizer.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["queue"]["admitPerMinute"] == 0
    assert r.json()["data"]["queue"]["maxActive"] == 3
    plain = await api.event(organizer)
    url = f"/api/v1/events/{plain['id']}"
    r = await api.client.patch(
        url, json={"queue": {"opensAt": past, "admitPerMinute": 5}}, headers=organizer.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "queue.opensAt"
    r = await api.client.patch(
        url, json={"queue": {"admitPerMinute": 0}}, headers=organizer.headers
    )
    assert r.status_code == 422  # a new waiting room needs a rate ≥ 1 and an opening
    assert (await api.client.get(url)).json()["data"]["queue"] is None


async def test_joining_asks_for_a_room_that_exists(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer, buyer = await api.user("organizer"), await api.user()
    r = await api.client.post("/api/v1/events/nope/queue", headers=buyer.headers)
    assert r.status_code == 404 and r.json()["code"] == "EVENT_NOT_FOUND"
    plain = await api.event(organizer)
    r = await api.client.post(f"/api/v1/events/{plain['id']}/queue", headers=buyer.headers)
    assert r.status_code == 409 and r.json()["code"] == "QUEUE_NOT_ENABLED"
    r = await api.client.get(f"/api/v1/events/{plain['id']}/queue/stats", headers=organizer.headers)
    assert r.status_code == 409
    draft = await api.event(organizer, publish=False, queue=queue_settings())
    r = await api.client.post(f"/api/v1/events/{draft['id']}/queue", headers=buyer.headers)
    assert r.status_code == 404
    event = await _queued_event(api, organizer)
    r = await api.client.get(f"/api/v1/events/{event['id']}/queue/me", headers=buyer.headers)
    assert r.status_code == 404 and r.json()["code"] == "NOT_IN_QUEUE"
    r = await api.client.post(f"/api/v1/events/{event['id']}/queue")
    assert r.status_code == 401
    r = await api.client.get(f"/api/v1/events/{event['id']}/queue/stats", headers=buyer.headers)
    assert r.status_code == 403


async def test_prequeue_draw_admission_and_tokens(sqlite_api: Api, advance_clock: Advance) -> None:
    api = sqlite_api
    organizer, admin = await api.user("organizer"), await api.user("admin")
    partner = await api.partner(admin)
    buyers = [await api.user() for _ in range(6)]
    event = await _queued_event(api, organizer, admitPerMinute=6000, sessionSeconds=60)
    other = await _queued_event(api, organizer, admitPerMinute=6000, sessionSeconds=60)
    eid = event["id"]
    for buyer in buyers[:5]:
        r = await api.client.post(f"/api/v1/events/{eid}/queue", headers=buyer.headers)
        assert r.status_code == 201, r.text
        assert r.json()["data"] == {
            "state": "prequeue",
            "position": None,
            "ahead": None,
            "etaSeconds": None,
            "admissionToken": None,
            "admittedUntil": None,
        }
    r = await api.client.post(f"/api/v1/events/{eid}/queue", headers=buyers[0].headers)
    assert r.status_code == 200 and r.json()["data"]["state"] == "prequeue"
    # Nobody books without admission; partners, organizers and admins are exempt.
    assert (await api.book(buyers[0], eid)).json()["code"] == "ADMISSION_REQUIRED"
    assert await _order(api, buyers[0], eid, None) == 403
    for exempt in (partner, organizer, admin):
        assert (await api.book(exempt, eid)).status_code == 201  # type: ignore[arg-type]

    advance_clock(timedelta(minutes=2))  # the room opens: the pre-queue is drawn
    r = await api.client.post(f"/api/v1/events/{eid}/queue", headers=buyers[5].headers)
    assert r.status_code == 201, r.text
    late = r.json()["data"]
    assert late["position"] == 6  # behind every pre-queued buyer
    places = [await wait_for_state(api.client, b, eid, "admitted") for b in buyers]
    assert sorted(p["position"] for p in places) == [1, 2, 3, 4, 5, 6]
    assert all(p["ahead"] == 0 and p["admissionToken"] for p in places)

    token = places[0]["admissionToken"]
    assert (await api.book(buyers[0], eid, **{})).status_code == 403
    r = await api.client.post(
        "/api/v1/bookings",
        json={"eventId": eid, "tier": "GA", "quantity": 1},
        headers=buyers[0].headers | {"Idempotency-Key": uuid.uuid4().hex, "Admission-Token": token},
    )
    assert r.status_code == 201, r.text
    assert await _order(api, buyers[0], eid, token) == 201
    # Another account's token, a token for another event, a forged one: 403.
    assert await _order(api, buyers[1], eid, token) == 403
    await api.client.post(f"/api/v1/events/{other['id']}/queue", headers=buyers[0].headers)
    assert await _order(api, buyers[0], other["id"], token) == 403
    forged = forge(
        {"sub": buyers[0].id, "eid": eid, "typ": "admission", "until": 2**41},
        key="not-the-server-secret-0123456789abcdef",
        kid=api.ctx.tokens.keys.kid,
    )
    assert await _order(api, buyers[0], eid, forged) == 403
    access_as_admission = buyers[0].access_token
    assert await _order(api, buyers[0], eid, access_as_admission) == 403

    stats = (
        await api.client.get(f"/api/v1/events/{eid}/queue/stats", headers=organizer.headers)
    ).json()["data"]
    assert stats["admitted"] == 6 and stats["active"] == 6 and stats["waiting"] == 0
    assert stats["medianWaitSeconds"] is not None

    advance_clock(timedelta(seconds=61))  # past admittedUntil
    assert await _order(api, buyers[0], eid, token) == 403
    me = (await api.client.get(f"/api/v1/events/{eid}/queue/me", headers=buyers[0].headers)).json()
    assert me["data"]["state"] == "expired" and me["data"]["admissionToken"] is None
    assert me["data"]["position"] == places[0]["position"]


async def test_a_paused_rate_admits_nobody_until_raised(
    sqlite_api: Api, advance_clock: Advance
) -> None:
    api = sqlite_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await _queued_event(api, organizer, admitPerMinute=6000)
    url = f"/api/v1/events/{event['id']}"
    r = await api.client.patch(
        url, json={"queue": {"admitPerMinute": 0}}, headers=organizer.headers
    )
    assert r.status_code == 200
    await api.client.post(f"{url}/queue", headers=buyer.headers)
    advance_clock(timedelta(minutes=2))
    await asyncio.sleep(0.5)  # several admission steps at the paused rate
    me = (await api.client.get(f"{url}/queue/me", headers=buyer.headers)).json()["data"]
    assert me["state"] == "waiting" and me["etaSeconds"] is None and me["position"] == 1
    r = await api.client.patch(
        url, json={"queue": {"admitPerMinute": 600}}, headers=organizer.headers
    )
    assert r.status_code == 200
    assert (await wait_for_state(api.client, buyer, event["id"], "admitted"))["position"] == 1


async def test_protected_sales_fail_closed_without_the_cache(
    sqlite_api: Api, advance_clock: Advance
) -> None:
    api = sqlite_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await _queued_event(api, organizer, admitPerMinute=6000)
    await api.client.post(f"/api/v1/events/{event['id']}/queue", headers=buyer.headers)
    advance_clock(timedelta(minutes=2))
    token = (await wait_for_state(api.client, buyer, event["id"], "admitted"))["admissionToken"]
    cache = api.ctx.cache
    working = cache.client, cache.pipeline.client
    # Nothing listens there: every command fails at once (no retries).
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    cache.client = cache.pipeline.client = dead
    try:
        assert await _order(api, buyer, event["id"], token) == 503
        r = await api.client.get(f"/api/v1/events/{event['id']}/queue/me", headers=buyer.headers)
        assert r.status_code == 503 and r.json()["code"] == "QUEUE_UNAVAILABLE"
    finally:
        cache.client, cache.pipeline.client = working
        await dead.aclose()
    assert await _order(api, buyer, event["id"], token) == 201


@pytest.mark.parametrize("path", ["queue", "queue/me", "queue/stats"])
async def test_queue_routes_answer_unknown_events_in_the_envelope(
    sqlite_api: Api, path: str
) -> None:
    buyer = await sqlite_api.user()
    method = sqlite_api.client.post if path == "queue" else sqlite_api.client.get
    r = await method(f"/api/v1/events/{uuid.uuid4().hex}/{path}", headers=buyer.headers)
    assert r.status_code == 404 and r.json()["success"] is False
