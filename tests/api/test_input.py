"""Bad input gets a clear 4xx in the envelope, changes nothing, and is the same on every backend
(issue 14). Each test is one finding; routes are parametrised where the rule is "every"."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.api import Api, event_body, make_settings, running_api

NUL = "a\u0000b"


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def sql_url(request: pytest.FixtureRequest) -> str:
    """SQLite stores a NUL; PostgreSQL cannot: both must refuse it the same way."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def sql_api(sql_url: str) -> AsyncIterator[Api]:
    async with running_api(make_settings(sql_url)) as running:
        yield running


TIER = {"code": "GA", "name": "GA", "priceCents": 100, "capacity": 10}
BODY_FIELDS: list[tuple[str, str, str, dict[str, Any]]] = [
    # (who, method, path, body) — the NUL is in the one field named by the test id
    (
        "anon",
        "POST",
        "/api/v1/auth/register",
        {"email": "n@example.com", "password": "correct horse battery", "name": NUL},
    ),
    ("organizer", "POST", "/api/v1/events", event_body(name=NUL)),
    ("organizer", "POST", "/api/v1/events", event_body(venue=NUL)),
    ("organizer", "POST", "/api/v1/events", event_body(description=NUL)),
    ("organizer", "POST", "/api/v1/events", event_body(tiers=[TIER | {"name": NUL}])),
    ("organizer", "PATCH", "/api/v1/events/{event}", {"name": NUL}),
    ("organizer", "PATCH", "/api/v1/events/{event}", {"tiers": [{"code": "GA", "name": NUL}]}),
    ("admin", "POST", "/api/v1/partners", {"name": NUL}),
    (
        "user",
        "POST",
        "/api/v1/bookings",
        {"eventId": "{event}", "tier": "GA", "quantity": 1, "externalRef": NUL},
    ),
    ("user", "POST", "/api/v1/bookings", {"eventId": NUL, "tier": "GA", "quantity": 1}),
    (
        "user",
        "POST",
        "/api/v1/orders",
        {"eventId": "{event}", "items": [{"tier": "GA", "quantity": 1}], "externalRef": NUL},
    ),
    ("anon", "POST", "/api/v1/auth/refresh", {"refreshToken": NUL}),
]


def _fill(value: Any, event_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{event}", event_id)
    if isinstance(value, list):
        return [_fill(v, event_id) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, event_id) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("who", "method", "path", "body"), BODY_FIELDS)
async def test_control_characters_in_any_body_field_are_422(
    sql_api: Api, who: str, method: str, path: str, body: dict[str, Any]
) -> None:
    organizer = await sql_api.user("organizer")
    event = await sql_api.event(organizer)
    caller = {
        "anon": None,
        "organizer": organizer,
        "user": await sql_api.user(),
        "admin": await sql_api.user("admin"),
    }[who]
    headers = (caller.headers if caller else {}) | {"Idempotency-Key": f"nul-{path}"}
    r = await sql_api.client.request(
        method, _fill(path, event["id"]), json=_fill(body, event["id"]), headers=headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert "control characters" in r.text
    after = await sql_api.client.get(f"/api/v1/events/{event['id']}", headers=organizer.headers)
    assert after.json()["data"]["version"] == event["version"]  # nothing changed


async def test_control_characters_in_client_credentials_are_422(sql_api: Api) -> None:
    for form in (True, False):
        body = {"grant_type": "client_credentials", "client_id": NUL, "client_secret": "s"}
        r = await (
            sql_api.client.post("/api/v1/auth/token", data=body)
            if form
            else sql_api.client.post("/api/v1/auth/token", json=body)
        )
        assert r.status_code == 422, r.text


async def test_control_characters_in_the_partner_contract_are_400(sql_api: Api) -> None:
    partner = await sql_api.partner()
    r = await sql_api.client.post(
        "/reservations", json={"partnerId": NUL, "seats": 1}, headers=partner.headers
    )
    assert r.status_code == 400 and "control characters" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/demo%001",
        "/api/v1/events/demo%001/availability",
        "/api/v1/events/demo%001/activity",
        "/api/v1/bookings/demo%001",
        "/api/v1/orders/demo%001",
        "/api/v1/bookings/x%1f/activity",
    ],
)
async def test_control_characters_in_path_ids_are_404(sql_api: Api, path: str) -> None:
    admin = await sql_api.user("admin")
    r = await sql_api.client.get(path, headers=admin.headers)
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False


