"""The OpenAPI document tells the whole truth (issue 14): every error a route can answer, in
the real envelope, the security schemes, the Idempotency-Key, and the hand-parsed bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modules.webhooks.schemas import EVENT_FILTERS
from tests.support.api import Api

ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
CONTRACT_ERROR = {"$ref": "#/components/schemas/ContractError"}


@pytest.fixture
async def spec(sqlite_api: Api) -> dict[str, Any]:
    r = await sqlite_api.client.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if path.startswith(("/api/v1", "/reservations"))
    ]


async def test_the_error_envelope_schema_is_the_real_envelope(
    sqlite_api: Api, spec: dict[str, Any]
) -> None:
    schema = spec["components"]["schemas"]["ErrorEnvelope"]
    assert set(schema["required"]) == {"success", "message", "code", "errors", "requestId"}
    r = await sqlite_api.client.get("/api/v1/events/missing")
    assert set(r.json()) == set(schema["properties"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's, never sent


async def test_every_api_route_declares_its_errors_in_its_own_shape(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        statuses = {int(s) for s in op["responses"] if int(s) >= 400}
        assert {422, 429, 503} <= statuses, (method, path)
        if "{" in path or method in ("POST", "PATCH", "DELETE"):
            assert 404 in statuses, (method, path)
        if method in ("POST", "PATCH", "DELETE"):
            assert {400, 409, 413} <= statuses, (method, path)
        own = CONTRACT_ERROR if path.startswith("/reservations") else ENVELOPE
        for status in statuses:
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == (ENVELOPE if status == 413 else own), (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/v1/auth/login", {400, 401, 422, 429}),
        ("POST", "/api/v1/auth/token", {400, 401, 422, 429}),
        ("POST", "/api/v1/auth/refresh", {401}),
        ("PATCH", "/api/v1/events/{event_id}", {400, 401, 403, 404, 409, 412, 413, 422, 429, 503}),
        ("POST", "/api/v1/bookings", {400, 401, 403, 404, 409, 413, 422, 429, 503}),
        ("GET", "/api/v1/events", {400, 401, 403, 422, 429}),
        ("DELETE", "/reservations/{reservation_id}", {401, 403, 404}),
    ],
)
async def test_routes_declare_the_statuses_they_answer(
    spec: dict[str, Any], method: str, path: str, expected: set[int]
) -> None:
    declared = {int(s) for s in spec["paths"][path][method.lower()]["responses"]}
    assert expected <= declared


async def test_security_schemes_and_requirements(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearerAuth"]["description"],
    }
    flow = schemes["clientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/api/v1/auth/token"
    paths = spec["paths"]
    required = [{"bearerAuth": []}, {"clientCredentials": []}]
    assert paths["/api/v1/bookings"]["post"]["security"] == required
    assert paths["/api/v1/auth/me"]["get"]["security"] == required
    assert paths["/reservations"]["post"]["security"] == required
    assert paths["/api/v1/events"]["get"]["security"] == [*required, {}]  # optional
    for public in ("/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/token"):
        assert "security" not in paths[public]["post"]


async def test_idempotency_key_and_hand_parsed_bodies_are_declared(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    booking = paths["/api/v1/bookings"]["post"]
    key = next(p for p in booking["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"]["pattern"] == r"^[\x20-\x7e]{1,255}$"  # what parse_key enforces
    reserve = paths["/reservations"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in reserve["parameters"])
    body = reserve["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"partnerId", "seats"}
    assert body["properties"]["seats"]["maximum"] == 10
    assert body["properties"]["partnerId"]["maxLength"] == 50
    token = paths["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(token)


async def test_a_validation_error_on_a_contract_route_is_in_the_contract_shape(
    sqlite_api: Api,
) -> None:
    """What the document says for 422 on /reservations is what the route answers."""
    partner = await sqlite_api.partner()
    r = await sqlite_api.client.get("/reservations/list?limit=abc", headers=partner.headers)
    assert r.status_code == 422 and set(r.json()) == {"error"}
    assert "limit" in r.json()["error"]


def _text_schemas(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schemas = spec["components"]["schemas"]
    events = next(
        p for p in spec["paths"]["/api/v1/events"]["get"]["parameters"] if p["name"] == "q"
    )
    return {
        "partner name": schemas["PartnerIn"]["properties"]["name"],
        "refresh token": schemas["RefreshIn"]["properties"]["refreshToken"]["anyOf"][0],
        "event search": events["schema"]["anyOf"][0],
        "webhook url": schemas["WebhookCreate"]["properties"]["url"],
    }


async def test_text_inputs_declare_the_control_characters_they_refuse(
    spec: dict[str, Any], sqlite_api: Api
) -> None:
    """Issue 30: the document says what the server refuses, so a schema-valid text is accepted.
    The declared pattern refuses exactly what the server refuses (core/inputs.py)."""
    for where, schema in _text_schemas(spec).items():
        pattern = re.compile(schema["pattern"])
        assert pattern.match("two\tlines\nok") and not pattern.match("a\x85b"), where
    admin = await sqlite_api.user("admin")
    for name, status in (("Resale\x85Co", 422), ("Resale Co", 201)):
        r = await sqlite_api.client.post(
            "/api/v1/partners", json={"name": name}, headers=admin.headers
        )
        assert r.status_code == status
        assert bool(re.match(_text_schemas(spec)["partner name"]["pattern"], name)) is (
            status == 201
        )


async def test_patch_fields_that_cannot_be_null_are_not_nullable_in_the_document(
    spec: dict[str, Any],
) -> None:
    patch = spec["components"]["schemas"]["EventPatch"]["properties"]
    for name in ("name", "venue", "startsAt"):
        assert patch[name]["type"] == "string" and "anyOf" not in patch[name], name
    assert {"anyOf"} <= patch["description"].keys()  # a description may be cleared


async def test_webhook_event_filters_are_an_enum(spec: dict[str, Any]) -> None:
    items = spec["components"]["schemas"]["WebhookCreate"]["properties"]["events"]["items"]
    assert set(items["enum"]) == set(EVENT_FILTERS) and "" not in items["enum"]


async def test_numeric_bounds_are_declared_as_json_schema_keywords(spec: dict[str, Any]) -> None:
    """A bound pydantic could not translate lands in the document as `ge`/`le`, which no
    generator or client reads: the limit would be checked but not declared."""
    misplaced: list[str] = []
    pending: list[tuple[str, Any]] = [("", spec)]
    while pending:
        path, node = pending.pop()
        if isinstance(node, dict):
            misplaced += [f"{path}/{k}" for k in ("ge", "le", "gt", "lt") if k in node]
            pending += [(f"{path}/{k}", v) for k, v in node.items() if k != "example"]
        elif isinstance(node, list):
            pending += [(f"{path}/{i}", v) for i, v in enumerate(node)]
    assert misplaced == []
    code = spec["components"]["schemas"]["CodeCreate"]["properties"]["maxUses"]
    assert (code["minimum"], code["maximum"]) == (1, 100_000)
