"""Signed tickets and check-in through the API (PRODUCT §14): one ticket per seat, its QR a
JWS that verifies offline with the published key alone, redemption answers, nonce replay,
offline batches, exports, door figures and CSV files. The real race is in tests/races."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from tests.support.api import Api
from tests.support.checkin import Door, open_door, scanner_for


@pytest.fixture
async def door(api: Api) -> Door:
    return await open_door(api)


@pytest.fixture
async def sqlite_door(sqlite_api: Api) -> Door:
    return await open_door(sqlite_api)


def offline_verify(qr: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a scanner without a network does: PyJWT with the exported JWK only."""
    kid = jwt.get_unverified_header(qr)["kid"]
    [jwk] = [k for k in jwks["keys"] if k["kid"] == kid]
    key = jwt.PyJWK.from_json(json.dumps(jwk))
    return jwt.decode(qr, key, algorithms=["EdDSA"])


async def test_a_seat_is_a_ticket_admitted_once_and_a_nonce_replays(door: Door) -> None:
    booking = await door.booked(quantity=2)
    tickets = await door.tickets(booking["id"])
    assert [t["status"] for t in tickets] == ["valid", "valid"]
    assert len({t["id"] for t in tickets}) == 2
    first, second = (t["qr"] for t in tickets)
    nonce = uuid.uuid4().hex
    answer = (await door.redeem(first, nonce=nonce)).json()["data"]
    assert answer["result"] == "ok" and answer["replayed"] is False
    assert answer["ticket"]["id"] == tickets[0]["id"]
    again = (await door.redeem(first, nonce=nonce)).json()["data"]
    assert (again["result"], again["replayed"], again["ticket"]) == ("ok", True, answer["ticket"])
    assert await door.result(first) == "already_used"
    assert await door.result(second) == "ok"
    assert [t["status"] for t in await door.tickets(booking["id"])] == ["used", "used"]


async def test_exit_then_entry_and_the_export_a_scanner_verifies_offline_with(door: Door) -> None:
    booking = await door.booked()
    [ticket] = await door.tickets(booking["id"])
    assert await door.result(ticket["qr"], type="exit") == "already_used"
    assert await door.result(ticket["qr"]) == "ok"
    assert await door.result(ticket["qr"], type="exit") == "ok"
    assert await door.result(ticket["qr"]) == "ok"
    cancelled = await door.booked()
    [revoked] = await door.tickets(cancelled["id"])
    r = await door.api.client.patch(
        f"/api/v1/bookings/{cancelled['id']}/cancel", headers=door.buyer.headers
    )
    assert r.status_code == 200, r.text
    r = await door.api.client.get(
        f"/api/v1/checkin-lists/{door.list_id}/export", headers=door.scanner
    )
    assert r.status_code == 200, r.text
    export = r.json()["data"]
    by_id = {t["id"]: t["status"] for t in export["tickets"]}
    assert by_id == {ticket["id"]: "used"}
    assert export["revoked"] == [revoked["id"]]
    claims = offline_verify(revoked["qr"], export["keys"])
    assert claims["tid"] == revoked["id"] and claims["eid"] == door.event_id
    assert set(claims) == {"tid", "eid", "tier", "iat"}
    assert await door.result(revoked["qr"]) == "revoked"


async def test_an_offline_batch_counts_a_duplicate_once(door: Door) -> None:
    [ticket] = await door.tickets((await door.booked())["id"])
    [other] = await door.tickets((await door.booked())["id"])
    at = datetime.now(UTC) - timedelta(minutes=30)
    scans = [
        {"qr": ticket["qr"], "nonce": "b", "scannedAt": (at + timedelta(minutes=1)).isoformat()},
        {"qr": ticket["qr"], "nonce": "a", "scannedAt": at.isoformat()},
        {"qr": other["qr"], "nonce": "c", "scannedAt": at.isoformat()},
        {"qr": "not-a-ticket", "nonce": "d", "scannedAt": at.isoformat()},
    ]
    body = {"list": door.list_id, "scans": scans}
    r = await door.api.client.post("/api/v1/checkin/batch", json=body, headers=door.scanner)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    results = {x["nonce"]: x["result"] for x in data["results"]}
    assert results == {"a": "ok", "b": "already_used", "c": "ok", "d": "unknown"}
    assert (data["admitted"], data["duplicates"]) == (2, ["b"])
    # Sent again (the connection dropped): the same answers, nothing counted twice.
    r = await door.api.client.post("/api/v1/checkin/batch", json=body, headers=door.scanner)
    again = r.json()["data"]
    assert {x["nonce"]: x["result"] for x in again["results"]} == results
    assert again["admitted"] == 0
    r = await door.api.client.get(
        f"/api/v1/events/{door.event_id}/checkin/stats", headers=door.organizer.headers
    )
    stats = r.json()["data"]
    assert (stats["checkedIn"], stats["expected"]) == (2, 2)
    assert stats["tiers"] == [
        {"tier": "GA", "expected": 2, "checkedIn": 2},
        {"tier": "VIP", "expected": 0, "checkedIn": 0},
    ]
    assert stats["lists"][0]["checkedIn"] == 2


