from __future__ import annotations

from datetime import datetime

from core.queue import QueueState
from core.schemas import CamelModel


class PlaceOut(CamelModel):
    """One buyer's place. `position` (1 = first) is fixed once drawn and kept after
    admission; `ahead`: how many still wait in front; `etaSeconds` from the measured
    admission rate (null before the draw, while paused, or once admitted)."""

    state: QueueState
    position: int | None
    ahead: int | None
    eta_seconds: int | None
    admission_token: str | None
    admitted_until: datetime | None


class QueueStatsOut(CamelModel):
    event_id: str
    prequeue: int
    waiting: int
    admitted: int
    """Admitted since the queue opened (active or not)."""
    active: int
    """Admitted now: their admittedUntil is ahead."""
    admitted_per_minute: float
    """Measured over the last minute (or since the first admission, if sooner)."""
    median_wait_seconds: float | None
    admit_per_minute: int
    max_active: int | None
