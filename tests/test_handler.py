"""The serverless handler with real API Gateway payloads (HTTP API v2 and REST v1)."""

from __future__ import annotations

import base64
import importlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest


def v2_event(
    method: str, path: str, body: dict | None = None, headers: dict | None = None
) -> dict[str, Any]:
    raw = json.dumps(body) if body is not None else None
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abc.execute-api.us-east-1.amazonaws.com",
            "content-type": "application/json",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "test",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000",
            "timeEpoch": 1795320000000,
        },
        "body": base64.b64encode(raw.encode()).decode() if raw else None,
        "isBase64Encoded": raw is not None,
    }


def v1_event(
    method: str, path: str, body: dict | None = None, headers: dict | None = None
) -> dict[str, Any]:
    all_headers = {
        "Host": "abc.execute-api.us-east-1.amazonaws.com",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": uuid.uuid4().hex,
            "identity": {"sourceIp": "198.51.100.7", "userAgent": "test"},
            "accountId": "123456789012",
            "apiId": "abc",
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


class Context:
    function_name = "ticketboss"
    aws_request_id = "req"


def load_handler(monkeypatch: pytest.MonkeyPatch, database_url: str) -> ModuleType:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("TICKETBOSS_EVENT_ID", f"lambda-{uuid.uuid4().hex[:8]}")
    sys.modules.pop("handler", None)
    return importlib.import_module("handler")


@pytest.fixture(params=["sqlite", "postgresql"])
def lambda_module(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    url = request.getfixturevalue(f"{request.param}_url")
    started = time.perf_counter()
    module = load_handler(monkeypatch, url)
    module.import_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    yield module
    if hasattr(module.app.state, "ctx"):
        from core.app import stop_app

        module.loop.run_until_complete(stop_app(module.app))
    sys.modules.pop("handler", None)


def call(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = module.handler(event, Context())
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in response["headers"].items()}
    return response["statusCode"], headers, json.loads(body) if body else None


@pytest.mark.parametrize("make_event", [v2_event, v1_event], ids=["http-api-v2", "rest-v1"])
def test_health_login_and_idempotent_booking(lambda_module: ModuleType, make_event: Any) -> None:
    started = time.perf_counter()
    status, headers, body = call(lambda_module, make_event("GET", "/health"))
    cold = time.perf_counter() - started
    assert status == 200 and body["status"] == "ok" and "x-request-id" in headers
    ctx = lambda_module.app.state.ctx

    email = f"lambda-{uuid.uuid4().hex[:8]}@example.com"
    status, _, body = call(
        lambda_module,
        make_event(
            "POST",
            "/api/v1/auth/register",
            {"email": email, "password": "serverless passphrase", "name": "L"},
        ),
    )
    assert status == 201
    status, _, body = call(
        lambda_module,
        make_event(
            "POST", "/api/v1/auth/login", {"email": email, "password": "serverless passphrase"}
        ),
    )
    assert status == 200
    auth = {
        "Authorization": f"Bearer {body['data']['accessToken']}",
        "Idempotency-Key": "lambda-key-1",
    }
    event_id = lambda_module.app.state.settings.ticketboss_event_id
    booking = {"eventId": event_id, "tier": "GA", "quantity": 2}
    status, headers, first = call(
        lambda_module, make_event("POST", "/api/v1/bookings", booking, auth)
    )
    assert status == 201 and first["data"]["status"] == "confirmed"
    status, headers, again = call(
        lambda_module, make_event("POST", "/api/v1/bookings", booking, auth)
    )
    assert status == 201 and headers["idempotent-replayed"] == "true" and again == first
    # warm invocations reused the clients built by the first one
    assert lambda_module.app.state.ctx is ctx
    print(
        f"\n[lambda] import {lambda_module.import_seconds * 1000:.0f} ms, first request {cold * 1000:.0f} ms"
    )
