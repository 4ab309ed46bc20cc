"""`ticketboss deliver-webhooks` (cron, serverless): relays the change log and sends every due
delivery, without a server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from core import clock
from core.storage import build_storage
from core.storage.records import User, Webhook, new_id
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def ticketboss(url: str, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modules.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_deliver_webhooks_relays_and_sends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    async with Receiver() as receiver:
        storage = build_storage(url)
        try:
            await storage.migrate()
            now = clock.now()
            admin = await storage.users.create(
                User(new_id(), "ops@example.com", "Ops", "admin", "x", now, now)
            )
            await storage.webhooks.create(
                Webhook(new_id(), admin.id, "admin", receiver.url, ("event.*",), SECRET, now, now)
            )
        finally:
            await storage.close()
        assert (await ticketboss(url, "seed"))[0] == 0  # three events, created and published
        code, out = await ticketboss(url, "deliver-webhooks")
        assert code == 0, out
        assert "attempted 6 webhook delivery(ies)" in out
        again = await ticketboss(url, "deliver-webhooks")
    assert "relayed 0 change record(s); attempted 0" in again[1]
    assert (
        sorted(r.verify(SECRET)["type"] for r in receiver.received)
        == ["event.created"] * 3 + ["event.published"] * 3
    )
