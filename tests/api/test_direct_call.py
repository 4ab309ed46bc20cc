"""Endpoints run without FastAPI's dependency solver (core/routing.DirectCall) answer exactly
what the solver's path answers: the same values, the same errors, in the same order."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from core.routing import ApiRoute, DirectCall
from modules.api import FEATURES
from tests.support.api import Api, event_body

VOLATILE = {"id", "requestId", "createdAt", "updatedAt", "expiresAt", "holdExpiresAt"}
VOLATILE |= {"ticketNumber", "bookingId", "reservationId", "timestamp"}
VOLATILE_HEADERS = {"date", "x-request-id", "content-length"}


def test_every_api_route_runs_without_the_solver() -> None:
    """The fast path is not silently lost when a route or a dependency changes shape."""
    routes = [r for f in FEATURES for r in f.router.routes if isinstance(r, ApiRoute)]
    assert len(routes) > 40
    solved = [
        f"{sorted(r.methods)} {r.path}"
        for r in routes
        if DirectCall.of(r.dependant, embedded_body=r._embed_body_fields) is None
    ]
    assert solved == []


def stable_headers(response: httpx.Response) -> dict[str, str]:
    """Every header but those that differ between any two requests (ids, dates, lengths of
    bodies that carry ids); a Location's presence stands in for its value."""
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    if "location" in headers:
        headers["location"] = "present"
    return headers


async def both_answers(
    api: Api, method: str, path: str, headers: dict[str, str], **options: Any
) -> list[tuple[int, Any, dict[str, str]]]:
    """The app's answer through the direct path, then through FastAPI's own solver."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    answers = []
    for forced in (False, True):
        # Any override at all sends every request through FastAPI's own solver.
        app.dependency_overrides = {normalized: lambda: None} if forced else {}
        try:
            r = await api.client.request(method, path, headers=headers, **options)
        finally:
            app.dependency_overrides = {}
        json = r.headers.get("content-type", "").startswith("application/json")
        answers.append((r.status_code, normalized(r.json() if json else r.text), stable_headers(r)))
    return answers


async def test_every_direct_route_answers_what_the_solver_answers(sqlite_api: Api) -> None:
    """Each route the fast path runs, called with no token and with a bad one (nothing can
    change between the two calls): the same status, body and headers either way."""
    routes = [r for f in FEATURES for r in f.router.routes if isinstance(r, ApiRoute)]
    compared = 0
    for route in routes:
        if DirectCall.of(route.dependant, embedded_body=route._embed_body_fields) is None:
            continue
        path = re.sub(r"{[^}]+}", "missing", route.path)
        for method in sorted(route.methods):
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                options: dict[str, Any] = {}
                if method in ("POST", "PUT", "PATCH"):
                    options["json"] = {}
                answers = await both_answers(sqlite_api, method, path, headers, **options)
                assert answers[0] == answers[1], (method, route.path, headers)
                compared += 1
    assert compared > 80


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


async def test_the_direct_path_answers_what_the_solver_answers(sqlite_api: Api) -> None:
    organizer = await sqlite_api.user("organizer")
    user = await sqlite_api.user()
    admin = await sqlite_api.user("admin")
    event = await sqlite_api.event(organizer)
    bad_event = event_body(tiers=[{"code": "GA", "name": "GA", "priceCents": -1, "capacity": 0}])
    key = {"Idempotency-Key": "fixed"}  # each variant gets its own key below when it books
    cases: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
        # (method, path, headers, request options)
        ("POST", "/api/v1/bookings", {}, {"json": {}}),
        ("POST", "/api/v1/bookings", user.headers, {"json": {}}),
        ("POST", "/api/v1/bookings", user.headers | {"Idempotency-Key": "x" * 300}, {"json": {}}),
        ("POST", "/api/v1/bookings", user.headers | key, {}),
        ("POST", "/api/v1/bookings", user.headers | key, {"content": b'{"eventId": 1}'}),
        (
            "POST",
            "/api/v1/bookings",
            user.headers | key | {"content-type": "text/plain"},
            {"content": b'{"eventId": "x", "tier": "GA", "quantity": 1}'},
        ),
        (
            "POST",
            "/api/v1/bookings",
            user.headers | key,
            {"json": {"eventId": event["id"], "tier": "GA", "quantity": "2", "hold": "yes"}},
        ),
        (
            "POST",
            "/api/v1/bookings",
            user.headers,
            {"json": {"eventId": "nope", "tier": "GA", "quantity": 1}},
        ),
        (
            "POST",
            "/api/v1/bookings",
            user.headers,
            {"json": {"eventId": event["id"], "tier": "GA", "quantity": 1}},
        ),
        ("GET", "/api/v1/bookings", user.headers, {"params": {"limit": "0", "status": "bogus"}}),
        ("GET", "/api/v1/bookings", user.headers, {"params": {"limit": "abc", "cursor": "!!"}}),
        ("GET", "/api/v1/bookings/missing", user.headers, {}),
        ("GET", "/api/v1/bookings/a%00b", user.headers, {}),
        ("GET", f"/api/v1/events/{event['id']}", {}, {}),
        ("GET", f"/api/v1/events/{event['id']}/availability", {}, {}),
        ("GET", "/api/v1/events", {}, {"params": {"limit": "500"}}),
        ("POST", "/api/v1/events", user.headers, {"json": event_body()}),
        ("POST", "/api/v1/events", organizer.headers, {"json": bad_event}),
        (
            "PATCH",
            f"/api/v1/events/{event['id']}",
            organizer.headers | {"If-Match": '"0"'},
            {"json": {"name": "x"}},
        ),
        ("GET", "/api/v1/activity", user.headers, {}),
        ("GET", "/api/v1/activity", admin.headers, {"params": {"from": "yesterday"}}),
        ("POST", "/api/v1/auth/token", {}, {"data": {"grant_type": "password"}}),
        ("POST", "/api/v1/auth/login", {}, {"json": {"email": "nobody@example.com"}}),
        ("GET", "/api/v1/auth/me", {"Authorization": "Bearer not-a-token"}, {}),
        ("POST", "/reservations", {}, {"json": {"partnerId": "p", "seats": 0}}),
        ("POST", "/api/tickets/book", user.headers, {"json": {"tier": "NOPE", "quantity": -1}}),
        ("GET", "/api/tickets/bookings", user.headers, {"params": {"userId": ""}}),
    ]
    app = sqlite_api.client._transport.app  # type: ignore[attr-defined]
    for method, path, headers, options in cases:
        answers = []
        for forced in (False, True):
            # Any override at all sends every request through FastAPI's own solver.
            app.dependency_overrides = {normalized: lambda: None} if forced else {}
            sent = dict(headers)
            if method == "POST" and "Idempotency-Key" not in sent and "/bookings" in path:
                sent["Idempotency-Key"] = uuid.uuid4().hex
            r = await sqlite_api.client.request(method, path, headers=sent, **options)
            body = (
                r.json()
                if r.headers.get("content-type", "").startswith("application/json")
                else r.text
            )
            answers.append((r.status_code, normalized(body), stable_headers(r)))
        app.dependency_overrides = {}
        assert answers[0] == answers[1], (method, path, options)
