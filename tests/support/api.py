"""The app driven in-process through httpx, with helpers that act through its public API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core import clock
from core.config import Settings
from core.deps import AppContext
from modules.api import create_api
from tests.support.accounts import Account, PartnerAccount

PASSWORD = "correct horse battery staple"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "rate_limit_enabled": False,
        "log_format": "json",
        "log_level": "WARNING",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def event_body(**fields: Any) -> dict[str, Any]:
    """A valid event: one 100-seat GA tier at $25, a month from now."""
    return {
        "name": "Test Concert",
        "venue": "Test Hall",
        "startsAt": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "tiers": [{"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 100}],
    } | fields


@dataclass
class Api:
    """An httpx client on the real app plus the app's shared context (storage, cache)."""

    client: httpx.AsyncClient
    ctx: AppContext

    async def user(self, role: str = "user", email: str | None = None) -> Account:
        """Register an account, give it `role` through the storage port, and log in."""
        email = email or f"{role}-{uuid.uuid4().hex[:12]}@example.com"
        r = await self.client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": role.title()},
        )
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        if role != "user":
            await self.ctx.storage.users.set_role(data["user"]["id"], role, clock.now())  # type: ignore[arg-type]
            r = await self.client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            data |= r.json()["data"]
        return Account(
            id=data["user"]["id"],
            email=email,
            password=PASSWORD,
            role=role,
            access_token=data["accessToken"],
            refresh=data["refreshToken"],
        )

    async def partner(self, admin: Account | None = None) -> PartnerAccount:
        admin = admin or await self.user("admin")
        r = await self.client.post(
            "/api/v1/partners", json={"name": f"p-{uuid.uuid4().hex[:6]}"}, headers=admin.headers
        )
        assert r.status_code == 201, r.text
        creds = r.json()["data"]
        r = await self.client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["clientId"],
                "client_secret": creds["clientSecret"],
            },
        )
        assert r.status_code == 200, r.text
        return PartnerAccount(
            id=creds["id"],
            name=creds["name"],
            client_id=creds["clientId"],
            client_secret=creds["clientSecret"],
            access_token=r.json()["access_token"],
        )

    async def event(
        self, organizer: Account, *, publish: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Create (and by default publish) an event; its JSON."""
        r = await self.client.post(
            "/api/v1/events", json=event_body(**fields), headers=organizer.headers
        )
        assert r.status_code == 201, r.text
        event: dict[str, Any] = r.json()["data"]
        if publish:
            r = await self.client.post(
                f"/api/v1/events/{event['id']}/publish", headers=organizer.headers
            )
            assert r.status_code == 200, r.text
            event = r.json()["data"]
        return event

    async def book(
        self,
        who: Account | PartnerAccount,
        event_id: str,
        quantity: int = 1,
        tier: str = "GA",
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        headers = who.headers | {"Idempotency-Key": key or uuid.uuid4().hex}
        body = {"eventId": event_id, "tier": tier, "quantity": quantity} | extra
        return await self.client.post("/api/v1/bookings", json=body, headers=headers)


@asynccontextmanager
async def running_api(settings: Settings, client: str = "203.0.113.7") -> AsyncIterator[Api]:
    """`client`: the address the app sees calling (a remote one unless told)."""
    app = create_api(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, app.state.ctx)
