from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from core.inputs import DateTimeText, StrictCount, StrictFlag
from core.schemas import CamelModel, InputModel
from core.storage.records import Event, TierCount

TierCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", examples=["VIP", "GA"])]
PriceCents = Annotated[StrictCount, Field(ge=0, le=100_000_000)]
Capacity = Annotated[StrictCount, Field(ge=0, le=1_000_000)]


STARTS_AT_RULE = "In the future when the event is created (422 otherwise)"


HIDDEN_RULE = "Not listed to buyers, and sold only with an access code that unlocks it"
WAITLIST_RULE = "Whether buyers may join the tier's waiting list when it is sold out"


class TierIn(InputModel):
    code: TierCode
    name: str = Field(min_length=1, max_length=100)
    price_cents: PriceCents
    capacity: Capacity
    hidden: StrictFlag = Field(default=False, description=HIDDEN_RULE)
    waitlist_open: StrictFlag = Field(default=True, description=WAITLIST_RULE)


class TierPatchIn(InputModel):
    code: TierCode
    name: str | None = Field(default=None, min_length=1, max_length=100)
    price_cents: PriceCents | None = None
    capacity: Capacity | None = None
    hidden: StrictFlag | None = Field(default=None, description=HIDDEN_RULE)
    waitlist_open: StrictFlag | None = Field(default=None, description=WAITLIST_RULE)


def _unique_codes[T: (TierIn, TierPatchIn)](tiers: list[T] | None) -> list[T] | None:
    if tiers is not None:
        codes = [t.code for t in tiers]
        if len(codes) != len(set(codes)):
            raise ValueError("tier codes must be unique within an event")
    return tiers


def _not_null(schema: dict[str, Any]) -> None:
    """The document's side of `_required_fields_stay_set`: the type without its null."""
    schema.pop("default", None)
    for branch in schema.pop("anyOf", []):
        if branch.get("type") != "null":
            schema.update(branch)


def _omittable(**constraints: Any) -> Any:
    """A field that may be left out but not set to null."""
    return Field(default=None, json_schema_extra=_not_null, **constraints)


ADMIT_RATE_MAX = 1_000_000
SESSION_MIN, SESSION_MAX = 1, 86_400
OPENS_AT_RULE = "In the future when the waiting room is created (422 otherwise), before startsAt"


class QueueIn(InputModel):
    """A new waiting room: buyers join from now, get places drawn at random at `opensAt`,
    then are admitted `admitPerMinute` at a time, at most `maxActive` at once."""

    enabled: bool = True
    opens_at: DateTimeText = Field(description=OPENS_AT_RULE)
    admit_per_minute: StrictCount = Field(ge=1, le=ADMIT_RATE_MAX)
    max_active: StrictCount | None = Field(default=None, ge=1, le=ADMIT_RATE_MAX)
    session_seconds: StrictCount = Field(default=600, ge=SESSION_MIN, le=SESSION_MAX)


class QueuePatchIn(InputModel):
    """A change of the waiting room: omitted fields keep their value. `admitPerMinute: 0`
    pauses admission (at once); `maxActive: null` lifts the limit. Sent to an event without
    a waiting room, it creates one (then `opensAt` and `admitPerMinute` ≥ 1 are required)."""

    enabled: bool | None = _omittable()
    opens_at: DateTimeText | None = _omittable(description=OPENS_AT_RULE)
    admit_per_minute: StrictCount | None = _omittable(ge=0, le=ADMIT_RATE_MAX)
    max_active: StrictCount | None = Field(default=None, ge=1, le=ADMIT_RATE_MAX)
    session_seconds: StrictCount | None = _omittable(ge=SESSION_MIN, le=SESSION_MAX)

    @model_validator(mode="after")
    def _set_fields_stay_set(self) -> QueuePatchIn:
        for name in ("enabled", "opens_at", "admit_per_minute", "session_seconds"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class QueueOut(CamelModel):
    enabled: bool
    opens_at: datetime
    admit_per_minute: int
    max_active: int | None
    session_seconds: int


class EventCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    venue: str = Field(min_length=1, max_length=200)
    starts_at: DateTimeText = Field(description=STARTS_AT_RULE)
    ends_at: DateTimeText | None = Field(default=None, description="After startsAt (422 otherwise)")
    tiers: list[TierIn] = Field(min_length=1, max_length=20)
    max_per_user: StrictCount | None = Field(default=None, ge=1, le=100)
    queue: QueueIn | None = None

    _codes = field_validator("tiers")(_unique_codes)

    @model_validator(mode="after")
    def _ends_after_start(self) -> EventCreate:
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        return self


class EventPatch(InputModel):
    name: str | None = _omittable(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    venue: str | None = _omittable(min_length=1, max_length=200)
    starts_at: DateTimeText | None = _omittable()
    ends_at: DateTimeText | None = None
    max_per_user: StrictCount | None = Field(default=None, ge=1, le=100)
    tiers: list[TierPatchIn] | None = Field(default=None, max_length=20)
    queue: QueuePatchIn | None = _omittable()

    _codes = field_validator("tiers")(_unique_codes)

    @model_validator(mode="after")
    def _required_fields_stay_set(self) -> EventPatch:
        for name in ("name", "venue", "starts_at", "queue"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TierOut(CamelModel):
    code: str
    name: str
    price_cents: int
    currency: Literal["USD"] = "USD"
    capacity: int
    available: int
    hidden: bool = False
    waitlist_open: bool = True


class EventOut(CamelModel):
    id: str
    name: str
    description: str | None
    venue: str
    starts_at: datetime
    ends_at: datetime | None
    status: str
    max_per_user: int | None
    version: int
    organizer_id: str
    tiers: list[TierOut]
    queue: QueueOut | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls, event: Event, counts: list[TierCount] | None = None, *, staff: bool = True
    ) -> EventOut:
        """The event; `staff` (its organizer, an admin) also sees its hidden tiers."""
        available = {c.code: c.available for c in counts or []}
        return cls(
            id=event.id,
            name=event.name,
            description=event.description,
            venue=event.venue,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            status=event.status,
            max_per_user=event.max_per_user,
            version=event.version,
            organizer_id=event.owner_id,
            tiers=[
                TierOut(
                    code=t.code,
                    name=t.name,
                    price_cents=t.price_cents,
                    capacity=t.capacity,
                    available=available.get(t.code, max(0, t.free)),
                    hidden=t.hidden,
                    waitlist_open=t.waitlist_open,
                )
                for t in event.tiers
                if staff or not t.hidden
            ],
            queue=QueueOut.model_validate(event.queue) if event.queue else None,
            created_at=event.created_at,
            updated_at=event.updated_at,
        )


class TierAvailabilityOut(CamelModel):
    code: str
    capacity: int
    available: int
    pending: int
    confirmed: int
    blocked: int = Field(
        default=0, description="Seats offered to the waiting list or held for access codes"
    )


class AvailabilityOut(CamelModel):
    event_id: str
    tiers: list[TierAvailabilityOut]
    available: int
    as_of: datetime