async def test_control_characters_in_contract_path_ids_are_404(sql_api: Api) -> None:
    partner = await sql_api.partner()
    r = await sql_api.client.delete("/reservations/x%00y", headers=partner.headers)
    assert r.status_code == 404 and "error" in r.json()


@pytest.mark.parametrize(
    "query",
    ["q=jazz%00", "cursor=%00", "status=published&q=%07", "type=booking.created%00"],
)
async def test_control_characters_in_query_filters_are_422(sql_api: Api, query: str) -> None:
    admin = await sql_api.user("admin")
    path = "/api/v1/activity" if query.startswith("type") else "/api/v1/events"
    r = await sql_api.client.get(f"{path}?{query}", headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("booking", {"quantity": True}),
        ("booking", {"quantity": "2"}),
        ("booking", {"quantity": 2.5}),
        ("booking", {"hold": "yes"}),
        ("order", {"items": [{"tier": "GA", "quantity": "2"}]}),
        ("order", {"hold": 1}),
        ("event", {"startsAt": 1900000000}),
        ("event", {"endsAt": 1900000000.5}),
        ("event", {"maxPerUser": "4"}),
        ("event", {"tiers": [{"code": "GA", "name": "GA", "priceCents": "2", "capacity": 10}]}),
        ("event", {"tiers": [{"code": "GA", "name": "GA", "priceCents": 2, "capacity": True}]}),
        ("patch", {"maxPerUser": True}),
        ("patch", {"startsAt": 1900000000}),
        ("patch", {"tiers": [{"code": "GA", "capacity": "50"}]}),
    ],
)
async def test_money_quantities_capacities_and_dates_are_strict(
    sqlite_api: Api, route: str, body: dict[str, Any]
) -> None:
    organizer = await sqlite_api.user("organizer")
    buyer = await sqlite_api.user()
    event = await sqlite_api.event(organizer)
    c = sqlite_api.client
    key = {"Idempotency-Key": f"strict-{route}-{body}"}
    match route:
        case "booking":
            full = {"eventId": event["id"], "tier": "GA", "quantity": 1} | body
            r = await c.post("/api/v1/bookings", json=full, headers=buyer.headers | key)
        case "order":
            full = {"eventId": event["id"], "items": [{"tier": "GA", "quantity": 1}]} | body
            r = await c.post("/api/v1/orders", json=full, headers=buyer.headers | key)
        case "event":
            r = await c.post("/api/v1/events", json=event_body(**body), headers=organizer.headers)
        case _:
            r = await c.patch(f"/api/v1/events/{event['id']}", json=body, headers=organizer.headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"
    seats = await c.get(f"/api/v1/events/{event['id']}/availability")
    assert seats.json()["data"]["available"] == 100  # nothing was booked


async def test_an_integral_number_is_an_integer(sqlite_api: Api) -> None:
    """JSON Schema's integer (the OpenAPI document's `integer`): 2.0 is 2, 2.5 is not."""
    organizer = await sqlite_api.user("organizer")
    buyer = await sqlite_api.user()
    event = await sqlite_api.event(organizer)
    body = {"eventId": event["id"], "items": [{"tier": "GA", "quantity": 2.0}]}
    headers = buyer.headers | {"Idempotency-Key": "integral"}
    r = await sqlite_api.client.post("/api/v1/orders", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["bookings"][0]["quantity"] == 2


DEEP = b"[" * 20_000 + b"]" * 20_000
HUGE_NUMBER = b'{"quantity": ' + b"9" * 5000 + b"}"
UNPARSEABLE = {"deep": DEEP, "huge-number": HUGE_NUMBER, "truncated": b'{"name": "x'}
JSON_ROUTES = [
    ("anon", "POST", "/api/v1/auth/register"),
    ("anon", "POST", "/api/v1/auth/login"),
    ("anon", "POST", "/api/v1/auth/refresh"),
    ("anon", "POST", "/api/v1/auth/token"),
    ("organizer", "POST", "/api/v1/events"),
    ("organizer", "PATCH", "/api/v1/events/{event}"),
    ("user", "POST", "/api/v1/bookings"),
    ("user", "POST", "/api/v1/orders"),
    ("admin", "POST", "/api/v1/partners"),
]


@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
@pytest.mark.parametrize(("who", "method", "path"), JSON_ROUTES)
async def test_an_unparseable_body_is_400_invalid_json_on_every_route(
    sqlite_api: Api, who: str, method: str, path: str, body: bytes
) -> None:
    """One code for one fault: whatever the parser trips on (depth, a number no double holds,
    a cut-off body), with or without an Idempotency-Key being fingerprinted."""
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer)
    callers = {"anon": None, "organizer": organizer, "user": await sqlite_api.user()}
    caller = callers.get(who) or await sqlite_api.user("admin")
    headers = {"content-type": "application/json", "Idempotency-Key": "deep-1"}
    if who != "anon":
        headers |= caller.headers
    r = await sqlite_api.client.request(
        method, path.replace("{event}", event["id"]), content=body, headers=headers
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_JSON"


@pytest.mark.parametrize("action", ["publish", "cancel", "complete"])
async def test_a_deep_body_on_a_bodiless_route_with_a_key_is_not_a_500(
    sqlite_api: Api, action: str
) -> None:
    """The Idempotency-Key fingerprint reads the body of routes that take none."""
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer, publish=action != "publish")
    r = await sqlite_api.client.post(
        f"/api/v1/events/{event['id']}/{action}",
        content=DEEP,
        headers=organizer.headers | {"content-type": "application/json", "Idempotency-Key": "k"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken"),
        ("application/x-www-form-urlencoded", b"grant_type=" + b"%5B" * 20_000),
    ],
)
async def test_a_broken_token_form_is_422_not_http_error(
    sqlite_api: Api, content_type: str, body: bytes
) -> None:
    r = await sqlite_api.client.post(
        "/api/v1/auth/token", content=body, headers={"content-type": content_type}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _b64(b"o:99999999999999999999"),  # the 500 of issue 14: an offset no database takes
        _b64(b"o:10001"),
        _b64(b"o:-1"),
        _b64(b"o:1e3"),
        _b64(b"\xff\xfe"),
        "%%%",
        "A" * 200,
    ],
)
async def test_a_malformed_or_out_of_range_search_cursor_is_400(api: Api, cursor: str) -> None:
    r = await api.client.get("/api/v1/events", params={"q": "jazz", "cursor": cursor})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_CURSOR"


