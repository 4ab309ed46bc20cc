from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from core.inputs import DateTimeText, StrictCount, StrictFlag
from core.schemas import CamelModel, InputModel
from core.storage.records import AccessCode
from modules.events.schemas import TierCode, TierOut

CodeText = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{3,64}$", examples=["PRESALE24"])]
MaxUses = Annotated[StrictCount, Field(ge=1, le=100_000)]
Percent = Annotated[StrictCount, Field(ge=0, le=100)]
RESERVE_RULE = (
    "Hold maxUses seats of its one tier back for the code's holders (one per use) while it "
    "is enabled and valid"
)


def _window(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValueError("validUntil must be after validFrom")


class CodeCreate(InputModel):
    code: CodeText
    max_uses: MaxUses
    tiers: list[TierCode] = Field(min_length=1, max_length=20)
    valid_from: DateTimeText | None = None
    valid_until: DateTimeText | None = None
    reserve_seats: StrictFlag = Field(default=False, description=RESERVE_RULE)
    discount_percent: Percent = 0

    @field_validator("tiers")
    @classmethod
    def _unique(cls, tiers: list[str]) -> list[str]:
        if len(tiers) != len(set(tiers)):
            raise ValueError("tier codes must be unique")
        return tiers

    @model_validator(mode="after")
    def _consistent(self) -> CodeCreate:
        _window(self.valid_from, self.valid_until)
        if self.reserve_seats and len(self.tiers) != 1:
            raise ValueError("a code that reserves seats unlocks exactly one tier")
        return self


class CodePatchIn(InputModel):
    max_uses: MaxUses | None = None
    valid_from: DateTimeText | None = None
    valid_until: DateTimeText | None = None
    discount_percent: Percent | None = None
    enabled: StrictFlag | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CodePatchIn:
        _window(self.valid_from, self.valid_until)
        return self


class CodeOut(CamelModel):
    id: str
    event_id: str
    code: str
    max_uses: int
    uses: int
    tiers: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    reserve_seats: bool
    held_seats: int = Field(description="Seats this code holds back from sale now")
    discount_percent: int
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, code: AccessCode) -> CodeOut:
        return cls(
            id=code.id,
            event_id=code.event_id,
            code=code.code,
            max_uses=code.max_uses,
            uses=code.uses,
            tiers=list(code.tiers),
            valid_from=code.valid_from,
            valid_until=code.valid_until,
            reserve_seats=code.reserve_seats,
            held_seats=code.held,
            discount_percent=code.discount_percent,
            enabled=code.enabled,
            created_at=code.created_at,
            updated_at=code.updated_at,
        )


class CodeCheck(InputModel):
    access_code: str = Field(min_length=1, max_length=64, examples=["PRESALE24"])


class CodeTierOut(TierOut):
    unit_price_cents: int = Field(description="The price of one seat with the code's discount")


class CodeCheckOut(CamelModel):
    """What a usable code unlocks now: its tiers (hidden ones too) as its holder may book them."""

    code: str
    discount_percent: int
    valid_until: datetime | None
    tiers: list[CodeTierOut]