async def test_forged_tampered_and_other_event_qrs_are_unknown(sqlite_door: Door) -> None:
    door = sqlite_door
    [ticket] = await door.tickets((await door.booked())["id"])
    header, payload, signature = ticket["qr"].split(".")
    claims = jwt.decode(ticket["qr"], options={"verify_signature": False})
    tampered_claims = claims | {"tier": "VIP"}
    tampered = jwt.api_jws.base64url_encode(json.dumps(tampered_claims).encode()).decode()
    forger = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "k0"})
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    own_key = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k0"}
    )
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    other = Door(door.api, door.organizer, door.buyer, "", "", {})
    other.event_id = (await door.api.event(door.organizer))["id"]
    [elsewhere] = await other.tickets((await other.booked())["id"])
    for qr in (
        f"{header}.{tampered}.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        forger,
        own_key,
        unsigned,
        elsewhere["qr"],
        "",
        "a.b.c",
    ):
        if qr:
            assert await door.result(qr) == "unknown", qr
    assert await door.result(ticket["qr"]) == "ok"


async def test_wrong_list_not_yet_valid_and_rotated_keys(sqlite_door: Door) -> None:
    door, client = sqlite_door, sqlite_door.api.client
    [ga] = await door.tickets((await door.booked())["id"])
    vip_only = await door.new_list(tiers=["VIP"])
    later = await door.new_list(opensAt=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert await door.result(ga["qr"], list=vip_only) == "wrong_list"
    assert await door.result(ga["qr"], list=later) == "not_yet_valid"
    keys = f"/api/v1/events/{door.event_id}/checkin"
    r = await client.post(f"{keys}/keys", headers=door.organizer.headers)
    assert r.status_code == 201, r.text
    old_kid, new_kid = (k["kid"] for k in r.json()["data"]["keys"])
    [resigned] = await door.tickets((await door.booked())["id"])
    assert jwt.get_unverified_header(resigned["qr"])["kid"] == new_kid
    r = await client.delete(f"{keys}/keys/{new_kid}", headers=door.buyer.headers)
    assert r.status_code == 403
    r = await client.delete(f"{keys}/keys/{old_kid}", headers=door.organizer.headers)
    assert r.status_code == 204
    assert await door.result(ga["qr"]) == "unknown"  # its key is gone
    r = await client.delete(f"{keys}/keys/{new_kid}", headers=door.organizer.headers)
    assert r.status_code == 409 and r.json()["code"] == "LAST_SIGNING_KEY"
    r = await client.get(f"{keys}/key")
    assert [k["kid"] for k in r.json()["data"]["keys"]] == [new_kid]


async def test_scanner_tokens_are_scoped_and_revocable(sqlite_door: Door) -> None:
    door, client = sqlite_door, sqlite_door.api.client
    [ticket] = await door.tickets((await door.booked())["id"])
    other_event = (await door.api.event(door.organizer))["id"]
    stranger = await scanner_for(door.api, door.organizer, other_event)
    body = {"list": door.list_id, "qr": ticket["qr"], "nonce": "n1"}
    r = await client.post("/api/v1/checkin/redeem", json=body, headers=stranger)
    assert r.status_code == 404 and r.json()["code"] == "CHECKIN_LIST_NOT_FOUND"
    for headers in (
        {},
        door.buyer.headers,
        door.organizer.headers,
        {"Authorization": "Bearer sct_x"},
    ):
        r = await client.post("/api/v1/checkin/redeem", json=body, headers=headers)
        assert r.status_code == 401, r.text
    r = await client.get(f"/api/v1/events/{door.event_id}/scanners", headers=door.organizer.headers)
    [scanner] = r.json()["data"]
    assert "token" not in scanner and scanner["revokedAt"] is None
    r = await client.delete(
        f"/api/v1/events/{door.event_id}/scanners/{scanner['id']}", headers=door.organizer.headers
    )
    assert r.status_code == 204
    r = await client.post("/api/v1/checkin/redeem", json=body, headers=door.scanner)
    assert r.status_code == 401 and r.json()["code"] == "INVALID_SCANNER_TOKEN"
    assert [t["status"] for t in await door.tickets(ticket["id"].rsplit("-", 1)[0])] == ["valid"]


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "sideways"},
        {"nonce": ""},
        {"nonce": "x" * 129},
        {"nonce": "bad nonce"},
        {"scannedAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        {"scannedAt": 1700000000},
        {"list": ""},
        {"extra": 1},
        {"qr": ""},
    ],
)
async def test_bad_redeem_input_is_a_4xx_and_changes_nothing(
    sqlite_door: Door, fields: dict[str, Any]
) -> None:
    door = sqlite_door
    [ticket] = await door.tickets((await door.booked())["id"])
    fields = {"qr": ticket["qr"]} | fields
    r = await door.redeem(fields.pop("qr"), **fields)
    assert r.status_code == 422, r.text
    assert r.json()["success"] is False
    assert await door.result(ticket["qr"]) == "ok"


