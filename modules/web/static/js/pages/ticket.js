// A printable ticket: the event, the seats, the ticket number and one QR code per seat, each the
// seat's signed ticket (a JWS the door's scanners verify); the print stylesheet in app.css hides
// everything else.

import qrcode from "../../vendor/qrcode-generator/qrcode.js";
import { currentUser, get } from "../api.js";
import { h, money, notice, replace, svg, timeEl } from "../dom.js";

/** An SVG QR code of `text`, drawn from the module matrix (no markup strings, no inline style). */
export function qrSvg(text, label) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  let d = "";
  for (let row = 0; row < n; row += 1) {
    for (let col = 0; col < n; col += 1) {
      if (qr.isDark(row, col)) d += `M${col} ${row}h1v1h-1z`;
    }
  }
  return svg(
    "svg",
    {
      class: "qr",
      viewBox: `${-quiet} ${-quiet} ${n + 2 * quiet} ${n + 2 * quiet}`,
      role: "img",
      "aria-label": label,
      "shape-rendering": "crispEdges",
      "data-modules": n,
    },
    svg("rect", { x: -quiet, y: -quiet, width: n + 2 * quiet, height: n + 2 * quiet, fill: "#fff" }),
    svg("path", { d, fill: "#000" }),
  );
}

export async function page(ctx) {
  const [bookingId] = ctx.params;
  const { data: booking } = await get(`/bookings/${encodeURIComponent(bookingId)}`, { signal: ctx.signal });
  let event = null;
  try {
    ({ data: event } = await get(`/events/${encodeURIComponent(booking.eventId)}`, { signal: ctx.signal }));
  } catch (error) {
    if (error.name === "AbortError") throw error;
  }
  let tickets = [];
  try {
    ({ data: tickets } = await get(`/bookings/${encodeURIComponent(bookingId)}/tickets`, { signal: ctx.signal }));
  } catch (error) {
    if (error.name === "AbortError") throw error;
  }
  const tier = event?.tiers.find((t) => t.code === booking.tier);
  document.title = `Ticket ${booking.ticketNumber} · TicketBoss`;
  const valid = booking.status === "confirmed";
  const print = h("button", { type: "button", class: "primary" }, "Print ticket");
  print.addEventListener("click", () => window.print());
  replace(
    ctx.root,
    h("h1", { class: "screen-only" }, "Your ticket"),
    valid ? null : notice(`This booking is ${booking.status}: it is not a valid ticket.`, "error"),
    h(
      "article",
      { class: ["ticket", valid ? "" : "void"], "aria-labelledby": "ticket-event" },
      h(
        "div",
        { class: "ticket-main" },
        h("p", { class: "ticket-brand" }, "TicketBoss"),
        h("h2", { id: "ticket-event" }, event?.name ?? booking.eventId),
        event ? h("p", {}, timeEl(event.startsAt)) : null,
        event ? h("p", {}, event.venue) : null,
        h(
          "dl",
          {},
          h("dt", {}, "Tier"),
          h("dd", {}, tier ? `${tier.name} (${tier.code})` : booking.tier),
          h("dt", {}, "Seats"),
          h("dd", {}, String(booking.quantity)),
          h("dt", {}, "Paid"),
          h("dd", {}, money(booking.totalCents, booking.currency)),
          h("dt", {}, "Holder"),
          h("dd", {}, currentUser()?.name ?? ""),
          h("dt", {}, "Status"),
          h("dd", {}, booking.status),
        ),
      ),
      h(
        "div",
        { class: "ticket-code" },
        tickets.length
          ? tickets.map((t) =>
              h(
                "figure",
                { class: ["seat", t.status] },
                qrSvg(t.qr, `QR code of ticket ${booking.ticketNumber}/${t.seat}`),
                h("figcaption", {}, `Seat ${t.seat} · ${t.status}`),
              ),
            )
          : qrSvg(booking.ticketNumber, `QR code of ticket number ${booking.ticketNumber}`),
        h("p", { class: "ticket-number" }, booking.ticketNumber),
      ),
    ),
    h("div", { class: "actions screen-only" }, print, h("a", { href: "/bookings" }, "Back to my bookings")),
  );
}
