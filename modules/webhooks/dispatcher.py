"""Sending deliveries: claim due ones with a lease, POST them signed, record the outcome.

Several processes (workers, instances, `ticketboss deliver-webhooks` from cron) may run
this at once: a claim leases each delivery to one of them (storage makes the claim atomic),
and a lease that ends unsettled (a crash mid-send) makes the delivery claimable again, so
delivery is at least once, never lost. A claim only takes the first pending delivery of each
(webhook, subject), so a booking's or an event's changes arrive in the order they happened.

Outcomes: a 2xx ends a delivery (`succeeded`); 410 Gone disables the webhook and fails the
delivery; anything else (another status, a timeout, a refused address) is retried with
exponential backoff and jitter until the retry window ends, then the delivery is `failed`
(replayable by hand). A webhook that has failed every attempt for a whole window is disabled
at its next failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from standardwebhooks.webhooks import Webhook as Signer

from core import clock
from core.config import Settings
from core.deps import AppContext
from core.logging import get_logger
from core.outbox import retry_delay
from core.storage.port import Storage
from core.storage.records import Attempt, Delivery, DeliveryStatus, Webhook
from modules.webhooks.schemas import FailureCategory
from modules.webhooks.urls import UnsafeUrl, resolve

log = get_logger(__name__)
MAX_RESPONSE_BYTES = 64 * 1024
"""A receiver's answer is read up to this much, then dropped: only its status matters."""
CLAIM_BATCH = 32
USER_AGENT = "TicketBoss-Webhooks/1"


def body_of(delivery: Delivery) -> bytes:
    return orjson.dumps(delivery.payload)


