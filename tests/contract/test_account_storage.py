"""Account recovery and verified addresses on every backend: a reset spends its token, sets
the password and ends every session in one atomic step (once, however many race for it); an
email code counts every attempt before it is compared and never more than the limit, and its
use (verify, or move to a new address and tell the old one) happens once or not at all."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import DuplicateKey
from core.storage.records import (
    CodePurpose,
    EmailCode,
    Mail,
    RefreshToken,
    ResetToken,
    User,
    new_id,
)
from tests.support.storage import a_user


def a_mail(to: str, template: str = "verify_email") -> Mail:
    now = clock.now()
    return Mail(
        id=f"{new_id()}-code",
        template=template,
        to=to,
        params={"name": "Ann", "code": "123456", "purpose": "verify", "minutes": 15},
        created_at=now,
        next_attempt_at=now,
        retry_until=now + timedelta(hours=1),
    )


async def a_session(storage: ManagedStorage, user: User) -> str:
    jti = new_id()
    expires = clock.now() + timedelta(days=1)
    await storage.tokens.add(RefreshToken(jti, new_id(), user.id, expires))
    return jti


async def issue_reset(storage: ManagedStorage, user: User, ttl: float = 600) -> str:
    token_hash = hashlib.sha256(new_id().encode()).hexdigest()
    now = clock.now()
    expires = now + timedelta(seconds=ttl)
    await storage.resets.issue(ResetToken(user.id, token_hash, expires, now), a_mail(user.email))
    return token_hash


async def test_a_reset_sets_the_password_and_ends_every_session_at_once(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    session = await a_session(storage, user)
    token = await issue_reset(storage, user)
    outcome, after = await storage.resets.reset(token, "new-hash", clock.now())
    assert outcome == "ok" and after is not None
    assert after.password_hash == "new-hash" and after.token_version == user.token_version + 1
    assert await storage.users.get(user.id) == after
    assert await storage.tokens.spend(session, clock.now()) == "revoked"
    assert await storage.resets.reset(token, "other-hash", clock.now()) == ("unknown", None)
    stored = await storage.users.get(user.id)
    assert stored is not None and stored.password_hash == "new-hash"


async def test_racing_resets_with_one_token_set_one_password(storage: ManagedStorage) -> None:
    user = await storage.users.create(a_user())
    token = await issue_reset(storage, user)
    outcomes = await asyncio.gather(
        *(storage.resets.reset(token, f"hash-{i}", clock.now()) for i in range(8))
    )
    won = [after for outcome, after in outcomes if outcome == "ok"]
    assert len(won) == 1 and won[0] is not None
    assert sorted(o for o, _ in outcomes) == ["ok"] + ["unknown"] * 7
    stored = await storage.users.get(user.id)
    assert stored == won[0] and stored.token_version == user.token_version + 1


async def test_an_expired_reset_changes_nothing_and_is_gone(storage: ManagedStorage) -> None:
    user = await storage.users.create(a_user())
    session = await a_session(storage, user)
    token = await issue_reset(storage, user, ttl=1)
    later = clock.now() + timedelta(seconds=2)
    assert await storage.resets.reset(token, "new-hash", later) == ("spent", None)
    assert await storage.users.get(user.id) == user
    assert await storage.resets.reset(token, "new-hash", clock.now()) == ("unknown", None)
    assert await storage.tokens.spend(session, clock.now()) == "ok"


def a_code(
    user: User, purpose: CodePurpose = "verify", email: str | None = None, ttl: float = 600
) -> EmailCode:
    now = clock.now()
    return EmailCode(
        user_id=user.id,
        purpose=purpose,
        email=email or user.email,
        code_hash=hashlib.sha256(new_id().encode()).hexdigest(),
        salt=new_id()[:16],
        expires_at=now + timedelta(seconds=ttl),
        created_at=now,
    )


async def test_a_code_is_issued_with_its_mail_and_a_new_one_replaces_it(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    first, mail = a_code(user), a_mail(user.email)
    await storage.email_codes.issue(first, mail)
    assert await storage.mail.get(mail.id) is not None
    assert await storage.email_codes.find(user.email) == [first]
    second = a_code(user)
    await storage.email_codes.issue(second, a_mail(user.email))
    assert await storage.email_codes.find(user.email) == [second]
    assert (
        await storage.email_codes.use(first, clock.now(), None) is None
    )  # replaced: nothing changes
    assert (await storage.users.get(user.id)) == user


async def test_attempts_are_counted_before_comparing_and_never_exceed_the_limit(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    await storage.email_codes.issue(a_code(user), a_mail(user.email))
    now = clock.now()
    rounds = await asyncio.gather(
        *(storage.email_codes.attempt(user.email, now, 5) for _ in range(12))
    )
    counted = sorted(c.attempts for got in rounds for c in got)
    assert counted == [1, 2, 3, 4, 5]  # five guesses got through, each seeing its own count
    assert await storage.email_codes.attempt(user.email, now, 5) == []
    [exhausted] = await storage.email_codes.find(user.email)
    assert exhausted.attempts == 5
    expired = await storage.users.create(a_user())
    await storage.email_codes.issue(a_code(expired, ttl=1), a_mail(expired.email))
    assert await storage.email_codes.attempt(expired.email, now + timedelta(seconds=2), 5) == []


async def test_a_verify_code_verifies_once(storage: ManagedStorage) -> None:
    user = await storage.users.create(a_user())
    code = a_code(user)
    await storage.email_codes.issue(code, a_mail(user.email))
    now = clock.now()
    [counted] = await storage.email_codes.attempt(user.email, now, 5)
    used = await asyncio.gather(*(storage.email_codes.use(counted, now, None) for _ in range(4)))
    verified = [u for u in used if u is not None]
    assert len(verified) == 1 and verified[0].email_verified_at == now
    assert verified[0].email == user.email and verified[0].token_version == user.token_version
    assert await storage.users.get(user.id) == verified[0]
    assert await storage.email_codes.find(user.email) == []


async def test_a_change_code_moves_the_account_and_tells_the_old_address(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    new_email = f"moved-{new_id()}@example.com"
    code = a_code(user, "change", new_email)
    await storage.email_codes.issue(code, a_mail(new_email))
    notice = a_mail(user.email, "email_changed")
    now = clock.now()
    moved = await storage.email_codes.use(code, now, notice)
    assert moved is not None and moved.email == new_email and moved.email_verified_at == now
    assert await storage.users.get_by_email(new_email) == moved
    assert await storage.users.get_by_email(user.email) is None
    assert await storage.mail.get(notice.id) is not None
    assert await storage.email_codes.use(code, now, a_mail(user.email, "email_changed")) is None


async def test_a_change_to_an_address_taken_meanwhile_changes_nothing(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    new_email = f"wanted-{new_id()}@example.com"
    code = a_code(user, "change", new_email)
    await storage.email_codes.issue(code, a_mail(new_email))
    await storage.users.create(a_user(new_email))  # someone registered it meanwhile
    notice = a_mail(user.email, "email_changed")
    with pytest.raises(DuplicateKey):
        await storage.email_codes.use(code, clock.now(), notice)
    assert await storage.users.get(user.id) == user
    assert await storage.mail.get(notice.id) is None
    assert await storage.email_codes.find(new_email) == [code]  # still there: nothing changed


async def test_a_verify_code_for_an_address_the_account_left_does_nothing(
    storage: ManagedStorage,
) -> None:
    user = await storage.users.create(a_user())
    stale = a_code(user)
    await storage.email_codes.issue(stale, a_mail(user.email))
    move = a_code(user, "change", f"later-{new_id()}@example.com")
    await storage.email_codes.issue(move, a_mail(move.email))
    moved = await storage.email_codes.use(move, clock.now(), None)
    assert moved is not None
    assert await storage.email_codes.use(stale, clock.now(), None) is None
    after = await storage.users.get(user.id)
    assert after == moved
