"""A mail row → the message that goes out: Jinja2 templates (a text and an HTML part, HTML
autoescaped), QR codes inline, an .ics attached (RFC 5545).

The QR codes are the tickets (one per seat): each encodes the seat's signed JWS (see
modules/checkin), captioned `<ticket number>/<seat>`. A message made before tickets were
signed has no `tickets` param: its codes encode the caption alone, as they did then.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import segno
from icalendar import Calendar
from icalendar import Event as VEvent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.storage.records import Mail

TEMPLATES = Path(__file__).parent / "templates"
SUBJECTS = {
    "booking_confirmed": "Your tickets for {event_name}",
    "order_receipt": "Your order for {event_name}: receipt and tickets",
    "booking_cancelled": "Booking cancelled: {event_name}",
    "event_cancelled": "Cancelled: {event_name}",
    "password_reset": "Reset your TicketBoss password",
    "verify_email": "Your TicketBoss code: {code}",
    "email_changed": "Your TicketBoss address was changed",
    "waitlist_offered": "Seats are waiting for you: {event_name}",
}
WITH_TICKETS = ("booking_confirmed", "order_receipt")
MAX_QR_CODES = 50
"""Inline images per message at most (a booking has far fewer seats)."""

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


def when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%A %d %B %Y, %H:%M %Z")


environment.globals["money"] = money
environment.filters["when"] = when


def domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "ticketboss.localhost"


def message_id(mail: Mail, sender: str) -> str:
    """The same on every attempt: a receiver that sees it twice keeps one."""
    return f"<{mail.id}@{domain_of(sender)}>"


def seats(lines: list[dict[str, Any]]) -> list[str]:
    return [f"{ln['ticket_number']}/{i}" for ln in lines for i in range(1, ln["quantity"] + 1)]


def qr_png(payload: str) -> bytes:
    """A fixed mask: choosing the best of eight was 80% of a mail's CPU (17 of 22 ms for a
    signed ticket), and any mask scans; the best one only avoids rare patterns in the data."""
    out = io.BytesIO()
    segno.make(payload, error="m", mask=0).save(out, kind="png", scale=5, border=2)
    return out.getvalue()


def calendar(mail: Mail, sender: str) -> bytes:
    """One VEVENT whose UID names the event and the booking (or order): a message sent again
    updates the same calendar entry instead of adding one."""
    p = mail.params
    cal = Calendar()
    cal.add("prodid", "-//TicketBoss//Tickets//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    entry = VEvent()
    entry.add("uid", f"{p['event_id']}.{p['subject_id']}@{domain_of(sender)}")
    entry.add("dtstamp", datetime.fromisoformat(p["occurred_at"]))
    start = datetime.fromisoformat(p["starts_at"])
    entry.add("dtstart", start)
    entry.add(
        "dtend",
        datetime.fromisoformat(p["ends_at"]) if p["ends_at"] else start + timedelta(hours=2),
    )
    entry.add("summary", p["event_name"])
    entry.add("location", p["venue"])
    cal.add_component(entry)
    ical: bytes = cal.to_ical()
    return ical


def render(mail: Mail, sender: str) -> EmailMessage:
    p = mail.params
    lines: list[dict[str, Any]] = p.get("lines", [])
    priced = mail.template in WITH_TICKETS
    total = (
        money(sum(ln["unit_price_cents"] * ln["quantity"] for ln in lines), lines[0]["currency"])
        if priced and lines
        else None
    )
    codes: list[dict[str, str]] = p.get("tickets") or [
        {"label": label, "qr": label} for label in seats(lines)
    ]
    shown = codes[:MAX_QR_CODES] if priced else []
    qrs = [{"cid": f"seat{i}.{mail.id}", **code} for i, code in enumerate(shown)]
    subject = SUBJECTS[mail.template].format(**p)
    context = {**p, "subject": subject, "total": total, "qrs": qrs}
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = mail.to
    message["Message-ID"] = message_id(mail, sender)
    message["Date"] = format_datetime(mail.created_at)
    message.set_content(environment.get_template(f"{mail.template}.txt").render(context))
    message.add_alternative(
        environment.get_template(f"{mail.template}.html").render(context), subtype="html"
    )
    if qrs:
        html = message.get_body(preferencelist=("html",))
        assert isinstance(html, EmailMessage)
        for qr in qrs:
            html.add_related(
                qr_png(qr["qr"]), maintype="image", subtype="png", cid=f"<{qr['cid']}>"
            )
        message.add_attachment(
            calendar(mail, sender),
            maintype="text",
            subtype="calendar",
            filename="event.ics",
            params={"method": "PUBLISH"},
        )
    return message
