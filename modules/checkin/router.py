"""Signed tickets and check-in (PRODUCT §14). The organizer's routes take an account token;
the door's (`/checkin/…`, a list's export) take a scanner's device token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from core.deps import CurrentPrincipal, app_context, optional_principal, require_role
from core.openapi import authenticates
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from core.security import Principal
from core.storage.records import ScanAnswer, Scanner, SigningKey
from modules.checkin import exports, signing
from modules.checkin.schemas import (
    BatchIn,
    BatchOut,
    BatchScanOut,
    CheckinListCreate,
    CheckinListOut,
    DoorStats,
    ExportOut,
    Jwk,
    JwkSet,
    RedeemIn,
    ScannerCreate,
    ScannerOut,
    ScannerWithToken,
    ScanOut,
    SignedTicketOut,
)
from modules.checkin.service import CheckinService, ScanIn, Ticket

router = APIRouter(tags=["check-in"], route_class=ApiRoute)


async def checkin_service(request: Request) -> CheckinService:
    return CheckinService(app_context(request))


Checkin = Annotated[CheckinService, Depends(checkin_service)]
Organizer = Annotated[Principal, Depends(require_role("organizer", "admin"))]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


@authenticates("required")
async def current_scanner(request: Request) -> Scanner:
    """The scanner whose device token is the bearer token (401 for any other token)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    return await CheckinService(app_context(request)).scanner(token or None)


Device = Annotated[Scanner, Depends(current_scanner)]


def _tickets(tickets: list[Ticket]) -> JSONResponse:
    return ok(
        [
            SignedTicketOut(
                id=t.id,
                status=t.status,
                qr=t.qr,
                tier=t.booking.tier,
                seat=t.seat,
                booking_id=t.booking.id,
                ticket_number=t.booking.ticket_number,
                event_id=t.booking.event_id,
            )
            for t in tickets
        ]
    )


def _jwks(keys: list[SigningKey]) -> JwkSet:
    return JwkSet(keys=[Jwk(**signing.jwk(k)) for k in keys])


def _scan_out(answer: ScanAnswer) -> ScanOut:
    return ScanOut(
        result=answer.result,
        ticket=answer.ticket,
        scanned_at=answer.scanned_at,
        replayed=answer.replayed,
    )


@router.get("/bookings/{booking_id}/tickets", response_model=Envelope[list[SignedTicketOut]])
async def booking_tickets(
    booking_id: str, principal: CurrentPrincipal, checkin: Checkin
) -> JSONResponse:
    """One ticket per seat of a confirmed booking (revoked once it is cancelled; none for a
    hold): `qr` is a compact JWS (EdDSA, Ed25519) with claims tid, eid, tier, iat."""
    return _tickets(await checkin.booking_tickets(principal, booking_id))


@router.get("/orders/{order_id}/tickets", response_model=Envelope[list[SignedTicketOut]])
async def order_tickets(
    order_id: str, principal: CurrentPrincipal, checkin: Checkin
) -> JSONResponse:
    """The tickets of every line of the order."""
    return _tickets(await checkin.order_tickets(principal, order_id))


@router.get("/events/{event_id}/checkin/key", response_model=Envelope[JwkSet])
async def public_keys(event_id: str, principal: MaybePrincipal, checkin: Checkin) -> JSONResponse:
    """The event's ticket-verifying public keys (a JWK set; the last one signs new tickets),
    so a scanner verifies QR codes offline."""
    return ok(_jwks(await checkin.public_keys(principal, event_id)))


@router.post("/events/{event_id}/checkin/keys", status_code=201, response_model=Envelope[JwkSet])
async def rotate_key(event_id: str, principal: Organizer, checkin: Checkin) -> JSONResponse:
    """A new signing key signs every ticket from now on; tickets signed before still verify
    until their key is removed."""
    return ok(_jwks(await checkin.rotate(principal, event_id)), status=201)


@router.delete("/events/{event_id}/checkin/keys/{kid}", status_code=204)
async def remove_key(event_id: str, kid: str, principal: Organizer, checkin: Checkin) -> Response:
    """QR codes signed with it scan as `unknown` from now on (409 for the last key)."""
    await checkin.remove_key(principal, event_id, kid)
    return Response(status_code=204)


@router.post(
    "/events/{event_id}/checkin-lists",
    status_code=201,
    response_model=Envelope[CheckinListOut],
)
async def create_list(
    event_id: str, body: CheckinListCreate, principal: Organizer, checkin: Checkin
) -> JSONResponse:
    created = await checkin.create_list(principal, event_id, body.name, body.tiers, body.opens_at)
    return ok(CheckinListOut.of(created), status=201)


