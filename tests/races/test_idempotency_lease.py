"""A claim on an Idempotency-Key is a lease (issue 29): through the real `ticketboss serve`
with two workers, a booking held up on SQLite's writer lock keeps its claim past several
leases (its worker renews it); SIGKILL the workers (the other one waits on the same lock for
its own background writes), and a retry with the same key, answered by their replacements,
gets a real answer as soon as they are up (not after the minute a claim used to last), never
a second booking."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import flock_waiters, worker_pids
from tests.support.races import account, counts_and_drift, hot_event
from tests.support.server import Server

pytestmark = pytest.mark.sqlite
LEASE = 2


async def test_a_dead_workers_claim_lapses_and_the_retry_books_once(tmp_path: Path) -> None:
    database = tmp_path / "lease.db"
    url = f"sqlite:///{database}"
    with Server(url, workers=2, IDEMPOTENCY_LEASE_SECONDS=str(LEASE)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            organizer = await account(http, url, "organizer")
            buyer = await account(http, url)
            event_id = await hot_event(
                http, organizer, [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 5}]
            )
            body = {"eventId": event_id, "tier": "GA", "quantity": 1}
            headers = buyer.headers | {"Idempotency-Key": "lease-test-key"}

            held = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(held, fcntl.LOCK_EX)  # every write now waits: the booking is slow
            try:
                first = asyncio.create_task(
                    http.post("/api/v1/bookings", json=body, headers=headers)
                )
                deadline = time.monotonic() + 30
                while (
                    not (waiting := flock_waiters() - {os.getpid()}) and time.monotonic() < deadline
                ):
                    await asyncio.sleep(0.1)
                assert waiting, "the booking never reached the writer lock"
                await asyncio.sleep(LEASE * 2)  # two leases: only renewal keeps the claim
                again = await http.post("/api/v1/bookings", json=body, headers=headers)
                assert again.status_code == 409, again.text
                assert again.json()["code"] == "IDEMPOTENCY_REQUEST_IN_PROGRESS"
                assert server.proc is not None
                for worker in worker_pids(server.proc.pid):
                    os.kill(worker, signal.SIGKILL)
                with pytest.raises(httpx.HTTPError):
                    await first
            finally:
                os.close(held)
            killed = time.monotonic()
            statuses = []
            while time.monotonic() - killed < 50:
                try:
                    retry = await http.post("/api/v1/bookings", json=body, headers=headers)
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)  # no worker yet
                    continue
                statuses.append(retry.status_code)
                if retry.status_code != 409:
                    break
                await asyncio.sleep(0.2)
            assert retry.status_code == 201, (statuses, retry.text)
            replay = await http.post("/api/v1/bookings", json=body, headers=headers)
            assert replay.status_code == 201
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json()["data"]["id"] == retry.json()["data"]["id"]
    counts, drift = await counts_and_drift(url, event_id)
    assert [(c.code, c.pending + c.confirmed) for c in counts] == [("GA", 1)] and not drift
