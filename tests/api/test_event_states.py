"""Catalogue states that must not be reachable (issue 14), one test per finding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import Api, event_body

NEW_TIER = {"code": "NEW", "name": "New", "priceCents": 100, "capacity": 5}


@pytest.mark.parametrize("end", ["cancel", "complete"])
@pytest.mark.parametrize(
    "patch",
    [{"name": "Renamed"}, {"tiers": [NEW_TIER]}, {"tiers": [{"code": "GA", "capacity": 500}]}],
)
async def test_a_cancelled_or_completed_event_is_not_editable(
    sqlite_api: Api, end: str, patch: dict[str, object]
) -> None:
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer)
    r = await sqlite_api.client.post(
        f"/api/v1/events/{event['id']}/{end}", headers=organizer.headers
    )
    assert r.status_code == 200, r.text
    ended = r.json()["data"]
    r = await sqlite_api.client.patch(
        f"/api/v1/events/{event['id']}", json=patch, headers=organizer.headers
    )
    assert r.status_code == 409 and r.json()["code"] == "EVENT_NOT_EDITABLE", r.text
    after = await sqlite_api.client.get(f"/api/v1/events/{event['id']}", headers=organizer.headers)
    assert after.json()["data"]["version"] == ended["version"]
    assert [t["code"] for t in after.json()["data"]["tiers"]] == ["GA"]


async def test_a_draft_whose_start_has_passed_is_not_publishable(sqlite_api: Api) -> None:
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer, publish=False)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await sqlite_api.client.patch(
        f"/api/v1/events/{event['id']}", json={"startsAt": past}, headers=organizer.headers
    )
    assert r.status_code == 200, r.text
    r = await sqlite_api.client.post(
        f"/api/v1/events/{event['id']}/publish", headers=organizer.headers
    )
    assert r.status_code == 409 and r.json()["code"] == "EVENT_IN_PAST", r.text
    after = await sqlite_api.client.get(f"/api/v1/events/{event['id']}", headers=organizer.headers)
    assert after.json()["data"]["status"] == "draft"


@pytest.mark.parametrize("ago", [timedelta(seconds=1), timedelta(days=400)])
async def test_an_event_cannot_be_created_in_the_past(sqlite_api: Api, ago: timedelta) -> None:
    organizer = await sqlite_api.user("organizer")
    starts = (datetime.now(UTC) - ago).isoformat()
    r = await sqlite_api.client.post(
        "/api/v1/events", json=event_body(startsAt=starts), headers=organizer.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "startsAt", "message": "must be in the future"}]


@pytest.mark.parametrize("if_match", ["*", " * "])
async def test_if_match_star_matches_any_current_version(sqlite_api: Api, if_match: str) -> None:
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer)
    r = await sqlite_api.client.patch(
        f"/api/v1/events/{event['id']}",
        json={"name": "Renamed"},
        headers=organizer.headers | {"If-Match": if_match},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == event["version"] + 1
    r = await sqlite_api.client.patch(
        "/api/v1/events/missing", json={"name": "x"}, headers=organizer.headers | {"If-Match": "*"}
    )
    assert r.status_code == 404
