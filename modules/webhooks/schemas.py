from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints, field_validator

from core.schemas import CamelModel, InputModel
from core.storage.records import Delivery, DeliveryStatus, Webhook

FailureCategory = Literal[
    "dns_error",
    "address_refused",
    "connect_timeout",
    "connection_refused",
    "connect_error",
    "tls_error",
    "timeout",
    "protocol_error",
    "network_error",
    "http_status",
]
"""Why an attempt failed, as partners see it: a category, never the connection's own text."""
FAILURE_CATEGORIES: frozenset[str] = frozenset(get_args(FailureCategory))


def failure_category_of(stored: str | None) -> FailureCategory | None:
    """A stored error as its category (records written before categories kept raw text)."""
    if stored is None or stored in FAILURE_CATEGORIES:
        return stored  # type: ignore[return-value]
    if stored.startswith("HTTP "):
        return "http_status"
    return "timeout" if stored == "timed out" else "network_error"


CHANGE_TYPES: tuple[str, ...] = (
    "booking.created",
    "booking.confirmed",
    "booking.cancelled",
    "booking.expired",
    "order.created",
    "order.confirmed",
    "order.cancelled",
    "order.expired",
    "event.created",
    "event.updated",
    "event.published",
    "event.cancelled",
    "event.completed",
    "event.deleted",
    "waitlist.offered",
    "waitlist.expired",
)
"""The change types the change log records (core/storage/rules.py), which webhooks receive."""
EVENT_FILTERS = frozenset({"*", *CHANGE_TYPES, *{f"{t.split('.')[0]}.*" for t in CHANGE_TYPES}})

Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048),
    Field(
        description="An absolute https:// URL without credentials or #fragment, whose host "
        "resolves only to public addresses; checked when saved (422 `WEBHOOK_URL_*` otherwise) "
        "and before every delivery",
        examples=["https://hooks.example.com/ticketboss"],
    ),
]
EventFilter = Annotated[str, Field(json_schema_extra={"enum": sorted(EVENT_FILTERS)})]
Events = Annotated[list[EventFilter], Field(min_length=1, max_length=len(EVENT_FILTERS))]


def _known_events(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    unknown = [e for e in events if e not in EVENT_FILTERS]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}: use {', '.join(CHANGE_TYPES)}, "
            "`<subject>.*` or `*`"
        )
    return list(dict.fromkeys(events))


class WebhookCreate(InputModel):
    url: Url
    events: Events
    description: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str] | None:
        return _known_events(events)


class WebhookPatch(InputModel):
    url: Url | None = None
    events: Events | None = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return _known_events(events)


class WebhookOut(CamelModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls(
            id=webhook.id,
            url=webhook.url,
            events=list(webhook.events),
            description=webhook.description,
            enabled=webhook.enabled,
            disabled_reason=webhook.disabled_reason,
            failing_since=webhook.failing_since,
            created_at=webhook.created_at,
            updated_at=webhook.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str
    """Shown once, here: keep it to verify signatures (`whsec_…`, Standard Webhooks)."""

    @classmethod
    def with_secret(cls, webhook: Webhook) -> WebhookWithSecret:
        return cls(**WebhookOut.of(webhook).model_dump(), secret=webhook.secret)


class DeliveryOut(CamelModel):
    id: str
    """The `webhook-id` header of every attempt."""
    type: str
    change_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: FailureCategory | None = Field(
        description="Why the last attempt failed: `http_status` (see lastStatusCode), "
        "`dns_error`, `address_refused` (not a public address), `connect_timeout`, "
        "`connection_refused`, `connect_error`, `tls_error`, `timeout`, `protocol_error`, "
        "`network_error`"
    )
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    """When the next attempt is due (pending deliveries only)."""
    retry_until: datetime
    created_at: datetime

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            type=delivery.type,
            change_id=delivery.change_id,
            status=delivery.status,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_latency_ms=delivery.last_latency_ms,
            last_error=failure_category_of(delivery.last_error),
            last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            retry_until=delivery.retry_until,
            created_at=delivery.created_at,
        )
