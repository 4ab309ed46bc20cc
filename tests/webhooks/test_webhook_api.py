"""The webhooks API: owners only, validation, SSRF refusals, secret rotation, test deliveries
and replays by hand."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import WebhookVerificationError

from core import clock
from core.config import Settings
from core.storage.records import Delivery, Webhook
from modules.webhooks.dispatcher import Dispatcher
from modules.webhooks.urls import Target
from tests.support.api import Api
from tests.support.receiver import Receiver
from tests.webhooks.conftest import fast_settings
from tests.webhooks.test_webhook_delivery import deliveries_when, settled, subscribe

API = "/api/v1/webhooks"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "WEBHOOK_URL_NOT_HTTPS"),
        ("https://127.0.0.1/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://localhost:8443/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://169.254.169.254/latest/meta-data/", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://10.1.2.3/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://192.168.0.10/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://[::1]/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://[::ffff:127.0.0.1]/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://[fd00:ec2::254]/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://0.0.0.0/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://224.0.0.1/hook", "WEBHOOK_URL_FORBIDDEN_ADDRESS"),
        ("https://user:secret@example.com/hook", "WEBHOOK_URL_CREDENTIALS"),
        ("ftp://example.com/hook", "WEBHOOK_URL_INVALID"),
        ("example.com/hook", "WEBHOOK_URL_INVALID"),
        ("https://example.com:99999/hook", "WEBHOOK_URL_INVALID"),
        ("https://no-such-host.invalid/hook", "WEBHOOK_URL_UNRESOLVABLE"),
    ],
)
async def test_unsafe_urls_are_refused(sqlite_api: Api, url: str, code: str) -> None:
    organizer = await sqlite_api.user("organizer")
    r = await sqlite_api.client.post(
        API, json={"url": url, "events": ["*"]}, headers=organizer.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code and r.json()["errors"][0]["field"] == "url"


def test_private_addresses_are_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE"):
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="production",
            jwt_secret="x" * 40,
            webhook_allow_private=True,
        )


async def test_the_address_is_checked_again_when_sending(sqlite_url: str) -> None:
    """A URL accepted once may resolve elsewhere later (DNS rebinding): each send resolves
    and checks again, and refuses before connecting."""
    settings = fast_settings(sqlite_url, webhook_allow_private=False)
    from core.storage import build_storage

    storage = build_storage(sqlite_url)
    dispatcher = Dispatcher(storage, settings)
    now = clock.now()
    async with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        hook = Webhook(
            "w", "o", "admin", f"https://localhost:{port}/x", ("*",), "whsec_AAAA", now, now
        )
        delivery = Delivery("msg_1", "w", "c", "t", "s", 1, {}, now, now, now)
        try:
            sent = await dispatcher.send(hook, delivery, now)
        finally:
            await dispatcher.close()
            await storage.close()
    assert sent.status_code is None and sent.error == "address_refused"
    assert receiver.received == []


def test_requests_go_to_the_checked_address() -> None:
    target = Target(
        "https://hooks.example.com:8443/in?x=1",
        "hooks.example.com",
        8443,
        ipaddress.ip_address("93.184.216.34"),
    )
    assert target.connect_url == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"
    v6 = Target("https://h.example/", "h.example", 443, ipaddress.ip_address("2606:2800::1"))
    assert v6.connect_url == "https://[2606:2800::1]:443/" and v6.host_header == "h.example"


async def test_owners_only_and_validation(sqlite_hooks: Api) -> None:
    api = sqlite_hooks
    owner, stranger, admin = (
        await api.user("organizer"),
        await api.user("organizer"),
        await api.user("admin"),
    )
    hook = await subscribe(api, owner, "http://127.0.0.1:9/in", ["booking.*", "event.published"])
    assert hook["events"] == ["booking.*", "event.published"] and hook["description"] is None
    url = f"{API}/{hook['id']}"
    for method in ("GET", "PATCH", "DELETE"):
        r = await api.client.request(method, url, headers=stranger.headers, json={})
        assert r.status_code == 404 and r.json()["code"] == "WEBHOOK_NOT_FOUND", method
    for path in ("rotate-secret", "test"):
        r = await api.client.post(f"{url}/{path}", headers=stranger.headers)
        assert r.status_code == 404
    assert (await api.client.get(f"{url}/deliveries", headers=stranger.headers)).status_code == 404
    assert (await api.client.get(url, headers=admin.headers)).status_code == 200
    mine = (await api.client.get(API, headers=owner.headers)).json()["data"]
    assert [h["id"] for h in mine] == [hook["id"]] and "secret" not in mine[0]
    assert (await api.client.get(API, headers=stranger.headers)).json()["data"] == []
    everyone = (await api.client.get(API, params={"limit": 100}, headers=admin.headers)).json()
    assert hook["id"] in {h["id"] for h in everyone["data"]}
    for body in (
        {"url": "http://127.0.0.1:9/in", "events": ["booking.shipped"]},
        {"url": "http://127.0.0.1:9/in", "events": []},
        {"url": "http://127.0.0.1:9/in"},
        {"url": "http://127.0.0.1:9/in", "events": ["*"], "secret": "mine"},
    ):
        r = await api.client.post(API, json=body, headers=owner.headers)
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", body
    r = await api.client.patch(url, json={"events": ["event.*"]}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["data"]["events"] == ["event.*"]
    r = await api.client.patch(url, json={"enabled": False}, headers=owner.headers)
    assert r.json()["data"]["enabled"] is False
    assert r.json()["data"]["disabledReason"] == "disabled by its owner"
    r = await api.client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 409 and r.json()["code"] == "WEBHOOK_DISABLED"
    r = await api.client.patch(url, json={"enabled": True}, headers=owner.headers)
    assert r.json()["data"]["enabled"] is True and r.json()["data"]["disabledReason"] is None
    assert (await api.client.delete(url, headers=owner.headers)).status_code == 204
    assert (await api.client.get(url, headers=owner.headers)).status_code == 404


async def test_urls_are_checked_when_changed(sqlite_api: Api) -> None:
    owner = await sqlite_api.user("admin")
    await sqlite_api.ctx.storage.webhooks.create(
        Webhook(
            "hook-1",
            owner.id,
            "admin",
            "https://example.com/in",
            ("*",),
            "whsec_AAAA",
            clock.now(),
            clock.now(),
        )
    )
    r = await sqlite_api.client.patch(
        f"{API}/hook-1", json={"url": "https://127.0.0.1/in"}, headers=owner.headers
    )
    assert r.status_code == 422 and r.json()["code"] == "WEBHOOK_URL_FORBIDDEN_ADDRESS"


async def test_rotated_secret_signs_from_then_on(sqlite_hooks: Api) -> None:
    api = sqlite_hooks
    owner = await api.user("organizer")
    async with Receiver() as receiver:
        hook = await subscribe(api, owner, receiver.url)
        r = await api.client.post(f"{API}/{hook['id']}/rotate-secret", headers=owner.headers)
        assert r.status_code == 200
        rotated: dict[str, Any] = r.json()["data"]
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
        r = await api.client.post(f"{API}/{hook['id']}/test", headers=owner.headers)
        assert r.status_code == 200, r.text
        tested = r.json()["data"]
    assert tested["status"] == "succeeded" and tested["lastStatusCode"] == 200
    assert tested["type"] == "webhook.test" and tested["attempts"] == 1
    [got] = receiver.received
    assert got.id == tested["id"]
    assert got.verify(rotated["secret"])["data"]["webhookId"] == hook["id"]
    with pytest.raises(WebhookVerificationError):
        got.verify(hook["secret"])


async def test_a_finished_delivery_is_replayed_by_hand(sqlite_hooks: Api) -> None:
    api = sqlite_hooks
    owner = await api.user("organizer")
    async with Receiver() as receiver, Receiver(default=500) as failing:
        hook = await subscribe(api, owner, receiver.url)
        first = (await api.client.post(f"{API}/{hook['id']}/test", headers=owner.headers)).json()
        retry = f"{API}/{hook['id']}/deliveries/{first['data']['id']}/retry"
        r = await api.client.post(retry, headers=owner.headers)
        assert r.status_code == 200 and r.json()["data"]["status"] == "pending"
        await receiver.wait_until(lambda got: len(got) == 2)
        [again] = await deliveries_when(api, owner, hook, settled)
        broken = await subscribe(api, owner, failing.url)
        stuck = (await api.client.post(f"{API}/{broken['id']}/test", headers=owner.headers)).json()
        r = await api.client.post(
            f"{API}/{broken['id']}/deliveries/{stuck['data']['id']}/retry", headers=owner.headers
        )
        assert r.status_code == 409 and r.json()["code"] == "DELIVERY_PENDING"
        assert stuck["data"]["status"] == "pending" and stuck["data"]["lastStatusCode"] == 500
        assert stuck["data"]["nextAttemptAt"] is not None
        r = await api.client.post(
            f"{API}/{hook['id']}/deliveries/nope/retry", headers=owner.headers
        )
        assert r.status_code == 404 and r.json()["code"] == "DELIVERY_NOT_FOUND"
    assert [g.id for g in receiver.received] == [first["data"]["id"]] * 2
    assert again["status"] == "succeeded" and again["attempts"] == 2


async def test_an_owner_has_at_most_twenty_webhooks(sqlite_api: Api) -> None:
    owner = await sqlite_api.user("organizer")
    for _ in range(20):
        await subscribe(sqlite_api, owner, "https://93.184.216.34/in")
    r = await sqlite_api.client.post(
        API, json={"url": "https://93.184.216.34/in", "events": ["*"]}, headers=owner.headers
    )
    assert r.status_code == 409 and r.json()["code"] == "WEBHOOK_LIMIT_REACHED"
