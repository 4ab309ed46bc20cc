"""Counters that disagree with the bookings they count (`recount`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.storage.records import Drift
from core.storage.reserving import Sweeper


@dataclass(frozen=True, slots=True)
class Seats:
    """What the bookings of one tier or one buyer hold."""

    active: int = 0
    pending: int = 0


type Tally = Mapping[tuple[str, str], Seats]
"""Seats held by bookings that hold seats, per (event, tier) or per (event, owner)."""


class Counters(Protocol):
    """A backend's counters compared with the bookings they count."""

    async def read(self) -> list[Drift]:
        """The drifts, read in one snapshot; writes nothing."""

    async def repair(self) -> list[Drift]:
        """The drifts found, with their counters rebuilt, in one transaction."""


class Recount:
    """`recount`: the backend's `counters`, after the `sweeper` when they are repaired."""

    def __init__(self, sweeper: Sweeper, counters: Counters) -> None:
        self.sweeper = sweeper
        self.counters = counters

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        """Without `fix`, a read of one snapshot that writes nothing (an observer must not
        compete with what it watches); with it, expired holds are released first, then the
        drifted counters rebuilt in one transaction."""
        if not fix:
            return await self.counters.read()
        await self.sweeper.release_expired(now)
        return await self.counters.repair()


def drifts(
    tier_counters: Iterable[tuple[str, str, int]],
    buyer_counters: Iterable[tuple[str, str, int, int]],
    tier_tally: Tally,
    buyer_tally: Tally,
) -> list[Drift]:
    """Every counter that disagrees with the bookings: (event, tier, active) counters and
    (event, owner, active, pending) counters; a buyer with bookings but no counter drifts too."""
    found = [
        Drift(event_id, f"tier {code}", active, tier_tally.get((event_id, code), Seats()).active)
        for event_id, code, active in tier_counters
        if active != tier_tally.get((event_id, code), Seats()).active
    ]
    seen: set[tuple[str, str]] = set()
    for event_id, owner, active, pending in buyer_counters:
        seen.add((event_id, owner))
        actual = buyer_tally.get((event_id, owner), Seats())
        found += _buyer_drift(event_id, owner, Seats(active, pending), actual)
    for (event_id, owner), actual in buyer_tally.items():
        if (event_id, owner) not in seen:
            found += _buyer_drift(event_id, owner, Seats(), actual)
    return found


def _buyer_drift(event_id: str, owner: str, counter: Seats, actual: Seats) -> list[Drift]:
    return [
        Drift(event_id, f"buyer {owner} {name}", getattr(counter, name), getattr(actual, name))
        for name in ("active", "pending")
        if getattr(counter, name) != getattr(actual, name)
    ]


@dataclass(frozen=True, slots=True)
class CodeCount:
    """An access code's counter and what its bookings say."""

    event_id: str
    code: str
    tier: str
    uses: int
    """The code's counter."""
    used: int
    """Bookings holding seats with the code."""
    max_uses: int
    holding: bool


def claim_drifts(
    blocked_counters: Iterable[tuple[str, str, int]],
    offered: Mapping[tuple[str, str], int],
    codes: Iterable[CodeCount],
) -> list[Drift]:
    """Every tier whose blocked seats disagree with its live offers and the holds of its
    codes (`max_uses − used` while holding), and every code whose uses disagree with its
    bookings."""
    codes = list(codes)
    expected = expected_blocked(offered, codes)
    found = [
        Drift(c.event_id, f"code {c.code} uses", c.uses, c.used) for c in codes if c.uses != c.used
    ]
    for event_id, code, blocked in blocked_counters:
        actual = expected.get((event_id, code), 0)
        if blocked != actual:
            found.append(Drift(event_id, f"tier {code} blocked", blocked, actual))
    return found


def expected_blocked(
    offered: Mapping[tuple[str, str], int], codes: Iterable[CodeCount]
) -> dict[tuple[str, str], int]:
    """The seats a tier's blocked counter should hold: its live offers' and its holding
    codes' (`max_uses − used`)."""
    expected = dict(offered)
    for c in codes:
        if c.holding:
            key = (c.event_id, c.tier)
            expected[key] = expected.get(key, 0) + max(0, c.max_uses - c.used)
    return expected


def of_claims(found: Sequence[Drift]) -> bool:
    """Whether any drift is of the waiting list's or the access codes' terms (a tier's
    `blocked` seats, a code's `uses`): those are rebuilt by the backend's `repair_claims`."""
    return any(" blocked" in d.counter_of or d.counter_of.startswith("code ") for d in found)
