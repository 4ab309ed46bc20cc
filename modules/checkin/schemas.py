from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from core.inputs import DateTimeText
from core.schemas import CamelModel, InputModel
from core.storage.records import CheckinList, Scanner, ScanResult, ScanType
from modules.events.schemas import TierCode

TicketStatus = Literal["valid", "revoked", "used"]
Nonce = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Unique per scan of this scanner: a scan sent again with the same nonce "
        "gets the first answer again, and changes nothing",
    ),
]
Qr = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="The ticket's QR payload as scanned (a compact JWS); anything else is "
        "answered `unknown`",
    ),
]
ScannedAt = Annotated[
    DateTimeText,
    Field(description="When the ticket was scanned; not more than 5 minutes ahead of the server"),
]
MAX_BATCH = 500


def _unique(tiers: list[str] | None) -> list[str] | None:
    if tiers is not None and len(tiers) != len(set(tiers)):
        raise ValueError("tier codes must be unique")
    return tiers


class SignedTicketOut(CamelModel):
    id: str
    status: TicketStatus
    qr: str
    tier: str
    seat: int
    booking_id: str
    ticket_number: str
    event_id: str


class Jwk(CamelModel):
    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    alg: Literal["EdDSA"] = "EdDSA"
    use: Literal["sig"] = "sig"
    kid: str
    x: str


class JwkSet(CamelModel):
    """RFC 7517 JWK set: every key that still verifies; the last one signs new tickets."""

    keys: list[Jwk]


class CheckinListCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    tiers: list[TierCode] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="The tiers this list admits (unknown codes: 422); all tiers when absent",
    )
    opens_at: DateTimeText | None = Field(
        default=None, description="Scans before this time are answered `not_yet_valid`"
    )

    _tiers = field_validator("tiers")(_unique)


class CheckinListOut(CamelModel):
    id: str
    event_id: str
    name: str
    tiers: list[str] | None
    """None: every tier."""
    opens_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, checkin_list: CheckinList) -> CheckinListOut:
        return cls(
            id=checkin_list.id,
            event_id=checkin_list.event_id,
            name=checkin_list.name,
            tiers=list(checkin_list.tiers) or None,
            opens_at=checkin_list.opens_at,
            created_at=checkin_list.created_at,
        )


class ScannerCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)


class ScannerOut(CamelModel):
    id: str
    event_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, scanner: Scanner) -> ScannerOut:
        return cls(
            id=scanner.id,
            event_id=scanner.event_id,
            name=scanner.name,
            created_at=scanner.created_at,
            revoked_at=scanner.revoked_at,
        )


class ScannerWithToken(ScannerOut):
    token: str = Field(
        description="Shown once: the device sends it as `Authorization: Bearer <token>`; it "
        "admits this event's check-in routes only"
    )


class RedeemIn(InputModel):
    list_id: str = Field(
        alias="list", min_length=1, max_length=32, description="The check-in list's id"
    )
    qr: Qr
    nonce: Nonce
    type: ScanType = "entry"
    scanned_at: ScannedAt | None = None


class ScanOut(CamelModel):
    result: ScanResult
    ticket: dict[str, Any] | None = Field(
        description="The ticket the QR names (id, eventId, tier, bookingId, ticketNumber, "
        "seat); null when the QR is not a ticket of this event"
    )
    scanned_at: datetime
    replayed: bool = Field(description="This nonce was answered before: the same answer again")


class OfflineScan(InputModel):
    qr: Qr
    nonce: Nonce
    type: ScanType = "entry"
    scanned_at: ScannedAt


class BatchIn(InputModel):
    list_id: str = Field(alias="list", min_length=1, max_length=32)
    scans: list[OfflineScan] = Field(min_length=1, max_length=MAX_BATCH)

    @field_validator("scans")
    @classmethod
    def _unique_nonces(cls, scans: list[OfflineScan]) -> list[OfflineScan]:
        if len({s.nonce for s in scans}) != len(scans):
            raise ValueError("each scan of a batch needs its own nonce")
        return scans


class BatchScanOut(ScanOut):
    nonce: str


class BatchOut(CamelModel):
    results: list[BatchScanOut] = Field(description="In the order of the scans' times")
    admitted: int = Field(description="Entries (and exits) recorded by this batch")
    duplicates: list[str] = Field(
        description="Nonces of scans of a ticket already let in (by another scan, online or in "
        "this batch): counted once, reported here"
    )


class ExportTicket(CamelModel):
    id: str
    tier: str
    status: TicketStatus
    """`used`: let in through this list already."""


class ExportOut(CamelModel):
    checkin_list: CheckinListOut = Field(alias="list")
    keys: JwkSet
    tickets: list[ExportTicket]
    revoked: list[str] = Field(description="Ids of the event's revoked tickets")
    generated_at: datetime


class TierDoor(CamelModel):
    tier: str
    expected: int
    checked_in: int


class ListDoor(CamelModel):
    list_id: str
    name: str
    expected: int
    checked_in: int


class DoorStats(CamelModel):
    event_id: str
    tiers: list[TierDoor]
    lists: list[ListDoor]
    expected: int
    checked_in: int
    as_of: datetime
