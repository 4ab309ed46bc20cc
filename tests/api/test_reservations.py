"""The original TicketBoss partner contract (root paths), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, make_settings, running_api


@pytest.fixture
async def legacy(database_url: str) -> AsyncIterator[Api]:
    """Anonymous mode, with its own event so counts start at 500 on every backend."""
    import uuid

    settings = make_settings(
        database_url,
        ticketboss_anonymous_partners=True,
        ticketboss_event_id=f"meetup-{uuid.uuid4().hex[:8]}",
    )
    async with running_api(settings) as api:
        yield api


async def summary(api: Api) -> dict:
    r = await api.client.get("/reservations")
    assert r.status_code == 200
    return r.json()


async def test_bootstrapped_event(legacy: Api) -> None:
    s = await summary(legacy)
    assert s["name"] == "Node.js Meet-up" and s["totalSeats"] == 500 and s["availableSeats"] == 500
    assert s["reservationCount"] == 0 and s["version"] == 0
    for path in ("/health", "/healthcheck"):
        body = (await legacy.client.get(path)).json()
        assert body["status"] == "ok" and body["timestamp"]


async def test_reserve_cancel_and_list(legacy: Api) -> None:
    r = await legacy.client.post("/reservations", json={"partnerId": "abc-corp", "seats": 3})
    assert r.status_code == 201
    body = r.json()
    assert (
        set(body) == {"reservationId", "seats", "status"}
        and body["seats"] == 3
        and body["status"] == "confirmed"
    )
    second = (
        await legacy.client.post("/reservations", json={"partnerId": "xyz", "seats": 2})
    ).json()
    s = await summary(legacy)
    assert (s["availableSeats"], s["reservationCount"], s["version"]) == (495, 2, 2)
    listed = (await legacy.client.get("/reservations/list")).json()
    assert [x["reservationId"] for x in listed] == [second["reservationId"], body["reservationId"]]
    assert listed[1]["partnerId"] == "abc-corp"
    assert (await legacy.client.delete(f"/reservations/{body['reservationId']}")).status_code == 204
    s = await summary(legacy)
    assert (s["availableSeats"], s["reservationCount"], s["version"]) == (
        498,
        1,
        3,
    )  # the seats came back
    again = await legacy.client.delete(f"/reservations/{body['reservationId']}")
    assert again.status_code == 404 and "error" in again.json()
    unknown = await legacy.client.delete("/reservations/does-not-exist")
    assert unknown.status_code == 404 and "error" in unknown.json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"partnerId": "a", "seats": 0}, "seats must be between 1 and 10"),
        ({"partnerId": "a", "seats": 11}, "seats must be between 1 and 10"),
        ({"partnerId": "a", "seats": "3"}, "seats must be between 1 and 10"),
        ({"partnerId": "a", "seats": 2.5}, "seats must be between 1 and 10"),
        ({"partnerId": "a"}, "seats is required"),
        ({"seats": 2}, "partnerId is required"),
        ({"partnerId": "", "seats": 2}, "partnerId is required"),
    ],
)
async def test_400_messages(legacy: Api, body: dict, message: str) -> None:
    r = await legacy.client.post("/reservations", json=body)
    assert r.status_code == 400 and r.json() == {"error": message}
    assert (await summary(legacy))["availableSeats"] == 500


async def test_not_enough_seats(legacy: Api) -> None:
    for _ in range(50):
        assert (
            await legacy.client.post("/reservations", json={"partnerId": "p", "seats": 10})
        ).status_code == 201
    r = await legacy.client.post("/reservations", json={"partnerId": "p", "seats": 1})
    assert r.status_code == 409 and r.json() == {"error": "Not enough seats left"}


async def test_sixty_concurrent_partners_never_oversell(legacy: Api) -> None:
    parallel = 60
    results = await asyncio.gather(
        *(
            legacy.client.post("/reservations", json={"partnerId": f"p{i}", "seats": 10})
            for i in range(parallel)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 50 and codes.count(409) == 10, [
        r.text for r in results if r.status_code not in (201, 409)
    ][:3]
    s = await summary(legacy)
    assert s["availableSeats"] == 0 and s["reservationCount"] == 50


async def test_ten_by_ten_all_succeed_and_add_up(legacy: Api) -> None:
    waves = 2 if legacy.ctx.storage.kind == "mongodb" else 1  # mongoeco: modest parallelism
    results = []
    for wave in range(waves):
        batch = range(wave * 10 // waves, (wave + 1) * 10 // waves)
        results += await asyncio.gather(
            *(
                legacy.client.post("/reservations", json={"partnerId": f"p{i}", "seats": 10})
                for i in batch
            )
        )
    assert [r.status_code for r in results] == [201] * 10
    s = await summary(legacy)
    assert s["availableSeats"] == 500 - 100 and s["reservationCount"] == 10
    event_id = s["eventId"]
    avail = (await legacy.client.get(f"/api/v1/events/{event_id}/availability")).json()["data"]
    assert avail["available"] == s["availableSeats"]  # one inventory, one invariant


async def test_bearer_tokens_are_required_without_anonymous_mode(sqlite_url: str) -> None:
    import uuid

    settings = make_settings(sqlite_url, ticketboss_event_id=f"meetup-{uuid.uuid4().hex[:8]}")
    async with running_api(settings) as api:
        r = await api.client.post("/reservations", json={"partnerId": "p", "seats": 1})
        assert r.status_code == 401 and "error" in r.json()
        partner = await api.partner()
        ok = await api.client.post(
            "/reservations",
            json={"partnerId": partner.client_id, "seats": 2},
            headers=partner.headers,
        )
        assert ok.status_code == 201
        by_id = await api.client.post(
            "/reservations",
            json={"partnerId": partner.id, "seats": 1},
            headers=partner.headers,
        )
        assert by_id.status_code == 201
        mismatch = await api.client.post(
            "/reservations",
            json={"partnerId": "someone-else", "seats": 1},
            headers=partner.headers,
        )
        assert mismatch.status_code == 403 and mismatch.json() == {
            "error": "partnerId does not match the bearer token"
        }
        user = await api.user()
        assert (
            await api.client.post(
                "/reservations", json={"partnerId": "x", "seats": 1}, headers=user.headers
            )
        ).status_code == 403
        other = await api.partner()
        rid = ok.json()["reservationId"]
        assert (
            await api.client.delete(f"/reservations/{rid}", headers=other.headers)
        ).status_code == 404
        assert (
            await api.client.delete(f"/reservations/{rid}", headers=partner.headers)
        ).status_code == 204
        key = {"Idempotency-Key": "resv-1"}
        first = await api.client.post(
            "/reservations",
            json={"partnerId": partner.id, "seats": 1},
            headers=partner.headers | key,
        )
        again = await api.client.post(
            "/reservations",
            json={"partnerId": partner.id, "seats": 1},
            headers=partner.headers | key,
        )
        assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"


async def test_reads_need_a_partner_token_and_list_only_its_own(sqlite_url: str) -> None:
    import uuid

    settings = make_settings(sqlite_url, ticketboss_event_id=f"meetup-{uuid.uuid4().hex[:8]}")
    async with running_api(settings) as api:
        for path in ("/reservations", "/reservations/list"):
            r = await api.client.get(path)
            assert r.status_code == 401 and "error" in r.json(), path
        user = await api.user()
        assert (await api.client.get("/reservations/list", headers=user.headers)).status_code == 403
        mine, theirs = await api.partner(), await api.partner()
        made = {}
        for who in (mine, theirs):
            r = await api.client.post(
                "/reservations", json={"partnerId": who.id, "seats": 2}, headers=who.headers
            )
            assert r.status_code == 201, r.text
            made[who.id] = r.json()["reservationId"]
        for who in (mine, theirs):
            listed = (await api.client.get("/reservations/list", headers=who.headers)).json()
            assert [(x["reservationId"], x["partnerId"]) for x in listed] == [
                (made[who.id], who.id)
            ]
        s = (await api.client.get("/reservations", headers=mine.headers)).json()
        assert (s["availableSeats"], s["reservationCount"]) == (496, 2)  # the event's counts
