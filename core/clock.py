"""The time every rule reads: holds expiring, sales ending, tokens and deliveries ageing.

One function, so that a test moves time instead of sleeping through it (`advance`). Timeouts
and caches that only measure intervals use `time.monotonic` and are not on this clock; neither
are the JWT library's own expiry checks nor the rate limiter's Redis TTLs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """Now in UTC, to the millisecond: the precision every backend stores."""
    current = datetime.now(UTC) + _offset
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def advance(by: timedelta) -> None:
    """Move this process's clock forward (tests only: time never runs backwards in use)."""
    global _offset
    if by < timedelta(0):
        raise ValueError("the clock only moves forward")
    _offset += by


def reset() -> None:
    """Back to the wall clock (a test that advanced it cleans up with this)."""
    global _offset
    _offset = timedelta(0)
