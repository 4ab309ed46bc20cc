"""The tiered ticket-booking contract (`/api/tickets`): shapes, every error, the caller modes.

Tests whose answer depends on storage run on every backend; HTTP-only ones run once, on SQLite.
Each app gets a show of its own, so counts start at the configured capacities.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core import clock
from tests.support.api import Api, make_settings, running_api

VIP = 12  # a small VIP tier, so that selling out takes a few requests
TIERS = {
    "VIP": (10_000, VIP),
    "FRONT_ROW": (5_000, 200),
    "GA": (1_000, 1_000),
}
SOLD_OUT = {
    "code": "INSUFFICIENT_TICKETS",
    "message": "Requested quantity exceeds available tickets",
    "errors": [{"path": "quantity", "message": "Requested quantity exceeds available tickets"}],
}


def show_settings(database_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "ticketboss_tiered_event_id": f"tiered-{uuid.uuid4().hex[:8]}",
        "ticketboss_tiered_vip_capacity": VIP,
    }
    return make_settings(database_url, **(values | overrides))


@pytest.fixture
async def show(database_url: str) -> AsyncIterator[Api]:
    """Anonymous mode, on every backend."""
    async with running_api(show_settings(database_url, ticketboss_anonymous_tiers=True)) as api:
        yield api


@pytest.fixture
async def anonymous(sqlite_url: str) -> AsyncIterator[Api]:
    """Anonymous mode, on SQLite only."""
    async with running_api(show_settings(sqlite_url, ticketboss_anonymous_tiers=True)) as api:
        yield api


@pytest.fixture
async def secured(sqlite_url: str) -> AsyncIterator[Api]:
    """The default: bearer tokens required."""
    async with running_api(show_settings(sqlite_url)) as api:
        yield api


def show_id(api: Api) -> str:
    return api.ctx.settings.ticketboss_tiered_event_id


async def tickets(api: Api) -> dict[str, dict[str, Any]]:
    r = await api.client.get("/api/tickets")
    assert r.status_code == 200, r.text
    return {t["tier"]: t for t in r.json()}


async def book(
    api: Api, user_id: Any = "user-42", tier: Any = "VIP", quantity: Any = 1, **kw: Any
) -> httpx.Response:
    body = {"userId": user_id, "tier": tier, "quantity": quantity}
    return await api.client.post("/api/tickets/book", json=body, **kw)


async def listing(api: Api, user_id: str, **kw: Any) -> httpx.Response:
    return await api.client.get("/api/tickets/bookings", params={"userId": user_id}, **kw)


async def cancel(api: Api, booking_id: str, user_id: str, **kw: Any) -> httpx.Response:
    return await api.client.post(
        f"/api/tickets/bookings/{booking_id}/cancel", json={"userId": user_id}, **kw
    )


# Shapes, on every backend


async def test_the_show_is_bootstrapped_with_three_priced_tiers(show: Api) -> None:
    r = await show.client.get("/api/tickets")
    assert r.status_code == 200 and isinstance(r.json(), list)
    assert r.json() == [
        {
            "tier": tier,
            "price": cents / 100,
            "priceCents": cents,
            "currency": "USD",
            "totalQuantity": capacity,
            "availableQuantity": capacity,
        }
        for tier, (cents, capacity) in TIERS.items()
    ]
    event = (await show.client.get(f"/api/v1/events/{show_id(show)}")).json()["data"]
    assert event["status"] == "published"


async def test_booking_answers_the_contract_and_counts_in_the_one_inventory(show: Api) -> None:
    r = await book(show, quantity=3)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "bookingId",
        "tier",
        "bookedQuantity",
        "remainingQuantity",
        "totalPriceCents",
    }
    assert (body["tier"], body["bookedQuantity"], body["remainingQuantity"]) == ("VIP", 3, VIP - 3)
    assert body["totalPriceCents"] == 30_000
    front = (await book(show, "user-7", "FRONT_ROW", 2)).json()
    assert front["remainingQuantity"] == 198 and front["totalPriceCents"] == 10_000
    # read-your-writes through the availability cache, and the same numbers as /api/v1
    listed = await tickets(show)
    assert listed["VIP"]["availableQuantity"] == VIP - 3
    assert listed["FRONT_ROW"]["availableQuantity"] == 198
    avail = (await show.client.get(f"/api/v1/events/{show_id(show)}/availability")).json()["data"]
    assert {t["code"]: t["available"] for t in avail["tiers"]} == {
        tier: t["availableQuantity"] for tier, t in listed.items()
    }


async def test_a_shortage_is_a_clean_422_that_writes_nothing(show: Api) -> None:
    assert (await book(show, quantity=10)).status_code == 201
    r = await book(show, quantity=3)
    assert r.status_code == 422
    assert r.json() == SOLD_OUT | {"availableQuantity": VIP - 10}
    assert (await tickets(show))["VIP"]["availableQuantity"] == VIP - 10
    last = await book(show, quantity=2)
    assert last.status_code == 201 and last.json()["remainingQuantity"] == 0
    assert (await book(show, quantity=1)).json() == SOLD_OUT | {"availableQuantity": 0}


async def test_listing_and_cancelling_by_user_id(show: Api) -> None:
    first = (await book(show, "ann", "VIP", 2)).json()
    second = (await book(show, "ann", "GA", 4)).json()
    others = (await book(show, "bob", "VIP", 1)).json()
    r = await listing(show, "ann")
    assert r.status_code == 200
    assert [b["bookingId"] for b in r.json()] == [second["bookingId"], first["bookingId"]]
    assert r.json()[1] == {
        "bookingId": first["bookingId"],
        "userId": "ann",
        "tier": "VIP",
        "quantity": 2,
        "status": "confirmed",
        "totalPriceCents": 20_000,
        "createdAt": r.json()[1]["createdAt"],
    }
    assert [b["bookingId"] for b in (await listing(show, "bob")).json()] == [others["bookingId"]]
    assert (await listing(show, "nobody")).json() == []

    not_hers = await cancel(show, others["bookingId"], "ann")
    assert not_hers.status_code == 404 and not_hers.json()["code"] == "BOOKING_NOT_FOUND"
    assert not_hers.json()["errors"][0]["path"] == "bookingId"
    r = await cancel(show, first["bookingId"], "ann")
    assert r.status_code == 200
    assert r.json() == {
        "bookingId": first["bookingId"],
        "tier": "VIP",
        "status": "cancelled",
        "releasedQuantity": 2,
        "remainingQuantity": VIP - 1,
    }
    assert (await tickets(show))["VIP"]["availableQuantity"] == VIP - 1  # the seats came back
    again = await cancel(show, first["bookingId"], "ann")
    assert again.status_code == 409 and again.json()["code"] == "BOOKING_NOT_CANCELLABLE"
    statuses = {b["bookingId"]: b["status"] for b in (await listing(show, "ann")).json()}
    assert statuses == {first["bookingId"]: "cancelled", second["bookingId"]: "confirmed"}
    unknown = await cancel(show, "does-not-exist", "ann")
    assert unknown.status_code == 404 and unknown.json()["code"] == "BOOKING_NOT_FOUND"


async def test_concurrent_buyers_never_oversell(show: Api) -> None:
    parallel = 8 if show.ctx.storage.kind == "mongodb" else 24  # mongoeco: modest parallelism
    results = await asyncio.gather(*(book(show, f"u{i}", quantity=1) for i in range(parallel)))
    codes = sorted(r.status_code for r in results)
    sold = min(parallel, VIP)
    assert codes == [201] * sold + [422] * (parallel - sold), [r.text for r in results][:3]
    remaining = [r.json()["remainingQuantity"] for r in results if r.status_code == 201]
    assert min(remaining) == VIP - sold and all(x >= 0 for x in remaining)
    assert (await tickets(show))["VIP"]["availableQuantity"] == VIP - sold


# Every error (HTTP only: SQLite)


async def test_an_integral_number_is_a_quantity(anonymous: Api) -> None:
    """JSON Schema's integer: 2.0 is 2, as the OpenAPI document's `integer` promises."""
    r = await book(anonymous, "fan", quantity=2.0)
    assert r.status_code == 201, r.text
    assert r.json()["bookedQuantity"] == 2


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "", "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "   ", "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": 42, "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": None, "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "x" * 51, "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "a\nb", "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "u", "tier": "VIP", "quantity": 0}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": 11}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": -1}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": True}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": "2"}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": 2.5}, ["quantity"]),
        ({"userId": "u", "tier": "VIP", "quantity": 2.000001}, ["quantity"]),
        ({"userId": "\u00a0", "tier": "VIP", "quantity": 1}, ["userId"]),
        ({"userId": "u", "tier": "VIP", "quantity": None}, ["quantity"]),
        ({"userId": "u", "tier": "VIP"}, ["quantity"]),
        ({"userId": "u", "quantity": 1}, ["tier"]),
        ({"userId": "u", "tier": 7, "quantity": 1}, ["tier"]),
        ({"userId": "u", "tier": "", "quantity": 1}, ["tier"]),
        ({}, ["userId", "tier", "quantity"]),
    ],
)
async def test_invalid_bodies_are_400_naming_each_field(
    anonymous: Api, body: dict[str, Any], paths: list[str]
) -> None:
    r = await anonymous.client.post("/api/tickets/book", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "VALIDATION_ERROR" and r.json()["message"]
    assert [e["path"] for e in r.json()["errors"]] == paths
    assert all(e["message"] for e in r.json()["errors"])
    assert (await tickets(anonymous))["VIP"]["availableQuantity"] == VIP


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b"[1, 2]", b'"VIP"', b"", b"null", b'{"a": NaN}', b"[" * 5000]
)
async def test_malformed_bodies_are_400(anonymous: Api, raw: bytes) -> None:
    for path in ("/api/tickets/book", "/api/tickets/bookings/some-id/cancel"):
        r = await anonymous.client.post(
            path, content=raw, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert [e["path"] for e in r.json()["errors"]] == ["body"]


async def test_unknown_tier_is_404_ticket_not_found(anonymous: Api) -> None:
    for tier in ("BALCONY", "vip", "GA "):
        r = await book(anonymous, tier=tier)
        assert r.status_code == 404
        assert r.json()["code"] == "TICKET_NOT_FOUND"
        assert r.json()["errors"][0]["path"] == "tier"


async def test_user_id_is_required_to_list_and_cancel(anonymous: Api) -> None:
    for params in ({}, {"userId": ""}, {"userId": "x" * 51}):
        r = await anonymous.client.get("/api/tickets/bookings", params=params)
        assert r.status_code == 400 and r.json()["errors"][0]["path"] == "userId"
    booking = (await book(anonymous)).json()["bookingId"]
    for body in ({}, {"userId": ""}, {"userId": 5}):
        r = await anonymous.client.post(f"/api/tickets/bookings/{booking}/cancel", json=body)
        assert r.status_code == 400 and r.json()["errors"][0]["path"] == "userId"
    long_id = await cancel(anonymous, "b" * 500, "user-42")
    assert long_id.status_code == 404 and long_id.json()["code"] == "BOOKING_NOT_FOUND"


# Callers


async def test_without_a_token_only_the_listing_of_tickets_is_open(secured: Api) -> None:
    assert (await secured.client.get("/api/tickets")).status_code == 200
    for r in (
        await book(secured),
        await listing(secured, "user-42"),
        await cancel(secured, "some-id", "user-42"),
    ):
        assert r.status_code == 401, r.text
        assert set(r.json()) == {"code", "message", "errors"}
        assert r.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await book(secured, headers=bad)).status_code == 401
    assert (await tickets(secured))["VIP"]["availableQuantity"] == VIP


async def test_an_invalid_token_is_refused_even_in_anonymous_mode(anonymous: Api) -> None:
    for headers in ({"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        r = await book(anonymous, headers=headers)
        assert r.status_code == 401 and r.json()["code"] in ("INVALID_TOKEN", "UNAUTHORIZED")


async def test_a_user_books_lists_and_cancels_as_themselves(secured: Api) -> None:
    user = await secured.user()
    r = await book(secured, user.id, quantity=2, headers=user.headers)
    assert r.status_code == 201
    booking = r.json()["bookingId"]
    mismatch = await book(secured, "user-42", headers=user.headers)
    assert mismatch.status_code == 403
    assert mismatch.json() == {
        "code": "USER_MISMATCH",
        "message": "userId does not match the bearer token",
        "errors": [{"path": "userId", "message": "userId does not match the bearer token"}],
    }
    assert (await listing(secured, "user-42", headers=user.headers)).status_code == 403
    listed = (await listing(secured, user.id, headers=user.headers)).json()
    assert [b["bookingId"] for b in listed] == [booking] and listed[0]["userId"] == user.id
    # the same booking through /api/v1: one inventory, one owner
    mine = (await secured.client.get("/api/v1/bookings", headers=user.headers)).json()["data"]
    assert [b["id"] for b in mine] == [booking]
    other = await secured.user()
    assert (await cancel(secured, booking, other.id, headers=other.headers)).status_code == 404
    assert (await cancel(secured, booking, user.id, headers=other.headers)).status_code == 403
    assert (await cancel(secured, booking, user.id, headers=user.headers)).status_code == 200
    assert (await tickets(secured))["VIP"]["availableQuantity"] == VIP


async def test_a_partner_books_for_its_customers_by_reference(secured: Api) -> None:
    partner = await secured.partner()
    r = await book(secured, "cust-1", "GA", 3, headers=partner.headers)
    assert r.status_code == 201
    first = r.json()["bookingId"]
    second = (await book(secured, "cust-2", "GA", 1, headers=partner.headers)).json()["bookingId"]
    stored = await secured.ctx.storage.bookings.get(first)
    assert stored is not None
    assert (stored.owner_id, stored.partner_id, stored.external_ref) == (
        partner.id,
        partner.id,
        "cust-1",
    )
    listed = (await listing(secured, "cust-1", headers=partner.headers)).json()
    assert [b["bookingId"] for b in listed] == [first] and listed[0]["userId"] == "cust-1"
    other = await secured.partner()
    assert (await listing(secured, "cust-1", headers=other.headers)).json() == []
    assert (await cancel(secured, first, "cust-1", headers=other.headers)).status_code == 404
    assert (await cancel(secured, first, "cust-2", headers=partner.headers)).status_code == 404
    assert (await cancel(secured, first, "cust-1", headers=partner.headers)).status_code == 200
    still = (await listing(secured, "cust-2", headers=partner.headers)).json()
    assert [(b["bookingId"], b["status"]) for b in still] == [(second, "confirmed")]


async def test_anonymous_buyers_cannot_touch_a_registered_users_bookings(
    sqlite_url: str,
) -> None:
    async with running_api(show_settings(sqlite_url, ticketboss_anonymous_tiers=True)) as api:
        user = await api.user()
        booking = (await book(api, user.id, headers=user.headers)).json()["bookingId"]
        assert (await listing(api, user.id)).json() == []  # no token: another buyer's name space
        assert (await cancel(api, booking, user.id)).status_code == 404
        anonymous = (await book(api, user.id)).json()["bookingId"]
        stored = await api.ctx.storage.bookings.get(anonymous)
        assert stored is not None and stored.owner_id == f"anon:{user.id}"
        mine = (await listing(api, user.id, headers=user.headers)).json()
        assert [b["bookingId"] for b in mine] == [booking]


async def test_anonymous_mode_is_announced_at_start(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_api(show_settings(sqlite_url)):
        pass
    assert "anonymous_tiers_enabled" not in capsys.readouterr().err
    async with running_api(show_settings(sqlite_url, ticketboss_anonymous_tiers=True)):
        pass
    lines = [line for line in capsys.readouterr().err.splitlines() if "anonymous_tiers" in line]
    assert len(lines) == 1 and '"level": "warning"' in lines[0]


# Idempotency, paths, OpenAPI (SQLite)


async def test_idempotency_key_replays_the_first_answer(anonymous: Api) -> None:
    key = {"Idempotency-Key": "tickets-1"}
    first = await book(anonymous, quantity=2, headers=key)
    again = await book(anonymous, quantity=2, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert (await tickets(anonymous))["VIP"]["availableQuantity"] == VIP - 2
    reused = await book(anonymous, quantity=3, headers=key)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert set(reused.json()) == {"code", "message", "errors"}
    booking = first.json()["bookingId"]
    cancel_key = {"Idempotency-Key": "tickets-cancel-1"}
    done = await cancel(anonymous, booking, "user-42", headers=cancel_key)
    replay = await cancel(anonymous, booking, "user-42", headers=cancel_key)
    assert done.status_code == replay.status_code == 200 and replay.content == done.content
    bad = await book(anonymous, headers={"Idempotency-Key": "x" * 256})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_IDEMPOTENCY_KEY"


async def test_every_path_answers_with_a_trailing_slash_too(anonymous: Api) -> None:
    c = anonymous.client
    r = await c.get("/api/tickets/")
    assert r.status_code == 200 and len(r.json()) == 3
    r = await c.post("/api/tickets/book/", json={"userId": "s", "tier": "GA", "quantity": 1})
    assert r.status_code == 201
    booking = r.json()["bookingId"]
    r = await c.get("/api/tickets/bookings/", params={"userId": "s"})
    assert r.status_code == 200 and [b["bookingId"] for b in r.json()] == [booking]
    r = await c.post(f"/api/tickets/bookings/{booking}/cancel/", json={"userId": "s"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_the_openapi_document_describes_the_contract(sqlite_api: Api) -> None:
    spec = (await sqlite_api.client.get("/openapi.json")).json()
    paths = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/tickets")}
    assert set(paths) == {
        "/api/tickets",
        "/api/tickets/book",
        "/api/tickets/bookings",
        "/api/tickets/bookings/{booking_id}/cancel",
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["TicketsError"]["required"]) == {"code", "message", "errors"}
    error_ref = {"$ref": "#/components/schemas/TicketsError"}
    envelope_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for ops in paths.values():
        for op in ops.values():
            assert op["tags"] == ["tickets (tiered contract)"]
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    # 413: the body limit answers before any route, in the API's envelope
                    ref = envelope_ref if status == "413" else error_ref
                    assert response["content"]["application/json"]["schema"] == ref
    book_op = paths["/api/tickets/book"]["post"]
    assert {"201", "400", "401", "403", "404", "422"} <= set(book_op["responses"])
    assert book_op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BookOut"
    }
    body = book_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"userId", "tier", "quantity"}
    assert body["properties"]["quantity"]["maximum"] == 10
    assert "Idempotency-Key" in [p["name"] for p in book_op["parameters"]]
    cancel_op = paths["/api/tickets/bookings/{booking_id}/cancel"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in cancel_op["parameters"]]
    listing_op = paths["/api/tickets/bookings"]["get"]
    assert "userId" in [p["name"] for p in listing_op["parameters"]]
    listed = paths["/api/tickets"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["type"] == "array"
    assert listed["schema"]["items"] == {"$ref": "#/components/schemas/TicketOut"}


async def test_the_default_show(sqlite_api: Api) -> None:
    listed = await tickets(sqlite_api)
    assert {t: (x["priceCents"], x["totalQuantity"]) for t, x in listed.items()} == {
        "VIP": (10_000, 100),
        "FRONT_ROW": (5_000, 200),
        "GA": (1_000, 1_000),
    }
    event = await sqlite_api.ctx.storage.events.get("tiered-show")
    assert event is not None and event.starts_at > clock.now() and event.status == "published"
