"""Prometheus metrics shared by the app and the storage backends."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUEST_LATENCY = Histogram(
    "ticketboss_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BOOKINGS = Counter("ticketboss_bookings_total", "Booking attempts by outcome", ["outcome"])
CONFLICTS_RETRIED = Counter(
    "ticketboss_storage_conflicts_retried_total",
    "Transactions retried after a conflict",
    ["backend"],
)
RESERVE_BATCH_SIZE = Histogram(
    "ticketboss_reserve_batch_size",
    "Bookings written per reserve statement or transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
HOLDS_EXPIRED = Counter("ticketboss_holds_expired_total", "Pending holds released after expiry")


def render(multiprocess_dir: str | None) -> bytes:
    """The exposition text: this process's metrics, or every worker's when they share a
    multiprocess directory (`ticketboss serve --workers N` sets one up)."""
    if not multiprocess_dir:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
