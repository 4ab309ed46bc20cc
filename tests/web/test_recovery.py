"""The way back into an account, in a real browser against the real server: forgot → the
mail in the embedded mailbox (/dev/mail) → the reset page → signed in with the new password;
and a cross-site form aimed at the session's refresh route is refused, the session intact."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.server import Server
from tests.web.conftest import PASSWORD, Site
from tests.web.test_front import log_in, refresh_cookie

pytestmark = pytest.mark.browser
NEW = "my brand new web passphrase"
RESET = "Reset your TicketBoss password"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """This module's server writes its mail into a mailbox of its own, and links to itself."""
    folder = tmp_path_factory.mktemp("recovery")
    database_url = f"sqlite:///{folder / 'web.db'}"
    server = Server(database_url, workers=1, MAIL_DIR=str(folder / "mail"), MAIL_POLL_SECONDS="0.1")
    server.env["PUBLIC_URL"] = server.base_url
    with server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield Site(server, database_url, http)


def open_mail(page: Any, to: str, subject: str) -> str:
    """Open the newest message to `to` in /dev/mail; its text."""
    page.goto("/dev/mail")
    row = page.locator("tr", has_text=to).filter(has_text=subject)
    for _ in range(100):
        if row.count():
            break
        page.wait_for_timeout(100)
        page.reload()
    row.first.get_by_role("link", name=subject).click()
    text: str = page.locator("pre").inner_text()
    return text


def test_forgot_then_the_mailed_link_then_signed_in_again(site: Site, open_page: Any) -> None:
    ada = site.account()
    page = open_page()
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(ada.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_text("a link is on its way")).to_be_visible()

    text = open_mail(page, ada.email, RESET)
    match = re.search(r"(http://\S+/reset-password#token=[A-Za-z0-9_-]+)", text)
    assert match, text
    page.goto(match.group(1))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert "token" not in page.url  # taken out of the address bar (and its history)
    page.get_by_label("New password").fill(NEW)
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_text("Your password was changed")).to_be_visible()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    page.get_by_label("Email").fill(ada.email)
    page.get_by_label("Password").fill(NEW)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    old = site.http.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert old.status_code == 401
    page.goto(match.group(1))  # the link worked once
    page.get_by_label("New password").fill("yet another web passphrase")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")


def test_a_cross_site_form_post_is_refused(site: Site, open_page: Any) -> None:
    ada = site.account()
    page = open_page()
    log_in(page, ada)
    before = refresh_cookie(page)
    target = f"{site.url}/api/v1/auth/refresh"
    evil = (
        "<!doctype html><form method=post action='" + target + "'>"
        "<input name=refreshToken value=stolen></form>"
        "<script>document.forms[0].submit()</script>"
    )
    page.route(
        "http://evil.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil),
    )
    with page.expect_response(target) as answer:
        page.goto("http://evil.example/prize")
    refused = answer.value
    assert refused.status == 403 and refused.json()["code"] == "CSRF_REFUSED"
    assert "tb_refresh" not in refused.request.all_headers().get("cookie", "")  # SameSite=Strict
    page.goto(f"{site.url}/bookings")
    expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert refresh_cookie(page) != before  # the session went on (rotated by this page's load)


def test_the_account_page_changes_the_password(site: Site, open_page: Any) -> None:
    ada = site.account()
    page = open_page()
    log_in(page, ada)
    page.get_by_role("link", name=ada.name).click()
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW)
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_text("Your password was changed.")).to_be_visible()
    page.reload()  # this tab's session goes on with the new pair's cookie
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    new = site.http.post("/api/v1/auth/login", json={"email": ada.email, "password": NEW})
    assert new.status_code == 200
