"""Why an atomic step changed nothing, read afresh: the refusal a backend raises after its
guarded write matched no row (or a request refused before any write)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    InOrder,
    Missing,
    NoSuchTier,
    NotOnSale,
    NotPending,
    Refused,
    SoldOut,
    StorageError,
)
from core.storage.records import Booking, Order, Tier
from core.storage.requests import BuyerSeats


def check_request_limits(request: BuyerSeats) -> None:
    """Refuse a request larger than a limit on its own (a first booking inserts the buyer's
    count, where no guard is evaluated)."""
    if request.max_per_user is not None and request.quantity > request.max_per_user:
        raise BuyerLimit("max_per_user")
    if request.max_pending is not None and request.pending_quantity > request.max_pending:
        raise BuyerLimit("max_pending")


def buyer_limit(request: BuyerSeats, active: int, pending: int) -> BuyerLimit:
    """Which of the buyer's limits a refused count update ran into."""
    if request.max_per_user is not None and active + request.quantity > request.max_per_user:
        return BuyerLimit("max_per_user")
    return BuyerLimit("max_pending")


def not_confirmed(
    current: Booking | Order | None, owner_id: str, *, started: bool = False
) -> StorageError:
    """Why a confirm changed nothing, from a fresh read of its booking or order (`started`:
    whether its event has started, which ends every sale, confirmations included)."""
    if current is None or current.owner_id != owner_id:
        return Missing()
    if isinstance(current, Booking) and current.order_id is not None:
        return InOrder(current.order_id)
    if current.status == "pending" and started:
        return NotOnSale()
    if current.status in ("pending", "expired"):
        return BookingExpired()  # a pending one is past its expiry, not yet swept
    return NotPending(current.status)


async def confirmation_refused[R: (Booking, Order)](
    get: Callable[[str], Awaitable[R | None]],
    started: Callable[[str, datetime], Awaitable[bool]],
    subject_id: str,
    owner_id: str,
    now: datetime,
) -> StorageError:
    """Why the confirm of booking or order `subject_id` changed nothing, read afresh."""
    current = await get(subject_id)
    has_started = current is not None and await started(current.event_id, now)
    return not_confirmed(current, owner_id, started=has_started)


def not_cancelled(current: Booking | Order | None, owner_id: str | None) -> StorageError:
    """Why a cancel changed nothing, from a fresh read of its booking or order."""
    if current is None or (owner_id is not None and current.owner_id != owner_id):
        return Missing()
    if isinstance(current, Booking) and current.order_id is not None:
        return InOrder(current.order_id)
    return NotPending("expired" if current.status == "pending" else current.status)


def refusal(tier: Tier | None, *, unlocked: bool = False) -> Refused:
    """Why a reserve that changed nothing was refused, from a fresh read of its tier (a
    hidden tier does not exist for a buyer without a code that `unlocked` it)."""
    if tier is None or (tier.hidden and not unlocked):
        return NoSuchTier()
    if not tier.on_sale:
        return NotOnSale()
    return SoldOut(available=max(0, tier.free))
