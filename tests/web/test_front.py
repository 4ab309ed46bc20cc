"""The web front in a real browser (Debian's Chromium through Playwright) against the real server.

Each test drives the pages like a person would and then checks the outcome through the API.
Every page is also checked for Content-Security-Policy violations and uncaught errors (see
conftest.open_page): the front must work under the strict policy, not around it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PASSWORD, PHONE, Site, User, screenshot

pytestmark = pytest.mark.browser

COUNTDOWN = re.compile(r"^\d+:\d\d$")


def log_in(page: Any, user: User, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_buyer_registers_holds_confirms_and_cancels(site: Site, open_page: Any) -> None:
    organizer = site.account("organizer")
    tag = uuid.uuid4().hex[:6]
    event = site.event(
        organizer,
        name=f"Aurora {tag} Live",
        tiers=[
            {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 50},
            {"code": "VIP", "name": "VIP Lounge", "priceCents": 12000, "capacity": 10},
        ],
    )
    page = open_page()

    # Register: the account is made and the buyer is logged in.
    page.goto("/register")
    page.get_by_label("Name").fill("Ada Buyer")
    page.get_by_label("Email").fill(f"ada-{tag}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("link", name=event["name"])).to_be_visible()
    screenshot(page, "events", phone=True)

    # Find the event by search, open it.
    page.get_by_label("Search events").fill(tag)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"q={tag}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(tag)
    expect(page.get_by_role("listitem").filter(has_text="Aurora")).to_have_count(1)
    page.get_by_role("link", name=event["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(event["name"])

    # Hold two seats: a visible countdown, and the seats are taken at once.
    page.get_by_label("Quantity of General Admission").fill("2")
    expect(page.get_by_text("Total: $50.00 for 2 seats")).to_be_visible()
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    timer = page.get_by_role("timer")
    expect(timer).to_have_text(COUNTDOWN)
    first = timer.text_content()
    page.wait_for_timeout(1100)
    assert timer.text_content() != first, "the countdown does not count"
    assert site.availability(event["id"])["GA"] == 48
    screenshot(page, "event-hold", phone=True)

    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", name="Booked!")).to_be_visible()
    ticket_number = page.locator(".hold .ticket-number").text_content()
    assert ticket_number

    # My bookings: the ticket number, confirmed, two seats.
    page.get_by_role("link", name="See all my bookings").click()
    row = page.get_by_role("row").filter(has_text=ticket_number)
    expect(row).to_contain_text("Confirmed")
    expect(row.get_by_role("cell").nth(3)).to_have_text("2")
    screenshot(page, "my-bookings", phone=True)

    # The printable ticket with one signed QR code per seat.
    row.get_by_role("link", name=f"Ticket {ticket_number}").click()
    for seat in (1, 2):
        expect(
            page.get_by_role("img", name=f"QR code of ticket {ticket_number}/{seat}")
        ).to_be_visible()
    expect(page.locator(".ticket .ticket-number")).to_have_text(ticket_number)
    screenshot(page, "ticket", phone=True)
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print ticket")).to_be_hidden()
    screenshot(page, "ticket-print")
    page.emulate_media(media="screen")

    # Cancel, after the confirmation dialog.
    page.get_by_role("link", name="Back to my bookings").click()
    row = page.get_by_role("row").filter(has_text=ticket_number)
    row.get_by_role("button", name=f"Cancel booking {ticket_number}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Cancel booking {ticket_number}?")
    dialog.get_by_role("button", name="Cancel booking").click()
    expect(row).to_contain_text("Cancelled")
    assert site.availability(event["id"])["GA"] == 50

    # Log out: the session is gone from the tab and revoked on the server.
    refresh_token = page.evaluate("sessionStorage.getItem('ticketboss.refreshToken')")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ticketboss.refreshToken')") is None
    r = site.http.post("/api/v1/auth/refresh", json={"refreshToken": refresh_token})
    assert r.status_code == 401


def test_a_booking_shows_in_another_browser_without_reload(site: Site, open_page: Any) -> None:
    organizer = site.account("organizer")
    event = site.event(organizer)
    buyer = site.account()
    watcher = open_page()  # anonymous, in its own browser context
    watcher.goto(f"/events/{event['id']}")
    cell = watcher.locator('td.available[data-tier="GA"]')
    expect(cell).to_have_text("50")
    watcher.evaluate("window.notReloaded = true")

    booker = open_page()
    log_in(booker, buyer, f"/events/{event['id']}")
    booker.get_by_label("Quantity of General Admission").fill("3")
    booker.get_by_role("button", name="Book").click()
    expect(booker.get_by_role("heading", name="Your seats are held")).to_be_visible()

    expect(cell).to_have_text("47", timeout=8_000)
    assert watcher.evaluate("window.notReloaded") is True


def test_double_click_and_a_lost_answer_book_once(site: Site, open_page: Any) -> None:
    organizer = site.account("organizer")
    event = site.event(organizer)
    buyer = site.account()
    page = open_page()
    log_in(page, buyer, f"/events/{event['id']}")

    keys: list[str] = []

    def lose_first_answer(route: Any) -> None:
        """The first booking request reaches the server, but its answer is lost."""
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.fetch()  # the server books...
            route.abort("connectionreset")  # ...and the browser never hears of it
        else:
            route.continue_()

    page.route("**/api/v1/bookings", lose_first_answer)
    page.get_by_label("Quantity of General Admission").fill("1")
    page.get_by_role("button", name="Book").dblclick()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()

    assert len(keys) >= 2, "the lost answer was not retried"
    assert len(set(keys)) == 1 and keys[0], f"retries must reuse one Idempotency-Key: {keys}"
    bookings = buyer.bookings(event["id"])
    assert len(bookings) == 1 and bookings[0]["quantity"] == 1, bookings
    assert site.availability(event["id"])["GA"] == 49


def test_refusals_are_shown_in_words(site: Site, open_page: Any) -> None:
    organizer = site.account("organizer")
    event = site.event(
        organizer,
        tiers=[{"code": "GA", "name": "General Admission", "priceCents": 1000, "capacity": 3}],
    )
    buyer = site.account()
    page = open_page()
    log_in(page, buyer, f"/events/{event['id']}")

    # 409 from the API: its message, and the form still works afterwards.
    page.get_by_label("Quantity of General Admission").fill("5")
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_role("alert")).to_contain_text("Only 3 tickets left in tier GA")

    # 429: the message and when to retry; nothing breaks.
    def too_many(route: Any) -> None:
        route.fulfill(
            status=429,
            headers={"Retry-After": "7", "Content-Type": "application/json"},
            body='{"success": false, "message": "Too many requests", "code": "RATE_LIMITED",'
            ' "errors": [], "requestId": "x"}',
        )

    page.route("**/api/v1/bookings", too_many)
    page.get_by_label("Quantity of General Admission").fill("1")
    page.get_by_role("button", name="Book").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many requests")
    expect(alert).to_contain_text("Try again in 7 s.")
    expect(page.get_by_role("button", name="Book")).to_be_enabled()
    page.unroute("**/api/v1/bookings")
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    assert len(buyer.bookings(event["id"])) == 1


def refresh_cookie(page: Any) -> str:
    """The refresh token's cookie (one per path it is sent to: refresh, logout)."""
    cookies = [c for c in page.context.cookies() if c["name"] == "tb_refresh"]
    assert sorted(c["path"] for c in cookies) == ["/api/v1/auth/logout", "/api/v1/auth/refresh"]
    assert all(c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict" for c in cookies)
    [value] = {c["value"] for c in cookies}
    return str(value)


def test_an_expired_access_token_is_refreshed_silently(site: Site, open_page: Any) -> None:
    buyer = site.account()
    page = open_page()
    log_in(page, buyer)
    first = refresh_cookie(page)
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert page.evaluate("JSON.stringify(sessionStorage)") == '{"ticketboss.session":"1"}'
    assert "tb_refresh" not in page.evaluate("document.cookie")  # httpOnly: no script sees it

    answered: list[int] = []

    def expire_once(route: Any) -> None:
        """The first call to /bookings answers as the API does for an expired access token."""
        if not answered:
            answered.append(401)
            route.fulfill(
                status=401,
                headers={"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
                body='{"success": false, "message": "The access token is invalid or expired",'
                ' "code": "INVALID_TOKEN", "errors": [], "requestId": "x"}',
            )
        else:
            route.continue_()

    page.route("**/api/v1/bookings?*", expire_once)
    with page.expect_request("**/api/v1/auth/refresh"):
        page.get_by_role("link", name="My bookings").click()
    expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    expect(page.get_by_text("No bookings yet.")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    rotated = refresh_cookie(page)
    assert rotated != first
    # The tab keeps its session across a reload (the refresh token rotates again) ...
    page.reload()
    expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    # ... and the first refresh token is spent (presenting it revokes the session: do it last).
    r = site.http.post("/api/v1/auth/refresh", json={"refreshToken": first})
    assert r.status_code == 401


def test_organizer_creates_publishes_and_sees_the_first_sale(site: Site, open_page: Any) -> None:
    organizer = site.account("organizer", name="Olga Organizer")
    buyer = site.account()
    name = f"Harbour Lights {uuid.uuid4().hex[:6]}"
    page = open_page()
    log_in(page, organizer, "/organizer")

    page.get_by_role("link", name="Create an event").click()
    page.get_by_label("Event name").fill(name)
    page.get_by_label("Venue").fill("Pier 9")
    page.get_by_label("Starts at").fill("2031-06-01T20:00")
    tier1 = page.get_by_role("group", name="Tier 1")
    tier1.get_by_label("Price (USD)").fill("25")
    tier1.get_by_label("Capacity").fill("100")
    page.get_by_role("button", name="Add a tier").click()
    tier2 = page.get_by_role("group", name="Tier 2")
    tier2.get_by_label("Code").fill("VIP")
    tier2.get_by_label("Name").fill("VIP Deck")
    tier2.get_by_label("Price (USD)").fill("90")
    tier2.get_by_label("Capacity").fill("20")
    page.get_by_role("button", name="Create draft").click()

    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("draft")
    row.get_by_role("button", name=f"Publish {name}").click()
    expect(row).to_contain_text("published")
    row.get_by_role("link", name=f"Sales of {name}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Sales · {name}")
    sold = page.locator('tfoot [data-total="sold"]')
    expect(sold).to_have_text("0")
    event_id = urlparse(page.url).path.split("/")[3]

    buyer.book(event_id, "GA", 2)  # the first sale, made elsewhere

    expect(sold).to_have_text("2", timeout=8_000)
    expect(page.locator('tr[data-tier="GA"] td.sold')).to_have_text("2")
    expect(page.locator('tr[data-tier="GA"] td.available')).to_have_text("98")
    expect(page.locator("figure.chart figcaption")).to_contain_text("2 seats sold")
    screenshot(page, "organizer-sales", phone=True)


def test_docs_render_from_the_app_alone(site: Site, open_page: Any) -> None:
    page = open_page()
    outside: list[str] = []

    def local_only(route: Any) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto("/docs")
    bookings = page.locator("#operations-tag-bookings")
    expect(bookings).to_be_visible(timeout=15_000)
    for path in ("/api/v1/bookings", "/api/v1/bookings/{booking_id}/confirm"):
        summary = page.locator(".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$"))
        expect(summary.first).to_be_visible()
    expect(page.get_by_text("Create Booking")).to_be_visible()
    screenshot(page, "docs")

    page.goto("/redoc")
    page.get_by_role("link", name="bookings", exact=True).click(timeout=15_000)
    for operation in ("Create Booking post", "Confirm Booking post", "Cancel Booking patch"):
        expect(page.get_by_role("link", name=operation)).to_be_visible()
    assert outside == [], f"the docs tried to reach: {outside}"


def test_pages_get_the_strict_policy_and_the_api_keeps_its_own(site: Site) -> None:
    for path in (
        "/",
        "/events/anything",
        "/organizer/events/x/sales",
        "/organizer/events/x/codes",
        "/organizer/events/x/waitlist",
        "/docs",
    ):
        r = site.http.get(path)
        policy = r.headers["Content-Security-Policy"]
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy, path
        assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy
    nonces = set()
    for _ in range(2):  # /redoc: a fresh style nonce per response, the same one in the page
        r = site.http.get("/redoc")
        found = re.search(
            r"style-src 'self' 'nonce-([\w-]+)'", r.headers["Content-Security-Policy"]
        )
        assert found and f'content="{found[1]}"' in r.text
        nonces.add(found[1])
    assert len(nonces) == 2
    api = site.http.get("/api/v1/events")
    assert api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    asset = site.http.get("/static/js/app.js")
    assert asset.status_code == 200 and asset.headers["Content-Type"].startswith("text/javascript")
    assert (
        site.http.get(
            "/static/js/app.js", headers={"If-None-Match": asset.headers["ETag"]}
        ).status_code
        == 304
    )
    assert site.http.get("/static/%2e%2e/router.py").status_code == 404
    assert site.http.get("/static/nothing.js").status_code == 404


def test_a_buyer_waits_in_the_queue_and_goes_straight_to_checkout(
    site: Site, open_page: Any
) -> None:
    organizer, buyer = site.account("organizer"), site.account()
    opens_at = datetime.now(UTC) + timedelta(minutes=5)
    event = site.event(
        organizer,
        queue={"opensAt": opens_at.isoformat(), "admitPerMinute": 6000, "sessionSeconds": 300},
    )
    url = f"/api/v1/events/{event['id']}"
    r = site.http.patch(url, json={"queue": {"admitPerMinute": 0}}, headers=organizer.headers)
    assert r.status_code == 200, r.text  # paused: the buyer will wait with a place
    page = open_page()
    log_in(page, buyer, f"/events/{event['id']}")
    expect(page.get_by_role("heading", name="Waiting room")).to_be_visible()
    expect(page.get_by_role("button", name="Book")).to_be_disabled()
    page.get_by_role("button", name="Join the waiting room").click()
    expect(page.get_by_text("You are in the pre-queue")).to_be_visible()
    # The room opens (its opening brought forward): the place is drawn and shown live.
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = site.http.patch(url, json={"queue": {"opensAt": soon}}, headers=organizer.headers)
    assert r.status_code == 200, r.text
    expect(page.locator(".queue-position")).to_have_text("#1", timeout=15_000)
    expect(page.locator(".queue-place")).to_contain_text("admission is paused")
    r = site.http.patch(url, json={"queue": {"admitPerMinute": 6000}}, headers=organizer.headers)
    assert r.status_code == 200, r.text
    expect(page.get_by_text("You're in!")).to_be_visible(timeout=15_000)
    screenshot(page, "waiting-room", phone=True)
    book = page.get_by_role("button", name="Book")
    expect(book).to_be_enabled()
    book.click()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    held = buyer.bookings(event["id"])
    assert [(b["status"], b["quantity"]) for b in held] == [("pending", 1)]


def test_a_scanner_device_checks_tickets_in_at_phone_width(site: Site, open_page: Any) -> None:
    organizer, buyer = site.account("organizer"), site.account()
    event = site.event(organizer)
    booking = buyer.book(event["id"], "GA", 1)
    path = f"/api/v1/events/{event['id']}"
    r = site.http.post(
        f"{path}/checkin-lists", json={"name": "Main door"}, headers=organizer.headers
    )
    assert r.status_code == 201, r.text
    r = site.http.post(f"{path}/scanners", json={"name": "Phone"}, headers=organizer.headers)
    token = r.json()["data"]["token"]
    r = site.http.get(f"/api/v1/bookings/{booking['id']}/tickets", headers=buyer.headers)
    [ticket] = r.json()["data"]

    page = open_page(PHONE)
    page.goto("/scan")
    page.get_by_label("Device token").fill(token)
    page.get_by_role("button", name="Start scanning").click()
    expect(page.get_by_label("Check-in list")).to_contain_text("Main door")
    answer = page.get_by_role("status", name="Scan answer")
    page.get_by_label("Ticket code").fill(ticket["qr"])
    page.get_by_role("button", name="Check ticket").click()
    expect(answer).to_have_attribute("data-result", "ok")
    expect(answer).to_contain_text("Welcome in")
    screenshot(page, "scanner-ok")
    page.get_by_label("Ticket code").fill(ticket["qr"])
    page.get_by_role("button", name="Check ticket").click()
    expect(answer).to_have_attribute("data-result", "already_used")
    page.get_by_label("Ticket code").fill("not a ticket")
    page.get_by_role("button", name="Check ticket").click()
    expect(answer).to_have_attribute("data-result", "unknown")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing wider than the phone
    r = site.http.get(f"/api/v1/bookings/{booking['id']}/tickets", headers=buyer.headers)
    assert r.json()["data"][0]["status"] == "used"
    # the organizer's sales page shows the door: one of one checked in
    sales = open_page(DESKTOP)
    log_in(sales, organizer, f"/organizer/events/{event['id']}/sales")
    total = sales.locator("table.door tr[data-door=total]")
    expect(total.locator(".checked-in")).to_have_text("1")
    expect(total.locator("td").nth(1)).to_have_text("1")


def test_a_buyer_waits_for_a_sold_out_tier_and_books_the_offer(site: Site, open_page: Any) -> None:
    organizer, buyer, other = site.account("organizer"), site.account(), site.account()
    tier = {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 2}
    event = site.event(organizer, tiers=[tier], maxPerUser=4)
    first = other.book(event["id"], "GA", 1)
    other.book(event["id"], "GA", 1)
    page = open_page(PHONE)
    log_in(page, buyer, f"/events/{event['id']}")

    panel = page.get_by_role("region", name="Waiting list")
    expect(panel).to_contain_text("General Admission is sold out.")
    panel.get_by_label("Seats wanted of General Admission").fill("1")
    panel.get_by_role("button", name="Join the waiting list for General Admission").click()
    expect(panel.locator(".waitlist-place")).to_have_text("On the waiting list · #1 in line")

    # Another account cancels a seat: it is offered to the buyer, live, with a countdown.
    r = site.http.patch(f"/api/v1/bookings/{first['id']}/cancel", headers=other.headers)
    assert r.status_code == 200, r.text
    timer = panel.get_by_role("timer")
    expect(timer).to_have_text(COUNTDOWN, timeout=8_000)
    expect(panel.get_by_role("button", name="Book these seats")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "waitlist-offer")

    # An offer whose time runs out while on screen says so (the answer rewritten to end soon).
    ends = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()

    def ending_soon(route: Any) -> None:
        body = route.fetch().json()
        body["data"][0]["offerExpiresAt"] = ends
        route.fulfill(json=body)

    page.route("**/api/v1/waitlist", ending_soon)
    page.get_by_role("link", name="My bookings").click()
    offers = page.get_by_role("region", name="Waiting lists")
    expect(offers.get_by_role("timer")).to_have_text(COUNTDOWN)
    expect(offers).to_contain_text("This offer has expired", timeout=5_000)
    expect(offers.get_by_role("button", name="Book these seats")).to_have_count(0)
    page.unroute("**/api/v1/waitlist")

    # The real offer on My bookings; booking it there uses the seats kept for the buyer.
    page.reload()
    expect(offers.get_by_role("timer")).to_have_text(COUNTDOWN)
    shown = offers.get_by_role("timer").text_content()
    page.wait_for_timeout(1100)
    assert offers.get_by_role("timer").text_content() != shown, "the countdown does not count"
    offers.get_by_role("button", name="Book these seats").click()
    expect(offers).to_contain_text("Booked!")
    ticket_number = offers.locator(".ticket-number").text_content()
    expect(page.get_by_role("row").filter(has_text=str(ticket_number))).to_contain_text("Confirmed")

    [booking] = buyer.bookings(event["id"])
    assert (booking["ticketNumber"], booking["status"], booking["quantity"]) == (
        ticket_number,
        "confirmed",
        1,
    )
    r = site.http.get("/api/v1/waitlist", headers=buyer.headers)
    assert [(e["status"], e["bookingId"]) for e in r.json()["data"]] == [("booked", booking["id"])]


def test_an_access_code_unlocks_a_hidden_tier_at_its_price(site: Site, open_page: Any) -> None:
    organizer, buyer = site.account("organizer"), site.account()
    event = site.event(
        organizer,
        tiers=[
            {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 50},
            {
                "code": "VIP",
                "name": "Backstage",
                "priceCents": 10000,
                "capacity": 5,
                "hidden": True,
            },
        ],
    )
    r = site.http.post(
        f"/api/v1/events/{event['id']}/codes",
        json={"code": "FRIENDS", "maxUses": 5, "tiers": ["VIP"], "discountPercent": 20},
        headers=organizer.headers,
    )
    assert r.status_code == 201, r.text
    page = open_page()
    log_in(page, buyer, f"/events/{event['id']}")
    expect(page.get_by_label("Quantity of General Admission")).to_be_visible()
    expect(page.get_by_label("Quantity of Backstage")).to_have_count(0)

    page.get_by_text("Have a code?").click()
    code = page.get_by_label("Access code")
    code.fill("NOPE")
    page.get_by_role("button", name="Apply code").click()
    expect(page.get_by_role("alert")).to_contain_text("No such access code for this event")
    expect(code).to_have_attribute("aria-invalid", "true")

    code.fill("FRIENDS")
    page.get_by_role("button", name="Apply code").click()
    expect(page.get_by_text("Code FRIENDS applied: 20% off Backstage.")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    page.get_by_label("Quantity of General Admission").fill("0")
    page.get_by_label("Quantity of Backstage").fill("2")
    expect(page.get_by_text("Total: $160.00 for 2 seats")).to_be_visible()
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    expect(page.locator(".hold")).to_contain_text("Total $160.00")
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", name="Booked!")).to_be_visible()

    [booking] = buyer.bookings(event["id"])
    assert (booking["tier"], booking["unitPriceCents"], booking["totalCents"]) == (
        "VIP",
        8000,
        16000,
    )
    assert booking["status"] == "confirmed"


def test_an_organizer_runs_codes_and_waiting_lists(site: Site, open_page: Any) -> None:
    organizer, buyer, fan = site.account("organizer"), site.account(), site.account()
    event = site.event(
        organizer,
        tiers=[
            {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 1},
            {
                "code": "VIP",
                "name": "Backstage",
                "priceCents": 10000,
                "capacity": 5,
                "hidden": True,
            },
        ],
    )
    buyer.book(event["id"], "GA", 1)
    r = site.http.post(
        f"/api/v1/events/{event['id']}/waitlist",
        json={"tier": "GA", "quantity": 1},
        headers=fan.headers,
    )
    assert r.status_code == 201, r.text
    page = open_page()
    log_in(page, organizer, "/organizer")
    row = page.get_by_role("row").filter(has_text=event["name"])
    row.get_by_role("link", name=f"Access codes of {event['name']}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Access codes · {event['name']}")
    expect(page.get_by_text("No codes yet.")).to_be_visible()

    form = page.get_by_role("form", name="Create a code")
    form.get_by_label("Code", exact=True).fill("CREW")
    form.get_by_label("Uses allowed").fill("3")
    form.get_by_label("Backstage").check()
    form.get_by_label("Discount (%)").fill("10")
    form.get_by_role("button", name="Create code").click()
    code_row = page.get_by_role("row").filter(has_text="CREW")
    expect(code_row.locator("td.uses")).to_have_text("0 / 3")

    # A redemption elsewhere: the uses count follows without a reload.
    r = site.http.post(
        "/api/v1/bookings",
        json={"eventId": event["id"], "tier": "VIP", "quantity": 1, "accessCode": "CREW"},
        headers=fan.headers | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    expect(code_row.locator("td.uses")).to_have_text("1 / 3", timeout=8_000)

    code_row.get_by_role("button", name="Edit code CREW").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Uses allowed").fill("5")
    dialog.get_by_role("button", name="Save code").click()
    expect(code_row.locator("td.uses")).to_have_text("1 / 5")
    code_row.get_by_role("button", name="Disable code CREW").click()
    expect(code_row).to_contain_text("disabled")
    r = site.http.get(f"/api/v1/events/{event['id']}/codes", headers=organizer.headers)
    assert [(c["maxUses"], c["uses"], c["enabled"]) for c in r.json()["data"]] == [(5, 1, False)]

    # The waiting list: the fan in line; the organizer closes the tier's list.
    page.get_by_role("navigation", name="This event").get_by_role(
        "link", name="Waiting list"
    ).click()
    ga = page.get_by_role("region", name="General Admission GA")
    expect(ga.get_by_role("row").filter(has_text=fan.id)).to_contain_text("Waiting")
    toggle = ga.get_by_label("Waiting list open for General Admission")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    expect(page.get_by_text("The waiting list of General Admission is closed.")).to_be_visible()
    r = site.http.get(f"/api/v1/events/{event['id']}", headers=organizer.headers)
    assert [t["waitlistOpen"] for t in r.json()["data"]["tiers"]] == [False, True]
