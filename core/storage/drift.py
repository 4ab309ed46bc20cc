"""Counters that disagree with the bookings they count (`recount`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
