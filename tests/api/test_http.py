"""The HTTP envelope and middleware: request ids, security headers, body limit, gzip, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, make_settings, running_api


@pytest.fixture
async def small_body_api(sqlite_url: str) -> AsyncIterator[Api]:
    async with running_api(make_settings(sqlite_url, max_body_bytes=200)) as api:
        yield api


async def test_request_id_is_echoed_or_made(sqlite_api: Api) -> None:
    r = await sqlite_api.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = await sqlite_api.client.get("/health", headers={"X-Request-ID": "bad id with spaces!"})
    assert (
        r.headers["X-Request-ID"] != "bad id with spaces!" and len(r.headers["X-Request-ID"]) == 32
    )
    r = await sqlite_api.client.get("/api/v1/events/nope", headers={"X-Request-ID": "trace-9"})
    assert r.json()["requestId"] == "trace-9"


async def test_security_headers(sqlite_api: Api) -> None:
    r = await sqlite_api.client.get("/api/v1/events")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    docs = await sqlite_api.client.get("/docs")  # HTML pages: the strict page policy
    assert (
        docs.status_code == 200 and "script-src 'self';" in docs.headers["Content-Security-Policy"]
    )


async def test_body_limit_is_413_and_changes_nothing(small_body_api: Api) -> None:
    r = await small_body_api.client.post(
        "/api/v1/auth/register",
        content=b'{"email": "' + b"a" * 500 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks():  # no Content-Length: the streamed body is counted
        for _ in range(10):
            yield b"x" * 50

    r = await small_body_api.client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_malformed_json_is_400(sqlite_api: Api) -> None:
    r = await sqlite_api.client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "INVALID_JSON"


async def test_unknown_route_and_method(sqlite_api: Api) -> None:
    r = await sqlite_api.client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json() | {"requestId": None} == {
        "success": False,
        "message": "Route not found",
        "code": "NOT_FOUND",
        "errors": [],
        "requestId": None,
    }
    r = await sqlite_api.client.put("/health")
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_unhandled_errors_hide_internals(sqlite_url: str) -> None:
    from fastapi import APIRouter

    from core.app import Feature, create_app

    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("secret internal detail")

    import httpx

    app = create_app(make_settings(sqlite_url), [Feature(boom)])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/api/v1/boom")
    assert r.status_code == 500
    assert r.json()["code"] == "INTERNAL_ERROR" and "secret" not in r.text


async def test_gzip_for_large_responses(sqlite_api: Api) -> None:
    organizer = await sqlite_api.user("organizer")
    for _ in range(5):
        await sqlite_api.event(organizer)
    r = await sqlite_api.client.get("/api/v1/events", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("Content-Encoding") == "gzip"
    small = await sqlite_api.client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers


async def test_openapi_and_metrics(sqlite_url: str) -> None:
    async with running_api(make_settings(sqlite_url), client="127.0.0.1") as local:
        schema = (await local.client.get("/openapi.json")).json()
        assert "/api/v1/bookings" in schema["paths"] and "/reservations" in schema["paths"]
        await local.client.get("/health")
        metrics = (await local.client.get("/metrics")).text
        assert "ticketboss_request_seconds_bucket" in metrics
        assert "# HELP ticketboss_bookings_total" in metrics


async def test_metrics_answer_loopback_or_the_metrics_token(sqlite_url: str) -> None:
    async with running_api(make_settings(sqlite_url)) as remote:
        r = await remote.client.get("/metrics")
        assert r.status_code == 403 and r.json()["success"] is False
        assert "ticketboss_" not in r.text
    settings = make_settings(sqlite_url, metrics_token="scrape-0123456789")
    async with running_api(settings) as remote:
        assert (await remote.client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer scrape-0123456788"}
        assert (await remote.client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-0123456789"}
        r = await remote.client.get("/metrics", headers=right)
        assert r.status_code == 200 and "ticketboss_request_seconds_bucket" in r.text


async def test_ready_reports_components(sqlite_api: Api) -> None:
    r = await sqlite_api.client.get("/ready")
    assert r.status_code == 200
    assert r.json()["components"] == {
        "database": {"status": "up", "backend": "sqlite"},
        "cache": {"status": "up", "backend": "fakeredis"},
    }


async def test_ready_with_postgres_and_redis(postgresql_url: str, redis_url: str) -> None:
    async with running_api(make_settings(postgresql_url, redis_url=redis_url)) as api:
        r = await api.client.get("/ready")
    assert r.status_code == 200
    assert r.json()["components"] == {
        "database": {"status": "up", "backend": "postgresql"},
        "cache": {"status": "up", "backend": "redis"},
    }