@pytest.mark.parametrize(
    "body",
    [
        b'{"eventId": "{event}", "tier": "GA", "quantity": 1, "quantity": 5}',
        b'{"eventId": "{event}", "tier": "GA", "quantity": 1, "note": "at 10:00", "tier": "VIP"}',
        b'{"eventId": "{event}", "tier": "GA", "quantity": 1, "x": {"a": 1, "a": 2}}',
    ],
    ids=["top-level", "with-colons-in-strings", "nested"],
)
async def test_a_key_given_twice_is_400_and_books_nothing(sqlite_api: Api, body: bytes) -> None:
    organizer = await sqlite_api.user("organizer")
    event = await sqlite_api.event(organizer)
    user = await sqlite_api.user()
    headers = user.headers | {"content-type": "application/json", "Idempotency-Key": "dup-1"}
    raw = body.replace(b"{event}", event["id"].encode())
    r = await sqlite_api.client.post("/api/v1/bookings", content=raw, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_JSON" and r.json()["success"] is False
    mine = await sqlite_api.client.get("/api/v1/bookings", headers=user.headers)
    assert mine.json()["data"] == []
    contract = await sqlite_api.client.post(
        "/reservations",
        content=b'{"partnerId": "p", "seats": 1, "seats": 2}',
        headers=(await sqlite_api.partner()).headers | {"content-type": "application/json"},
    )
    assert contract.status_code == 400 and "error" in contract.json()