async def test_bad_batches_are_refused_whole(sqlite_door: Door) -> None:
    door = sqlite_door
    [ticket] = await door.tickets((await door.booked())["id"])
    now = datetime.now(UTC).isoformat()
    scan = {"qr": ticket["qr"], "nonce": "a", "scannedAt": now}
    for scans in (
        [],
        [scan, scan],
        [scan, {"qr": ticket["qr"], "nonce": "b"}],
        [scan, scan | {"nonce": "b", "scannedAt": "2999-01-01T00:00:00Z"}],
    ):
        body = {"list": door.list_id, "scans": scans}
        r = await door.api.client.post("/api/v1/checkin/batch", json=body, headers=door.scanner)
        assert r.status_code == 422, r.text
    assert await door.result(ticket["qr"]) == "ok"


async def test_organizer_routes_refuse_others_and_unknown_tiers(sqlite_door: Door) -> None:
    door, client = sqlite_door, sqlite_door.api.client
    path = f"/api/v1/events/{door.event_id}"
    r = await client.post(f"{path}/checkin-lists", json={"name": "x"}, headers=door.buyer.headers)
    assert r.status_code == 403
    rival = await door.api.user("organizer")
    for method, sub in (("post", "scanners"), ("get", "checkin/stats"), ("get", "attendees.csv")):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "post" else {}
        r = await client.request(method, f"{path}/{sub}", headers=rival.headers, **kwargs)
        assert r.status_code == 403, (sub, r.text)
    r = await client.post(
        f"{path}/checkin-lists",
        json={"name": "x", "tiers": ["NOPE"]},
        headers=door.organizer.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tiers"
    r = await client.get(f"{path}/checkin-lists", headers=door.organizer.headers)
    assert len(r.json()["data"]) == 1
    r = await client.get(f"/api/v1/bookings/{uuid.uuid4().hex}/tickets", headers=door.buyer.headers)
    assert r.status_code == 404


async def test_csv_files_are_quoted_and_formula_safe(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer = await api.user("organizer")
    r = await api.client.post(
        "/api/v1/auth/register",
        json={
            "email": "eve@example.com",
            "password": "correct horse battery staple",
            "name": '=HYPERLINK("http://x","a, b")',
        },
    )
    token = r.json()["data"]["accessToken"]
    event = await api.event(organizer)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    body = {"eventId": event["id"], "tier": "GA", "quantity": 2, "externalRef": "-1+1"}
    assert (
        await api.client.post("/api/v1/bookings", json=body, headers=headers)
    ).status_code == 201
    r = await api.client.get(
        f"/api/v1/events/{event['id']}/attendees.csv", headers=organizer.headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2
    assert {row["buyer_name"] for row in rows} == {'\'=HYPERLINK("http://x","a, b")'}
    assert {row["external_ref"] for row in rows} == {"'-1+1"}
    assert {row["status"] for row in rows} == {"valid"}
    r = await api.client.get(f"/api/v1/events/{event['id']}/sales.csv", headers=organizer.headers)
    [sale] = list(csv.DictReader(io.StringIO(r.text)))
    assert (sale["quantity"], sale["total_cents"], sale["buyer_email"]) == (
        "2",
        "5000",
        "eve@example.com",
    )
