"""Fixtures for the browser tests: the real server (`ticketboss serve`, SQLite), Debian's Chromium
driven by Playwright, pages that fail the test on a CSP violation or an uncaught error, and
helpers that set up accounts and events through the public API.

Screenshots of the main pages are written to docs/screenshots/ when TICKETBOSS_SCREENSHOTS=1.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.races import promote
from tests.support.server import Server
from tests.support.services import service_missing

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "a web front passphrase"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 780}


@dataclass
class Site:
    """The running server, its database, and an HTTP client for setting things up."""

    server: Server
    database_url: str
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.base_url

    def account(self, role: str = "user", name: str | None = None) -> User:
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        name = name or f"{role.title()} {email[-20:-12]}"
        r = self.http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["data"]["user"]["id"]
        if role != "user":
            # Playwright's sync API runs an event loop in this thread: promote in another one.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, promote(self.database_url, user_id, role)).result()
        return User(self, user_id, email, name, role)

    def event(self, organizer: User, *, publish: bool = True, **fields: Any) -> dict[str, Any]:
        body = {
            "name": f"Show {uuid.uuid4().hex[:8]}",
            "venue": "Test Hall",
            "startsAt": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
            "tiers": [
                {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 50}
            ],
        } | fields
        r = self.http.post("/api/v1/events", json=body, headers=organizer.headers)
        assert r.status_code == 201, r.text
        event: dict[str, Any] = r.json()["data"]
        if publish:
            r = self.http.post(f"/api/v1/events/{event['id']}/publish", headers=organizer.headers)
            assert r.status_code == 200, r.text
            event = r.json()["data"]
        return event

    def availability(self, event_id: str) -> dict[str, int]:
        r = self.http.get(f"/api/v1/events/{event_id}/availability")
        assert r.status_code == 200, r.text
        return {t["code"]: t["available"] for t in r.json()["data"]["tiers"]}


@dataclass
class User:
    site: Site
    id: str
    email: str
    name: str
    role: str
    _token: str | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        if self._token is None:
            r = self.site.http.post(
                "/api/v1/auth/login", json={"email": self.email, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self._token = r.json()["data"]["accessToken"]
        return {"Authorization": f"Bearer {self._token}"}

    def bookings(self, event_id: str) -> list[dict[str, Any]]:
        r = self.site.http.get(
            "/api/v1/bookings", params={"eventId": event_id, "limit": 100}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def book(self, event_id: str, tier: str, quantity: int, hold: bool = False) -> dict[str, Any]:
        r = self.site.http.post(
            "/api/v1/bookings",
            json={"eventId": event_id, "tier": tier, "quantity": quantity, "hold": hold},
            headers=self.headers | {"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        booking: dict[str, Any] = r.json()["data"]
        return booking


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# until it stops, and the async tests of other modules need the thread free afterwards.
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}"
    with Server(database_url, workers=1) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            yield Site(server, database_url, http)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        service_missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Problems:
    """What went wrong inside a page: CSP violations and uncaught errors."""

    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any, site: Site) -> Iterator[Callable[..., Any]]:
    """open_page(viewport=DESKTOP) → a Page in a fresh context (its own session storage)."""
    contexts: list[Any] = []
    problems = Problems()

    def opener(viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(base_url=site.url, viewport=viewport or DESKTOP)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda m: problems.csp.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda e: problems.errors.append(str(e)))
        return page

    yield opener
    for context in contexts:
        context.close()
    assert problems.csp == [], "the pages broke their Content-Security-Policy"
    assert problems.errors == [], "uncaught errors in the pages"


def screenshot(page: Any, name: str, *, phone: bool = False, full_page: bool = False) -> None:
    """Save docs/screenshots/<name>.png (and <name>-phone.png) when TICKETBOSS_SCREENSHOTS=1."""
    if os.environ.get("TICKETBOSS_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page)
    if phone:
        size = page.viewport_size
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(200)
        page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
        page.set_viewport_size(size)
