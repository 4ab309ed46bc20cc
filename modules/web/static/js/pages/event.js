// One event: tiers, prices, live availability, and booking as a hold → confirm.
//
// An attempt is one selection of seats. Its Idempotency-Key is made once, when the attempt
// starts, and sent again on every retry of it (automatic retries after a lost answer, and a
// second click on Book with the same selection): the server then answers with the same hold
// instead of booking twice. A new selection, or a definitive refusal, starts a new attempt.

import { ApiError, clockSkew, get, idempotent, newIdempotencyKey, supports } from "../api.js";
import { busy, countdown, errorBox, h, money, notice, replace, timeEl } from "../dom.js";
import { watchAvailability } from "../live.js";
import { waitingRoom } from "./waiting.js";

const MAX_PER_BOOKING = 10;

export async function page(ctx) {
  const [eventId] = ctx.params;
  const { data: event } = await get(`/events/${encodeURIComponent(eventId)}`, { signal: ctx.signal });
  document.title = `${event.name} · TicketBoss`;
  const user = ctx.user;
  const ordersSupported = user ? await supports("orders", "/orders?limit=1") : false;
  const startsAt = new Date(event.startsAt);
  const bookable = event.status === "published" && startsAt > new Date();
  // Buyers of a queued on-sale book once admitted (partners, organizers, admins need not).
  const queued = Boolean(event.queue?.enabled && bookable && user && user.role === "user");

  // --- tiers and the selection form -----------------------------------------------------------
  const currency = event.tiers[0]?.currency ?? "USD";
  const rows = new Map(); // code → { tier, input, cell }
  const tbody = h("tbody");
  for (const tier of event.tiers) {
    const id = `qty-${tier.code}`;
    const input = h("input", {
      id,
      type: "number",
      name: tier.code,
      min: 0,
      max: Math.min(MAX_PER_BOOKING, tier.available),
      step: 1,
      value: 0,
      inputmode: "numeric",
      disabled: !bookable || !user || queued,
    });
    const cell = h("td", { class: "num available", dataset: { tier: tier.code } }, availableText(tier.available));
    rows.set(tier.code, { tier, input, cell });
    tbody.append(
      h(
        "tr",
        {},
        h("th", { scope: "row" }, tier.name, h("span", { class: "code" }, ` ${tier.code}`)),
        h("td", { class: "num" }, money(tier.priceCents, tier.currency)),
        cell,
        h("td", { class: "num" }, h("label", { for: id, class: "visually-hidden" }, `Quantity of ${tier.name}`), input),
      ),
    );
  }
  if (event.tiers.length === 1) rows.values().next().value.input.value = 1;

  const total = h("p", { class: "total", "aria-live": "polite" });
  const formErrors = h("div");
  const bookButton = h("button", { type: "submit", class: "primary" }, "Book");
  const liveStatus = h("p", { class: "live-status" }, "Checking availability…");
  const form = h(
    "form",
    // novalidate: the API checks the quantity, and its refusal is shown in its own words.
    { class: "booking-form", "aria-labelledby": "tickets-title", noValidate: true },
    h("h2", { id: "tickets-title" }, "Tickets"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "tiers" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Tier"),
            h("th", { scope: "col", class: "num" }, "Price"),
            h("th", { scope: "col", class: "num" }, "Available"),
            h("th", { scope: "col", class: "num" }, "Quantity"),
          ),
        ),
        tbody,
      ),
    ),
    liveStatus,
    total,
    formErrors,
    bookingControls(),
  );

  function bookingControls() {
    if (!bookable) {
      return notice(
        event.status === "published" ? "Sales are closed: the event has started." : `Sales are closed: this event is ${event.status}.`,
      );
    }
    if (!user) {
      const next = encodeURIComponent(location.pathname);
      return h(
        "p",
        { class: "actions" },
        h("a", { class: "button primary", href: `/login?next=${next}` }, "Log in to book"),
        " or ",
        h("a", { href: `/register?next=${next}` }, "create an account"),
      );
    }
    return h(
      "div",
      { class: "actions" },
      bookButton,
      h(
        "small",
        { class: "hint" },
        ordersSupported
          ? "Seats in several tiers are booked together or not at all. They are held for you while you confirm."
          : "One tier per booking. Your seats are held for you while you confirm.",
      ),
    );
  }

  const holdPanel = h("section", { class: "hold", "aria-live": "polite", hidden: true });
  bookButton.disabled = queued;
  const room = queued
    ? waitingRoom(event, {
        signal: ctx.signal,
        onAdmitted: () => {
          for (const { input, tier } of rows.values()) input.disabled = tier.available <= 0;
          bookButton.disabled = false;
          form.scrollIntoView({ block: "start" });
          bookButton.focus();
        },
      })
    : null;

  replace(
    ctx.root,
    h("h1", {}, event.name),
    h("p", { class: "meta" }, timeEl(event.startsAt), " · ", event.venue, event.status !== "published" ? ` · ${event.status}` : ""),
    event.description ? h("p", { class: "description" }, event.description) : null,
    room?.element,
    form,
    holdPanel,
  );

  // --- live availability ------------------------------------------------------------------------
  const live = watchAvailability(
    event.id,
    (data) => {
      for (const t of data.tiers) {
        const row = rows.get(t.code);
        if (!row) continue;
        row.cell.textContent = availableText(t.available);
        row.input.max = String(Math.max(0, Math.min(MAX_PER_BOOKING, t.available)));
      }
      liveStatus.dataset.asOf = data.asOf;
      liveStatus.dataset.mode ||= "polling";
      showLiveStatus();
    },
    {
      onMode: (mode) => {
        liveStatus.dataset.mode = mode;
        if (liveStatus.dataset.asOf) showLiveStatus();
      },
    },
  );
  ctx.signal.addEventListener("abort", () => live.stop());
  function showLiveStatus() {
    const { mode, asOf } = liveStatus.dataset;
    liveStatus.textContent = `${modeText(mode)} · as of ${new Date(asOf).toLocaleTimeString()}`;
  }

  // --- selection, attempts ----------------------------------------------------------------------
  const selection = () =>
    [...rows.values()]
      .map(({ tier, input }) => ({ tier: tier.code, quantity: Number.parseInt(input.value, 10) || 0 }))
      .filter((item) => item.quantity > 0);

  const showTotal = () => {
    const items = selection();
    const seats = items.reduce((s, i) => s + i.quantity, 0);
    const cents = items.reduce((s, i) => s + i.quantity * rows.get(i.tier).tier.priceCents, 0);
    total.textContent = seats ? `Total: ${money(cents, currency)} for ${seats} seat${seats === 1 ? "" : "s"}` : "";
  };
  showTotal();

  let attempt = null; // { fingerprint, key }
  let hold = null; // what is held now
  let ticking = null;
  ctx.signal.addEventListener("abort", () => clearInterval(ticking));

  form.addEventListener("input", () => {
    attempt = null; // a different selection is a different attempt
    formErrors.replaceChildren();
    showTotal();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (bookButton.disabled) return;
    formErrors.replaceChildren();
    const items = selection();
    if (!items.length) {
      replace(formErrors, notice("Choose how many seats you want.", "error"));
      return;
    }
    if (items.length > 1 && !ordersSupported) {
      replace(formErrors, notice("This server books one tier at a time: choose seats in one tier.", "error"));
      return;
    }
    const fingerprint = JSON.stringify(items);
    if (!attempt || attempt.fingerprint !== fingerprint) {
      attempt = { fingerprint, key: newIdempotencyKey() };
    }
    const { key } = attempt;
    const admission = room?.token();
    const headers = admission ? { "Admission-Token": admission } : undefined;
    await busy(
      bookButton,
      async () => {
        try {
          const result =
            items.length === 1
              ? await idempotent(
                  "POST",
                  "/bookings",
                  { eventId: event.id, tier: items[0].tier, quantity: items[0].quantity, hold: true },
                  key,
                  { headers },
                )
              : await idempotent("POST", "/orders", { eventId: event.id, items, hold: true }, key, { headers });
          showHold(result, items.length === 1 ? "booking" : "order");
        } catch (error) {
          if (!(error instanceof ApiError) || !error.retryable) attempt = null;
          replace(formErrors, errorBox(error));
        } finally {
          live.now();
        }
      },
      "Booking…",
    );
  });

  // --- the hold: countdown, confirm, release ------------------------------------------------------
  function showHold(result, kind) {
    const data = result.data;
    const bookings = kind === "order" ? data.bookings ?? [] : [data];
    hold = {
      kind,
      id: data.id,
      bookings,
      totalCents: data.totalCents,
      currency: data.currency ?? currency,
      expiresAt: data.expiresAt ? Date.parse(data.expiresAt) - clockSkew(result.headers) : null,
    };
    if (data.status === "confirmed") {
      showConfirmed(data, kind);
      return;
    }
    if (data.status !== "pending") {
      attempt = null;
      replace(holdPanel, notice(`This hold is ${data.status}. Choose your seats again to book.`, "error"));
      holdPanel.hidden = false;
      return;
    }
    const timer = h("strong", { class: "countdown", role: "timer", "aria-live": "off" });
    const confirmButton = h("button", { type: "button", class: "primary" }, "Confirm booking");
    const releaseButton = h("button", { type: "button" }, "Release seats");
    const errors = h("div");
    replace(
      holdPanel,
      h("h2", {}, "Your seats are held"),
      h(
        "ul",
        { class: "held-items" },
        bookings.map((b) => h("li", {}, `${b.quantity} × ${tierName(b.tier)} · ${money(b.totalCents, b.currency)}`)),
      ),
      h("p", {}, `Total ${money(hold.totalCents, hold.currency)}. Confirm within `, timer, " or the seats go back on sale."),
      errors,
      h("div", { class: "actions" }, confirmButton, releaseButton),
    );
    holdPanel.hidden = false;
    const tick = () => {
      const left = hold.expiresAt === null ? Infinity : hold.expiresAt - Date.now();
      timer.textContent = Number.isFinite(left) ? countdown(left) : "—";
      if (left <= 0) {
        clearInterval(ticking);
        attempt = null;
        hold = null;
        replace(holdPanel, notice("Your hold expired and the seats went back on sale. Choose again to book.", "error"));
        live.now();
      }
    };
    clearInterval(ticking);
    tick();
    ticking = setInterval(tick, 1000);

    confirmButton.addEventListener("click", () =>
      busy(
        confirmButton,
        async () => {
          errors.replaceChildren();
          const path = kind === "order" ? `/orders/${hold.id}/confirm` : `/bookings/${hold.id}/confirm`;
          try {
            const { data: done } = await idempotent("POST", path, undefined, newIdempotencyKey());
            clearInterval(ticking);
            showConfirmed(done, kind);
          } catch (error) {
            replace(errors, errorBox(error));
            if (error.code === "BOOKING_EXPIRED") {
              clearInterval(ticking);
              attempt = null;
            }
          } finally {
            live.now();
          }
        },
        "Confirming…",
      ),
    );
    releaseButton.addEventListener("click", () =>
      busy(
        releaseButton,
        async () => {
          errors.replaceChildren();
          try {
            if (kind === "order") await idempotent("POST", `/orders/${hold.id}/cancel`, undefined, newIdempotencyKey());
            else await idempotent("PATCH", `/bookings/${hold.id}/cancel`, undefined, newIdempotencyKey());
            clearInterval(ticking);
            attempt = null;
            hold = null;
            replace(holdPanel, notice("Released: the seats are back on sale."));
          } catch (error) {
            replace(errors, errorBox(error));
          } finally {
            live.now();
          }
        },
        "Releasing…",
      ),
    );
  }

  function showConfirmed(data, kind) {
    attempt = null;
    hold = null;
    const bookings = kind === "order" ? data.bookings ?? [] : [data];
    replace(
      holdPanel,
      h("h2", {}, "Booked!"),
      h(
        "ul",
        { class: "held-items" },
        bookings.map((b) =>
          h(
            "li",
            {},
            `${b.quantity} × ${tierName(b.tier)} · ticket number `,
            h("strong", { class: "ticket-number" }, b.ticketNumber),
            " · ",
            h("a", { href: `/tickets/${encodeURIComponent(b.id)}` }, "View ticket"),
          ),
        ),
      ),
      h("p", {}, h("a", { href: "/bookings" }, "See all my bookings")),
    );
    holdPanel.hidden = false;
    for (const { input } of rows.values()) input.value = 0;
    showTotal();
  }

  function tierName(code) {
    return rows.get(code)?.tier.name ?? code;
  }
}

function availableText(available) {
  return available > 0 ? String(available) : "Sold out";
}

function modeText(mode) {
  return { live: "Live", polling: "Updated every 2 s", offline: "Reconnecting…" }[mode] ?? "";
}
