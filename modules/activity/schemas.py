from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from core.schemas import CamelModel
from core.storage.records import Change


class ActorOut(BaseModel):
    type: str
    id: str


class ChangeOut(CamelModel):
    id: str
    type: str
    occurred_at: datetime
    actor: ActorOut
    event_id: str
    booking_id: str | None = None
    order_id: str | None = None
    seq: int
    data: dict[str, Any]

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(
            id=change.id,
            type=change.type,
            occurred_at=change.occurred_at,
            actor=ActorOut(type=change.actor.kind, id=change.actor.id),
            event_id=change.event_id,
            booking_id=change.booking_id,
            order_id=change.order_id,
            seq=change.seq,
            data=camel(change.data),
        )


def camel(value: Any) -> Any:
    """A change's data as the API spells it: camelCase keys, at every depth."""
    if isinstance(value, dict):
        return {to_camel(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value
