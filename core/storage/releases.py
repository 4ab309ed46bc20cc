"""The seats released bookings give back to the tier and buyer counters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Release:
    """The seats some released bookings give back, grouped as the counters keep them and in
    a fixed order (so that concurrent releases lock rows in the same order)."""

    tiers: list[tuple[str, str, int]]
    """(event id, tier code, seats)."""
    buyers: list[tuple[str, str, int, int]]
    """(event id, owner id, seats, of which pending)."""


def release_of(bookings: Iterable[Mapping[str, Any]]) -> Release:
    """Group released bookings (rows or documents with event_id, tier, owner_id, quantity and
    the status they had) by tier and by buyer."""
    tiers: dict[tuple[str, str], int] = defaultdict(int)
    buyers: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for b in bookings:
        tiers[(b["event_id"], b["tier"])] += b["quantity"]
        counts = buyers[(b["event_id"], b["owner_id"])]
        counts[0] += b["quantity"]
        if b["status"] == "pending":
            counts[1] += b["quantity"]
    return Release(
        tiers=[(e, t, n) for (e, t), n in sorted(tiers.items())],
        buyers=[(e, o, n, p) for (e, o), (n, p) in sorted(buyers.items())],
    )
