// A buyer's waiting-list entries (GET /waitlist): their place in line, and the seats offered
// to them when seats free up, with a live countdown to the offer's end and "Book these seats"
// (POST /bookings with `waitlistEntryId`). Used on the event page and on My bookings.
//
// Booking an offer is one attempt per entry: its Idempotency-Key is made once and sent again on
// every retry, so a lost answer or a second click books once. A definitive refusal ends it.

import { ApiError, clockSkew, get, idempotent, newIdempotencyKey, request } from "../api.js";
import { busy, confirmDialog, countdown, errorBox, flash, h, notice, replace, timeEl } from "../dom.js";

const LIVE = new Set(["waiting", "offered"]);
const keys = new Map(); // entry id → the Idempotency-Key of its booking attempt

/** The buyer's entries and the server's clock skew. */
export async function myEntries(signal) {
  const result = await get("/waitlist", { signal });
  return { entries: result.data ?? [], skew: clockSkew(result.headers) };
}

/**
 * The entry that speaks for each event and tier: the newest one, if it is live or its offer
 * lapsed (a booked or left entry says nothing more). Map "eventId/tier" → entry.
 */
export function latestEntries(entries) {
  const latest = new Map();
  for (const e of entries) {
    const key = `${e.eventId}/${e.tier}`;
    const seen = latest.get(key);
    if (!seen || e.createdAt > seen.createdAt) latest.set(key, e);
  }
  for (const [key, e] of latest) if (!LIVE.has(e.status) && e.status !== "expired") latest.delete(key);
  return latest;
}

/** Whether an offer is still open (by this browser's clock corrected by `skew`). */
export function offerOpen(entry, skew = 0) {
  return entry.status === "offered" && Boolean(entry.offerExpiresAt) && Date.parse(entry.offerExpiresAt) - skew > Date.now();
}

/** A short state of the entry, the same words everywhere ("#2 in line", "Offered", …). */
export function entryState(entry, skew = 0) {
  if (entry.status === "waiting") return entry.position ? `Waiting · #${entry.position} in line` : "Waiting";
  if (entry.status === "offered") return offerOpen(entry, skew) ? "Offered" : "Offer expired";
  return { booked: "Booked", expired: "Offer expired", left: "Left" }[entry.status] ?? entry.status;
}

/**
 * entryCard(entry, { skew, tierName, eventName, signal, onChange, onBooked }) → element.
 * tierName and eventName are text or elements (filled in by the caller when known).
 * onChange() asks the owner to reload the entries (after leaving, or when an offer ends);
 * onBooked(booking) is called once the offer is booked.
 */
export function entryCard(entry, { skew = 0, tierName = entry.tier, eventName = null, signal, onChange, onBooked }) {
  const card = h("div", { class: "card offer", dataset: { entry: entry.id, status: entry.status } });
  const errors = h("div");
  let timer = null;
  const stop = () => clearInterval(timer);
  signal?.addEventListener("abort", stop);
  // tierName and eventName: text, or an element its owner fills in later.
  const seats = `${entry.quantity} seat${entry.quantity === 1 ? "" : "s"} of `;
  const title = eventName ? [eventName, h("br"), h("small", {}, seats, tierName)] : [seats, tierName];

  const leaveButton = (label, dialog) => {
    const button = h("button", { type: "button", class: "danger" }, label);
    button.addEventListener("click", async () => {
      if (!(await confirmDialog(dialog))) return;
      await busy(button, async () => {
        errors.replaceChildren();
        try {
          await request("DELETE", `/waitlist/${encodeURIComponent(entry.id)}`);
          stop();
          flash(entry.status === "offered" ? "Offer declined: the seats pass to the next in line." : "You left the waiting list.");
          onChange?.();
        } catch (error) {
          replace(errors, errorBox(error));
        }
      });
    });
    return button;
  };

  const expired = () => {
    stop();
    card.dataset.status = "expired";
    replace(
      card,
      h("h3", {}, title),
      notice("This offer has expired: the seats passed to the next in line.", "error"),
    );
  };

  if (entry.status === "waiting") {
    replace(
      card,
      h("h3", {}, title),
      h("p", { class: "waitlist-place" }, "On the waiting list", entry.position ? [" · ", h("strong", {}, `#${entry.position}`), " in line"] : ""),
      h("p", { class: "hint" }, "When seats free up they are offered in line order, and held for you for a while."),
      errors,
      h(
        "div",
        { class: "actions" },
        leaveButton("Leave", {
          title: "Leave the waiting list?",
          body: "You lose your place in line.",
          confirmLabel: "Leave the list",
          cancelLabel: "Stay in line",
        }),
      ),
    );
    return card;
  }

  if (entry.status === "expired" || !offerOpen(entry, skew)) {
    expired();
    return card;
  }

  // An open offer: the countdown, book, decline.
  const expiresAt = Date.parse(entry.offerExpiresAt) - skew;
  const left = h("strong", { class: "countdown", role: "timer", "aria-live": "off" });
  const book = h("button", { type: "button", class: "primary" }, "Book these seats");
  replace(
    card,
    h("h3", {}, title),
    h("p", {}, h("strong", {}, "Seats are free for you."), " Book them within ", left, " (until ", timeEl(entry.offerExpiresAt, new Date(expiresAt).toLocaleTimeString()), ") or they pass to the next in line."),
    errors,
    h(
      "div",
      { class: "actions" },
      book,
      leaveButton("Decline", {
        title: "Decline this offer?",
        body: "The seats pass to the next in line, and you leave the waiting list.",
        confirmLabel: "Decline offer",
        cancelLabel: "Keep offer",
      }),
    ),
  );
  const tick = () => {
    const ms = expiresAt - Date.now();
    left.textContent = countdown(ms);
    if (ms <= 0) {
      expired();
      onChange?.();
    }
  };
  tick();
  timer = setInterval(tick, 1000);

  book.addEventListener("click", () =>
    busy(
      book,
      async () => {
        errors.replaceChildren();
        if (!keys.has(entry.id)) keys.set(entry.id, newIdempotencyKey());
        const body = { eventId: entry.eventId, tier: entry.tier, quantity: entry.quantity, waitlistEntryId: entry.id };
        try {
          const { data } = await idempotent("POST", "/bookings", body, keys.get(entry.id));
          keys.delete(entry.id);
          stop();
          card.dataset.status = "booked";
          replace(
            card,
            h("h3", {}, title),
            notice("Booked!", "success"),
            h(
              "p",
              {},
              "Ticket number ",
              h("strong", { class: "ticket-number" }, data.ticketNumber),
              " · ",
              h("a", { href: `/tickets/${encodeURIComponent(data.id)}` }, "View ticket"),
            ),
          );
          onBooked?.(data);
        } catch (error) {
          if (!(error instanceof ApiError) || !error.retryable) keys.delete(entry.id);
          replace(errors, errorBox(error));
          if (error instanceof ApiError && error.code === "WAITLIST_OFFER_NOT_USABLE" && error.body?.reason === "offer_expired") {
            expired();
            onChange?.();
          }
        }
      },
      "Booking…",
    ),
  );
  return card;
}
