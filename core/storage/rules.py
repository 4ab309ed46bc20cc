"""What is the same on every backend: the refusal classification, reserving (group commit and
the single path), the values of a new booking, the seats a release gives back, the sweep and
recount, drift, search words.

Each backend keeps only its atomic statements or transactions and its driver-error mapping;
everything a backend would otherwise write a second copy of lives here or beside it
(ordering.py, lifecycle.py, changelog.py, retries.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.metrics import HOLDS_EXPIRED
from core.storage.batching import ReserveBatcher
from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    InOrder,
    ItemsShort,
    Missing,
    NoSuchTier,
    NotOnSale,
    NotPending,
    Refused,
    SoldOut,
    StorageError,
)
from core.storage.records import (
    Booking,
    Drift,
    Order,
    Reservation,
    Tier,
)
from core.storage.requests import BuyerSeats, OrderRequest, ReserveRequest


async def releasing_expired[R](
    attempt: Callable[[], Awaitable[R]], release: Callable[[], Awaitable[int]], request: BuyerSeats
) -> R:
    """Refuse a request larger than a limit on its own before any write, then `attempt`; an
    expired hold never blocks a sale: before a refusal for want of seats (or of the buyer's
    allowance) is final, expired holds are released (`release`) and it is attempted again."""
    check_request_limits(request)
    try:
        return await attempt()
    except (SoldOut, ItemsShort, BuyerLimit):
        if not await release():
            raise
    return await attempt()


class SweepsAndRecounts(ABC):
    """A booking store's sweep of expired holds and its recount: the same on every backend,
    around the backend's own steps."""

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self._release_expired(now, event_id, tier)
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        """Without `fix`, a read of one snapshot that writes nothing (an observer must not
        compete with what it watches); with it, expired holds are released first, then the
        drifted counters rebuilt in one transaction."""
        if not fix:
            return await self._read_drifts()
        await self.release_expired(now)
        return await self._repair_drifts()

    @abstractmethod
    async def _release_expired(self, now: datetime, event_id: str | None, tier: str | None) -> int:
        """Release the expired holds (of one event or tier); how many were released."""

    @abstractmethod
    async def _read_drifts(self) -> list[Drift]: ...

    @abstractmethod
    async def _repair_drifts(self) -> list[Drift]:
        """The drifts found, with their counters rebuilt, in one transaction."""


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


def refusal(tier: Tier | None) -> Refused:
    """Why a reserve that changed nothing was refused, from a fresh read of its tier."""
    if tier is None:
        return NoSuchTier()
    if not tier.on_sale:
        return NotOnSale()
    return SoldOut(available=max(0, tier.capacity - tier.active))


class Reserving(SweepsAndRecounts):
    """`reserve` as every backend runs it around its own atomic steps: `_reserve_alone` (one
    booking) and `_reserve_batch` (several of one tier, or None when they do not fit).

    A request larger than a limit on its own is refused before any write. An expired hold
    never blocks a sale: before a refusal for want of seats (or of the buyer's allowance) is
    final, the tier's expired holds are released and the step is tried once more. Requests
    without a per-buyer limit go through the tier's batcher (group commit); the others alone,
    because their buyer's count is a guard of its own. (The release is the store's own
    `release_expired`, hence the base class.)"""

    batch_size = 1
    """The most requests in one batch; 1 turns batching off."""
    batches_in_flight = 1
    """Batches of one tier running at once in this process."""
    fallback_in_parallel = False
    """Whether the requests of a batch that did not fit run alone concurrently."""
    _batcher: ReserveBatcher | None = None

    async def reserve(self, request: ReserveRequest) -> Reservation:
        release = lambda: self.release_expired(request.now, request.event_id, request.tier)  # noqa: E731
        return await releasing_expired(lambda: self._reserve_once(request), release, request)

    async def _reserve_once(self, request: ReserveRequest) -> Reservation:
        if request.limited or self.batch_size <= 1:
            return await self._reserve_alone(request)
        if self._batcher is None:
            self._batcher = ReserveBatcher(
                self._reserve_batch,
                self._reserve_alone,
                max_size=self.batch_size,
                in_flight=self.batches_in_flight,
                fallback_in_parallel=self.fallback_in_parallel,
            )
        return await self._batcher.reserve(request)

    async def _reserve_alone(self, request: ReserveRequest) -> Reservation:
        raise NotImplementedError

    async def _reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        raise NotImplementedError


def booking_values(request: ReserveRequest) -> dict[str, Any]:
    """The columns of the booking `request` makes, but its unit price (read from the tier)."""
    return sale_values(request) | {
        "id": request.booking_id,
        "ticket_number": request.ticket_number,
        "tier": request.tier,
        "quantity": request.quantity,
        "currency": "USD",
        "order_id": None,
    }


def sale_values(request: ReserveRequest | OrderRequest) -> dict[str, Any]:
    """The columns a new booking and a new order share."""
    return {
        "event_id": request.event_id,
        "owner_id": request.owner_id,
        "status": "pending" if request.hold_until else "confirmed",
        "expires_at": request.hold_until,
        "partner_id": request.partner_id,
        "external_ref": request.external_ref,
        "idempotency_key": request.storage_key,
        "request_hash": request.request_hash,
        "version": 1,
        "created_at": request.now,
        "updated_at": request.now,
    }


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


@dataclass(frozen=True, slots=True)
class Seats:
    """What the bookings of one tier or one buyer hold."""

    active: int = 0
    pending: int = 0


type Tally = Mapping[tuple[str, str], Seats]
"""Seats held by bookings that hold seats, per (event, tier) or per (event, owner)."""


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


def search_words(text: str) -> list[str]:
    """The words of a full-text query: letters and digits only, so nothing is syntax."""
    return "".join(c if c.isalnum() else " " for c in text).split()
