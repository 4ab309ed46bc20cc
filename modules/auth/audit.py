"""The audit trail of sign-ins that went wrong: a structured log line and an activity-log
entry (`account.*`, admins read them at /api/v1/activity). Never a password, token or full
email address: the address is masked, the account named by id when there is one."""

from __future__ import annotations

from typing import Any

from core import clock
from core.deps import AppContext
from core.logging import get_logger
from core.storage.records import SYSTEM_ACTOR, Change, new_id

log = get_logger("audit")


def mask_email(email: str) -> str:
    """`v***@example.com`: enough to tell accounts apart in a log, not to harvest them."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{email[:1]}***"


async def record(
    ctx: AppContext, what: str, *, account_id: str | None, ip: str | None, **data: Any
) -> None:
    """`account.<what>`; a failure to write the entry is logged, never the caller's error."""
    fields = {"account_id": account_id, "ip": ip, **data}
    log.warning(f"account_{what}", **fields)
    change = Change(
        id=new_id(),
        type=f"account.{what}",
        occurred_at=clock.now(),
        actor=SYSTEM_ACTOR,
        subject="account",
        subject_id=account_id or "unknown",
        seq=0,
        event_id="",
        data=fields,
        owner_id=account_id,
    )
    try:
        await ctx.storage.changes.note(change)
    except Exception as exc:  # the sign-in's answer must not depend on the audit store
        log.error("audit_not_recorded", type=change.type, error=type(exc).__name__)


async def record_refusal(
    ctx: AppContext, what: str, account: str, *, ip: str, retry_after: str, **data: Any
) -> None:
    """A refusal is recorded once per account and address until its window ends: refusals
    cost an attacker nothing, and one entry each would let a flood fill the log."""
    key = f"audit-refused:{what}:{account}:{ip}"
    try:
        first = bool(await ctx.cache.client.set(key, "1", nx=True, ex=max(1, int(retry_after))))
    except Exception:  # no cache: record it rather than lose it
        first = True
    if first:
        await record(ctx, what, account_id=None, ip=ip, retry_after=retry_after, **data)