def signed_headers(
    webhook: Webhook, delivery: Delivery, body: bytes, at: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers: the delivery's id (the same on every attempt), the
    time of this attempt, and `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signature = Signer(webhook.secret).sign(delivery.id, at, body.decode())
    return {
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True, slots=True)
class Sent:
    status_code: int | None
    latency_ms: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Dispatcher:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings
        self.holder = f"{os.uname().nodename[:30]}:{os.getpid()}:{id(self):x}"
        self.lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 10)
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=settings.webhook_timeout_seconds,
            limits=httpx.Limits(max_connections=CLAIM_BATCH, max_keepalive_connections=8),
            trust_env=False,  # never through a proxy from the environment
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def run_once(self, limit: int = CLAIM_BATCH) -> int:
        """Claim the due deliveries (up to `limit`) and send them; how many were claimed."""
        now = clock.now()
        claimed = await self.storage.webhooks.claim(now, self.holder, now + self.lease, limit)
        outcomes = await asyncio.gather(*(self.deliver(d) for d in claimed), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):  # its lease runs out and it is sent again
                log.warning("webhook_delivery_failed", error=type(outcome).__name__)
        return len(claimed)

    async def deliver_now(self, delivery_id: str) -> Delivery | None:
        """Claim and send one delivery at once (a test delivery); None if it is not due."""
        now = clock.now()
        claimed = await self.storage.webhooks.claim(
            now, self.holder, now + self.lease, 1, delivery_id
        )
        if not claimed:
            return None
        return await self.deliver(claimed[0])

    async def run_forever(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except Exception as exc:  # the loop must outlive a database outage
                log.warning("webhook_dispatch_failed", error=type(exc).__name__)
                claimed = 0
            if claimed < CLAIM_BATCH:
                await asyncio.sleep(self.settings.webhook_poll_seconds)

    async def deliver(self, delivery: Delivery) -> Delivery | None:
        """Send one claimed delivery and record what came of it."""
        webhook = await self.storage.webhooks.get(delivery.webhook_id)
        now = clock.now()
        if webhook is None or not webhook.enabled:
            reason = webhook.disabled_reason if webhook else None
            sent = Sent(None, None, f"webhook disabled: {reason or 'by its owner'}")
            return await self._settle(delivery, webhook, sent, now, final=True)
        sent = await self.send(webhook, delivery, now)
        if sent.status_code == 410:
            reason = f"the receiver answered 410 Gone at {now.isoformat()}"
            await self.storage.webhooks.update(
                webhook.id, {"enabled": False, "disabled_reason": reason}, clock.now()
            )
            log.info("webhook_disabled", webhook_id=webhook.id, reason="410")
            return await self._settle(delivery, webhook, sent, now, final=True)
        return await self._settle(delivery, webhook, sent, now, final=False)

    async def send(self, webhook: Webhook, delivery: Delivery, now: datetime) -> Sent:
        """POST the delivery to the address that passed the SSRF check just now."""
        try:
            target = await resolve(webhook.url, allow_private=self.settings.webhook_allow_private)
        except UnsafeUrl as exc:
            return Sent(None, None, REFUSAL_CATEGORY.get(exc.code, "address_refused"))
        body = body_of(delivery)
        headers = signed_headers(webhook, delivery, body, now) | {"host": target.host_header}
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange: httpx's timeouts are per read, and a receiver
            # trickling its answer must not hold the delivery past its lease.
            async with (
                asyncio.timeout(self.settings.webhook_timeout_seconds),
                self.client.stream(
                    "POST",
                    target.connect_url,
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": target.host},
                ) as response,
            ):
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
        except (httpx.TimeoutException, TimeoutError, httpx.HTTPError) as exc:
            return Sent(None, _ms(started), failure_category(exc))
        error = None if 200 <= response.status_code < 300 else "http_status"
        return Sent(response.status_code, _ms(started), error)

    async def _settle(
        self,
        delivery: Delivery,
        webhook: Webhook | None,
        sent: Sent,
        now: datetime,
        *,
        final: bool,
    ) -> Delivery | None:
        s = self.settings
        attempts = delivery.attempts + 1
        next_at = now + timedelta(
            seconds=retry_delay(attempts, s.webhook_retry_base_seconds, s.webhook_retry_max_seconds)
        )
        exhausted = not sent.ok and (final or next_at > delivery.retry_until)
        status: DeliveryStatus = "succeeded" if sent.ok else "failed" if exhausted else "pending"
        attempt = Attempt(
            status=status,
            at=now,
            next_attempt_at=now if status != "pending" else next_at,
            status_code=sent.status_code,
            latency_ms=sent.latency_ms,
            error=sent.error,
        )
        settled = await self.storage.webhooks.settle(delivery.id, self.holder, attempt)
        if webhook is not None and webhook.enabled:
            await self._note(webhook, sent, now)
        return settled

    async def _note(self, webhook: Webhook, sent: Sent, now: datetime) -> None:
        """Track the webhook's health: one that has failed every attempt for a whole retry
        window is disabled at its next failure, with the reason."""
        noted = await self.storage.webhooks.note_outcome(webhook.id, sent.ok, now)
        if noted is None or sent.ok or noted.failing_since is None:
            return
        window = timedelta(seconds=self.settings.webhook_retry_window_seconds)
        if now - noted.failing_since >= window:
            reason = (
                f"every attempt failed since {noted.failing_since.isoformat()} "
                f"(last: {sent.error or 'no answer'})"
            )
            await self.storage.webhooks.update(
                webhook.id, {"enabled": False, "disabled_reason": reason[:500]}, clock.now()
            )
            log.info("webhook_disabled", webhook_id=webhook.id, reason="failing")


REFUSAL_CATEGORY: dict[str, FailureCategory] = {
    "WEBHOOK_URL_UNRESOLVABLE": "dns_error",
    "WEBHOOK_URL_FORBIDDEN_ADDRESS": "address_refused",
}


def failure_category(exc: BaseException) -> FailureCategory:
    """What went wrong, as one of a few words: never the connection's own error text, which
    names addresses, ports and the receiver's software (an oracle for a probing caller)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    by_cause: tuple[tuple[type[BaseException], FailureCategory], ...] = (
        (ssl.SSLError, "tls_error"),
        (socket.gaierror, "dns_error"),
        (ConnectionRefusedError, "connection_refused"),
    )
    for kind, category in by_cause:
        if any(isinstance(c, kind) for c in causes):
            return category
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "ssl" in text or "certificate" in text:
            return "tls_error"  # httpcore keeps the SSL error's text, not always its type
        return "connection_refused" if "refused" in text else "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    return "network_error"


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def dispatch_webhooks(ctx: AppContext) -> None:
    """Background loop of `serve`: every process sends due deliveries (claims keep them apart)."""
    dispatcher = Dispatcher(ctx.storage, ctx.settings)
    try:
        await dispatcher.run_forever()
    finally:
        await dispatcher.close()
