"""Sending the mail outbox: claim due mails with a lease, render, hand them to the transport,
record the outcome.

Every `serve` process runs this; a claim leases each mail to one of them, so in normal
operation each mail reaches the SMTP server once. A sender killed mid-send leaves its lease to
run out, then the mail is claimed again: at least once, never lost, and a second copy carries
the same Message-ID. A refusal that will not change (5xx) ends the mail `failed`; anything
else (a server down, 4xx, a timeout) is retried with exponential backoff and jitter until the
retry window ends. `ticketboss mail` lists them; /metrics counts them.

Sales come first: rendering a confirmation (a QR code per seat, an .ics, the MIME tree) costs
a worker about as much CPU as the booking it confirms, so while requests keep arriving at this
process the sender paces itself to MAIL_BUSY_PER_SECOND and the backlog drains at full speed
once the peak is over (measured: bench/run.py reports sales and mail CPU apart).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import Counter

from core import clock
from core.config import Settings
from core.deps import AppContext
from core.logging import get_logger
from core.mail import MailFailed, Transport, build_transport
from core.middleware import WORKER_LOAD, WorkerLoad
from core.outbox import retry_delay
from core.storage.port import Storage
from core.storage.records import Attempt, DeliveryStatus, Mail
from modules.notifications.render import render

log = get_logger(__name__)
CLAIM_BATCH = 16
MAIL_SENT = Counter("ticketboss_mail_sent_total", "Messages the transport took", ["template"])
MAIL_FAILED = Counter(
    "ticketboss_mail_attempts_failed_total",
    "Attempts the transport refused or that failed (retried unless final)",
    ["final"],
)


def masked(address: str) -> str:
    """`a***@example.com`: enough to tell accounts apart in a log, not to harvest them."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


class Sender:
    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        transport: Transport,
        *,
        load: WorkerLoad = WORKER_LOAD,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.transport = transport
        self.holder = f"{os.uname().nodename[:30]}:{os.getpid()}:{id(self):x}"
        self.lease = timedelta(seconds=2 * settings.smtp_timeout_seconds + 10)
        self.load = load
        self.pause = pause
        self.seen = load.begun

    async def yield_to_requests(self) -> None:
        """Before a mail: if requests arrived since the last one, wait a turn (1 / the busy
        rate), so a peak's sales are not slowed by its own confirmations."""
        if self.load.begun != self.seen:
            await self.pause(1 / self.settings.mail_busy_per_second)
        self.seen = self.load.begun

    async def run_once(self, limit: int = CLAIM_BATCH) -> int:
        """Claim the due mails (up to `limit`) and send them; how many were claimed. While
        requests arrive, a second's worth at most, so the claim's lease outlasts its turns."""
        if self.load.begun != self.seen:
            limit = min(limit, int(self.settings.mail_busy_per_second))
        now = clock.now()
        claimed = await self.storage.mail.claim(now, self.holder, now + self.lease, limit)
        for mail in claimed:  # one at a time: one SMTP conversation per message
            await self.yield_to_requests()
            try:
                await self.send(mail)
            except Exception as exc:  # its lease runs out and it is sent again
                log.warning("mail_send_failed", mail_id=mail.id, error=type(exc).__name__)
        return len(claimed)

    async def run_forever(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except Exception as exc:  # the loop must outlive a database outage
                log.warning("mail_dispatch_failed", error=type(exc).__name__)
                claimed = 0
            if claimed < CLAIM_BATCH:
                await asyncio.sleep(self.settings.mail_poll_seconds)

    async def send(self, mail: Mail) -> Mail | None:
        error: MailFailed | None = None
        try:
            await self.transport.send(render(mail, self.settings.mail_from))
        except MailFailed as exc:
            error = exc
        except (KeyError, TypeError, ValueError) as exc:  # a row no template can render
            error = MailFailed(f"cannot render: {type(exc).__name__}", permanent=True)
        now = clock.now()
        s = self.settings
        if error is None:
            status: DeliveryStatus = "succeeded"
            next_at = now
            MAIL_SENT.labels(mail.template).inc()
            log.info("mail_sent", mail_id=mail.id, template=mail.template, to=masked(mail.to))
        else:
            delay = retry_delay(
                mail.attempts + 1, s.mail_retry_base_seconds, s.mail_retry_max_seconds
            )
            next_at = now + timedelta(seconds=delay)
            final = error.permanent or next_at > mail.retry_until
            status = "failed" if final else "pending"
            next_at = now if final else next_at
            MAIL_FAILED.labels(str(final).lower()).inc()
            log.warning(
                "mail_attempt_failed",
                mail_id=mail.id,
                template=mail.template,
                to=masked(mail.to),
                reason=error.reason,
                final=final,
            )
        attempt = Attempt(
            status=status,
            at=now,
            next_attempt_at=next_at,
            error=error.reason[:500] if error else None,
        )
        return await self.storage.mail.settle(mail.id, self.holder, attempt)


def sender_of(ctx: AppContext) -> Sender:
    s = ctx.settings
    smtp_url = s.smtp_url.get_secret_value() if s.smtp_url else None
    transport = build_transport(smtp_url, s.mail_dir, s.smtp_timeout_seconds, s.smtp_ca_file)
    return Sender(ctx.storage, s, transport)


async def send_mail(ctx: AppContext) -> None:
    """Background loop of `serve`: every process sends due mail (claims keep them apart)."""
    await sender_of(ctx).run_forever()
