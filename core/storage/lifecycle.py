"""What an event's status change or deletion does to its tiers and bookings, the same on every
backend, around each backend's own steps (`LifecycleSteps`) inside the change's transaction.

The order is the rule: sales close first, on the rows every booking statement guards, so no
booking of the event can be added while the rest of the transaction runs (issue 13.2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.storage.errors import HasActiveBookings
from core.storage.records import Actor, EventStatus


class LifecycleSteps[Tx](Protocol):
    """A backend's steps, each within the transaction `Tx` it is given."""

    async def open_sales(self, tx: Tx, event_id: str) -> None: ...

    async def close_sales(self, tx: Tx, event_id: str) -> None: ...

    async def end_holdings(self, tx: Tx, event_id: str, now: datetime, actor: Actor) -> None:
        """End every booking (and order) that holds seats: lapsed holds `expired`, the rest
        `cancelled`, each with its change record."""

    async def recount_tiers(self, tx: Tx, event_id: str) -> None:
        """Set the event's tier and buyer counters to what its bookings hold."""

    async def release_lapsed(self, tx: Tx, event_id: str, now: datetime) -> None: ...

    async def has_holdings(self, tx: Tx, event_id: str) -> bool: ...


async def transitioned[Tx](
    steps: LifecycleSteps[Tx], tx: Tx, event_id: str, to: EventStatus, now: datetime, actor: Actor
) -> None:
    """After the event's status became `to`: published opens its tiers' sales; any other
    status closes them, and a cancellation then ends what still holds seats and recounts."""
    if to == "published":
        await steps.open_sales(tx, event_id)
        return
    await steps.close_sales(tx, event_id)
    if to == "cancelled":
        await steps.end_holdings(tx, event_id, now, actor)
        await steps.recount_tiers(tx, event_id)


async def deleting[Tx](steps: LifecycleSteps[Tx], tx: Tx, event_id: str, now: datetime) -> None:
    """Before a soft delete commits: sales closed and lapsed holds released; an event whose
    bookings still hold seats is not deleted (HasActiveBookings: the transaction rolls back,
    and its tiers stay on sale)."""
    await steps.close_sales(tx, event_id)
    await steps.release_lapsed(tx, event_id, now)
    if await steps.has_holdings(tx, event_id):
        raise HasActiveBookings()