@router.get("/events/{event_id}/checkin-lists", response_model=Envelope[list[CheckinListOut]])
async def list_lists(event_id: str, principal: Organizer, checkin: Checkin) -> JSONResponse:
    return ok([CheckinListOut.of(x) for x in await checkin.lists(principal, event_id)])


@router.post(
    "/events/{event_id}/scanners", status_code=201, response_model=Envelope[ScannerWithToken]
)
async def create_scanner(
    event_id: str, body: ScannerCreate, principal: Organizer, checkin: Checkin
) -> JSONResponse:
    """A device token for this event's check-in only, shown once (stored as a hash)."""
    scanner, token = await checkin.create_scanner(principal, event_id, body.name)
    out = ScannerWithToken(**ScannerOut.of(scanner).model_dump(), token=token)
    return ok(out, status=201)


@router.get("/events/{event_id}/scanners", response_model=Envelope[list[ScannerOut]])
async def list_scanners(event_id: str, principal: Organizer, checkin: Checkin) -> JSONResponse:
    return ok([ScannerOut.of(s) for s in await checkin.scanners(principal, event_id)])


@router.delete("/events/{event_id}/scanners/{scanner_id}", status_code=204)
async def revoke_scanner(
    event_id: str, scanner_id: str, principal: Organizer, checkin: Checkin
) -> Response:
    """The device's token admits nothing from now on."""
    await checkin.revoke_scanner(principal, event_id, scanner_id)
    return Response(status_code=204)


@router.get("/events/{event_id}/checkin/stats", response_model=Envelope[DoorStats])
async def door_stats(event_id: str, principal: Organizer, checkin: Checkin) -> JSONResponse:
    """Checked in / expected (confirmed seats) per tier and per list, now."""
    return ok(DoorStats.model_validate(await checkin.door(principal, event_id)))


def _csv(name: str, body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/events/{event_id}/attendees.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per ticket"}},
)
async def attendees_csv(event_id: str, principal: Organizer, checkin: Checkin) -> StreamingResponse:
    """Every ticket (valid, used, revoked) with its buyer and first entry, streamed."""
    event = await checkin.managed_event(principal, event_id)
    return _csv(f"attendees-{event.id}.csv", exports.attendees(checkin, event.id))


@router.get(
    "/events/{event_id}/sales.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per booking"}},
)
async def sales_csv(event_id: str, principal: Organizer, checkin: Checkin) -> StreamingResponse:
    """Every booking of the event with its price and status, streamed."""
    event = await checkin.managed_event(principal, event_id)
    return _csv(f"sales-{event.id}.csv", exports.sales(checkin, event.id))


@router.get("/checkin/lists", response_model=Envelope[list[CheckinListOut]])
async def scanner_lists(scanner: Device, checkin: Checkin) -> JSONResponse:
    """The check-in lists of the scanner's event."""
    found = await checkin.storage.checkin.lists(scanner.event_id)
    return ok([CheckinListOut.of(x) for x in found])


@router.post("/checkin/redeem", response_model=Envelope[ScanOut])
async def redeem(body: RedeemIn, scanner: Device, checkin: Checkin) -> JSONResponse:
    """Let a ticket in (or out): 200 with the result whatever it is. Of concurrent scans of
    one ticket exactly one entry is `ok`; the same nonce again gets the same answer."""
    scan = ScanIn(body.qr, body.nonce, body.type, body.scanned_at)
    return ok(_scan_out(await checkin.redeem(scanner, body.list_id, scan)))


@router.post("/checkin/batch", response_model=Envelope[BatchOut])
async def batch(body: BatchIn, scanner: Device, checkin: Checkin) -> JSONResponse:
    """Scans made offline, with their own times, answered in time order: a ticket scanned
    twice is let in once and its later scans reported in `duplicates`."""
    scans = [ScanIn(s.qr, s.nonce, s.type, s.scanned_at) for s in body.scans]
    answered = await checkin.batch(scanner, body.list_id, scans)
    results = [
        BatchScanOut(nonce=scan.nonce, **_scan_out(answer).model_dump())
        for scan, answer in answered
    ]
    return ok(
        BatchOut(
            results=results,
            admitted=sum(1 for _, a in answered if a.result == "ok" and not a.replayed),
            duplicates=[s.nonce for s, a in answered if a.result == "already_used"],
        )
    )


@router.get("/checkin-lists/{list_id}/export", response_model=Envelope[ExportOut])
async def export(list_id: str, scanner: Device, checkin: Checkin) -> JSONResponse:
    """What a scanner needs offline: the public keys, the list's tickets (with those let in
    already) and the event's revoked tickets."""
    data = await checkin.export(scanner, list_id)
    out = ExportOut(
        checkin_list=CheckinListOut.of(data["list"]),
        keys=_jwks(data["keys"]),
        tickets=data["tickets"],
        revoked=data["revoked"],
        generated_at=data["generated_at"],
    )
    return ok(out)
