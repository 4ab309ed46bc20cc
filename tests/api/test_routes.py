"""Paths and methods (issue 14): the contracts' paths answer with and without a trailing slash,
directly, and a 405 names every method the path serves."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import Api


@pytest.mark.parametrize("slash", ["", "/"])
async def test_every_partner_contract_path_answers_with_and_without_a_slash(
    sqlite_api: Api, slash: str
) -> None:
    partner = await sqlite_api.partner()
    headers = partner.headers | {"Idempotency-Key": uuid.uuid4().hex}
    c = sqlite_api.client
    r = await c.post(
        f"/reservations{slash}", json={"partnerId": partner.id, "seats": 2}, headers=headers
    )
    assert r.status_code == 201, r.text  # not 307: supertest and others do not re-POST
    reservation = r.json()["reservationId"]
    r = await c.get(f"/reservations{slash}", headers=partner.headers)
    assert r.status_code == 200 and r.json()["reservationCount"] >= 1
    r = await c.get(f"/reservations/list{slash}", headers=partner.headers)
    assert r.status_code == 200 and any(i["reservationId"] == reservation for i in r.json())
    r = await c.get(f"/healthcheck{slash}")
    assert r.status_code == 200
    r = await c.delete(f"/reservations/{reservation}{slash}", headers=partner.headers)
    assert r.status_code == 204, r.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/reservations/list", {"GET", "DELETE"}),  # DELETE: /reservations/{id}
        ("PUT", "/reservations", {"GET", "POST"}),
        ("PUT", "/api/v1/events/some-id", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/v1/bookings", {"GET", "POST"}),
        ("POST", "/api/v1/auth/me", {"GET"}),
    ],
)
async def test_405_names_every_method_of_the_path(
    sqlite_api: Api, method: str, path: str, allow: set[str]
) -> None:
    r = await sqlite_api.client.request(method, path)
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["Allow"].split(",")} == allow
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"
