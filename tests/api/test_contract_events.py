"""The contract events (`/reservations`' event and `/api/tickets`' show) survive the generic
event routes, and the contracts answer their own errors, never a 500, if one is gone anyway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from core import clock
from core.storage.records import SYSTEM_ACTOR
from tests.support.api import Api, make_settings, running_api


@pytest.fixture
async def contracts(database_url: str) -> AsyncIterator[Api]:
    """Both contracts in anonymous mode, each with an event of its own."""
    settings = make_settings(
        database_url,
        ticketboss_anonymous_partners=True,
        ticketboss_anonymous_tiers=True,
        ticketboss_event_id=f"meetup-{uuid.uuid4().hex[:8]}",
        ticketboss_tiered_event_id=f"tiered-{uuid.uuid4().hex[:8]}",
    )
    async with running_api(settings) as api:
        yield api


def contract_event_ids(api: Api) -> tuple[str, str]:
    s = api.ctx.settings
    return s.ticketboss_event_id, s.ticketboss_tiered_event_id


@pytest.mark.parametrize("action", ["delete", "cancel"])
async def test_an_admin_cannot_delete_or_cancel_a_contract_event(
    contracts: Api, action: str
) -> None:
    admin = await contracts.user("admin")
    for event_id in contract_event_ids(contracts):
        if action == "delete":
            r = await contracts.client.delete(f"/api/v1/events/{event_id}", headers=admin.headers)
        else:
            r = await contracts.client.post(
                f"/api/v1/events/{event_id}/cancel", headers=admin.headers
            )
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "CONTRACT_EVENT_PROTECTED"
        event = await contracts.ctx.storage.events.get(event_id)
        assert event is not None and event.status == "published"
    summary = await contracts.client.get("/reservations")
    assert summary.status_code == 200 and summary.json()["availableSeats"] == 500
    tickets = await contracts.client.get("/api/tickets")
    assert tickets.status_code == 200 and len(tickets.json()) == 3


async def test_an_ordinary_event_can_still_be_deleted(contracts: Api) -> None:
    admin = await contracts.user("admin")
    event = await contracts.event(admin)
    r = await contracts.client.delete(f"/api/v1/events/{event['id']}", headers=admin.headers)
    assert r.status_code == 204, r.text


async def test_the_contracts_answer_their_errors_when_their_event_is_gone(
    contracts: Api,
) -> None:
    """Deleted behind the API's back (through the storage port): every route of both
    contracts answers a 4xx in its own shape."""
    meetup, show = contract_event_ids(contracts)
    client = contracts.client
    booked = await client.post("/reservations", json={"partnerId": "abc", "seats": 2})
    assert booked.status_code == 201, booked.text
    ticket = await client.post(
        "/api/tickets/book", json={"userId": "u1", "tier": "GA", "quantity": 1}
    )
    assert ticket.status_code == 201, ticket.text
    for event_id in (meetup, show):
        event = await contracts.ctx.storage.events.get(event_id)
        assert event is not None
        # no active bookings may stay on a deleted event: cancel them first, then delete
        await contracts.ctx.storage.events.transition(
            event_id, ("published",), "cancelled", clock.now(), SYSTEM_ACTOR
        )
        await contracts.ctx.storage.events.soft_delete(event_id, clock.now(), SYSTEM_ACTOR)
        contracts.ctx.snapshots.forget(f"event:{event_id}")

    answers = [
        await client.get("/reservations"),
        await client.get("/reservations/list"),
        await client.post("/reservations", json={"partnerId": "abc", "seats": 1}),
        await client.delete(f"/reservations/{booked.json()['reservationId']}"),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"error"}
    tiered = [
        await client.get("/api/tickets"),
        await client.get("/api/tickets/bookings", params={"userId": "u1"}),
        await client.post("/api/tickets/book", json={"userId": "u1", "tier": "GA", "quantity": 1}),
        await client.post(
            f"/api/tickets/bookings/{ticket.json()['bookingId']}/cancel", json={"userId": "u1"}
        ),
    ]
    for r in tiered:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        if r.status_code >= 400:
            assert set(r.json()) >= {"code", "message", "errors"}
