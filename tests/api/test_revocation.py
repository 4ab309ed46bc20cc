"""A role change, a logout and a partner's new secret end the old access tokens at once, on
the in-process cache and on Redis (whose cached versions the bumps overwrite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.support.api import Api, make_settings, running_api


@pytest.fixture
async def app(sqlite_url: str, cache_url: str | None) -> AsyncIterator[Api]:
    async with running_api(make_settings(sqlite_url, redis_url=cache_url)) as running:
        yield running


async def test_a_demoted_admin_loses_its_rights_at_once(app: Api) -> None:
    boss, demoted = await app.user("admin"), await app.user("admin")
    me = await app.client.get("/api/v1/auth/me", headers=demoted.headers)
    assert me.status_code == 200  # its token version is cached now
    r = await app.client.patch(
        f"/api/v1/users/{demoted.id}", json={"role": "user"}, headers=boss.headers
    )
    assert r.status_code == 200, r.text

    partner = await app.client.post(
        "/api/v1/partners", json={"name": "rogue"}, headers=demoted.headers
    )
    assert partner.status_code == 401, partner.text
    assert partner.json()["code"] == "INVALID_TOKEN"
    promote = await app.client.patch(
        f"/api/v1/users/{demoted.id}", json={"role": "admin"}, headers=demoted.headers
    )
    assert promote.status_code == 401, promote.text
    assert (await app.ctx.storage.users.get(demoted.id)).role == "user"  # type: ignore[union-attr]

    # a new session carries the new role
    r = await app.client.post(
        "/api/v1/auth/login", json={"email": demoted.email, "password": demoted.password}
    )
    fresh = {"Authorization": f"Bearer {r.json()['data']['accessToken']}"}
    assert (await app.client.get("/api/v1/auth/me", headers=fresh)).status_code == 200
    again = await app.client.post("/api/v1/partners", json={"name": "rogue"}, headers=fresh)
    assert again.status_code == 403


async def test_a_refreshed_token_survives_the_role_change_it_follows(app: Api) -> None:
    boss, user = await app.user("admin"), await app.user()
    r = await app.client.patch(
        f"/api/v1/users/{user.id}", json={"role": "organizer"}, headers=boss.headers
    )
    assert r.status_code == 200
    r = await app.client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh})
    assert r.status_code == 200, r.text
    organizer = replace(user, access_token=r.json()["data"]["accessToken"])
    me = await app.client.get("/api/v1/auth/me", headers=organizer.headers)
    assert me.status_code == 200 and me.json()["data"]["role"] == "organizer"
    assert (await app.event(organizer))["status"] == "published"
    old = await app.client.get("/api/v1/auth/me", headers=user.headers)
    assert old.status_code == 401


async def test_after_logout_the_access_token_is_401(app: Api) -> None:
    user = await app.user()
    assert (await app.client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200
    r = await app.client.post(
        "/api/v1/auth/logout", json={"refreshToken": user.refresh}, headers=user.headers
    )
    assert r.status_code == 204, r.text
    me = await app.client.get("/api/v1/auth/me", headers=user.headers)
    assert me.status_code == 401 and me.json()["code"] == "INVALID_TOKEN"
    booking = await app.client.get("/api/v1/bookings", headers=user.headers)
    assert booking.status_code == 401


async def test_a_rotated_partner_secret_ends_the_old_tokens(app: Api) -> None:
    admin = await app.user("admin")
    partner = await app.partner(admin)
    assert (await app.client.get("/api/v1/auth/me", headers=partner.headers)).status_code == 200
    r = await app.client.post(f"/api/v1/partners/{partner.id}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200, r.text
    secret = r.json()["data"]["clientSecret"]
    me = await app.client.get("/api/v1/auth/me", headers=partner.headers)
    assert me.status_code == 401 and me.json()["code"] == "INVALID_TOKEN"
    reserve = await app.client.post(
        "/reservations",
        json={"partnerId": partner.id, "seats": 1},
        headers=partner.headers | {"Idempotency-Key": "k1"},
    )
    assert reserve.status_code == 401
    r = await app.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200, r.text
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await app.client.get("/api/v1/auth/me", headers=fresh)).status_code == 200


async def test_a_revoked_token_books_nothing_and_leaves_its_key_free(app: Api) -> None:
    """The token check travels with the Idempotency-Key's claim: a revoked token gets 401,
    its claim is released, and the same key then books once for the fresh session."""
    organizer, buyer = await app.user("organizer"), await app.user()
    event = await app.event(organizer)
    body = {"eventId": event["id"], "tier": "GA", "quantity": 1}
    old = buyer.headers | {"Idempotency-Key": "after-logout"}
    assert (await app.client.get("/api/v1/auth/me", headers=buyer.headers)).status_code == 200
    r = await app.client.post(
        "/api/v1/auth/logout", json={"refreshToken": buyer.refresh}, headers=buyer.headers
    )
    assert r.status_code in (200, 204), r.text

    refused = await app.client.post("/api/v1/bookings", json=body, headers=old)
    assert refused.status_code == 401 and refused.json()["code"] == "INVALID_TOKEN"
    r = await app.client.post(
        "/api/v1/auth/login", json={"email": buyer.email, "password": buyer.password}
    )
    fresh = {"Authorization": f"Bearer {r.json()['data']['accessToken']}"}
    made = await app.client.post(
        "/api/v1/bookings", json=body, headers=fresh | {"Idempotency-Key": "after-logout"}
    )
    assert made.status_code == 201, made.text
    availability = await app.client.get(f"/api/v1/events/{event['id']}/availability")
    tiers = availability.json()["data"]["tiers"]
    assert sum(t["confirmed"] + t["pending"] for t in tiers) == 1
