"""The mail outbox on every backend: one row per id however often it is enqueued, claims that
never lease one mail twice, a lease that ends makes the mail claimable again, and only the
lease holder settles."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core import clock
from core.storage import ManagedStorage
from core.storage.records import Attempt, Mail, new_id


def a_mail() -> Mail:
    now = clock.now()
    return Mail(
        id=f"{new_id()}-0a1b2c3d",
        template="booking_confirmed",
        to="ada@example.com",
        params={"lines": []},
        created_at=now,
        next_attempt_at=now,
        retry_until=now + timedelta(hours=1),
    )


async def test_a_mail_enqueued_twice_is_one_row(storage: ManagedStorage) -> None:
    mail = a_mail()
    assert await storage.mail.enqueue([mail]) == 1
    assert await storage.mail.enqueue([mail, a_mail()]) == 1
    stored = await storage.mail.get(mail.id)
    assert stored is not None and stored.params == {"lines": []} and stored.status == "pending"


async def test_claims_never_lease_a_mail_twice(storage: ManagedStorage) -> None:
    mails = [a_mail() for _ in range(12)]
    await storage.mail.enqueue(mails)
    now = clock.now()
    lease = now + timedelta(minutes=1)
    # a limit above everything due: the database is shared with other tests' outboxes
    claims = await asyncio.gather(
        *(storage.mail.claim(now, f"sender-{i}", lease, 10_000) for i in range(4))
    )
    claimed = [m.id for claim in claims for m in claim]
    assert len(claimed) == len(set(claimed))
    assert {m.id for m in mails} <= set(claimed)


async def test_a_lease_that_ends_unsettled_makes_the_mail_due_again(
    storage: ManagedStorage,
) -> None:
    mail = a_mail()
    await storage.mail.enqueue([mail])
    now = clock.now()
    mine = lambda claimed: [m for m in claimed if m.id == mail.id]  # noqa: E731
    assert mine(await storage.mail.claim(now, "dead", now + timedelta(seconds=1), 100))
    assert not mine(await storage.mail.claim(now, "alive", now + timedelta(seconds=30), 100))
    later = now + timedelta(seconds=2)
    [again] = mine(await storage.mail.claim(later, "alive", later + timedelta(seconds=30), 100))
    assert again.lease_holder == "alive"
    sent = Attempt(status="succeeded", at=later, next_attempt_at=later)
    assert await storage.mail.settle(mail.id, "dead", sent) is None  # the lease is not theirs
    settled = await storage.mail.settle(mail.id, "alive", sent)
    assert settled is not None and settled.status == "succeeded" and settled.attempts == 1
    assert settled.lease_holder is None and settled.params == {}  # nothing kept once sent
    assert not mine(await storage.mail.claim(later, "x", later + timedelta(seconds=30), 100))
    [listed] = [
        m
        for m in await storage.mail.find(status="succeeded", before_id=None, limit=500)
        if m.id == mail.id
    ]
    assert listed.status == "succeeded"
