// My bookings: ticket numbers, status, confirm a hold, cancel (with a confirmation), the ticket;
// and above them the buyer's waiting lists, with any seats offered to them (see offers.js).

import { clockSkew, get, idempotent, newIdempotencyKey, supports } from "../api.js";
import { busy, confirmDialog, countdown, errorBox, flash, h, money, replace, timeEl } from "../dom.js";
import { entryCard, latestEntries, myEntries } from "./offers.js";

const WAITLIST_POLL_MS = 5000;

const PAGE_SIZE = 20;
const events = new Map(); // id → Promise<event | null>, shared by the rows of this page

export function eventOf(id) {
  if (!events.has(id)) {
    events.set(
      id,
      get(`/events/${encodeURIComponent(id)}`).then(
        (r) => r.data,
        () => null,
      ),
    );
  }
  return events.get(id);
}

const STATUS_TEXT = { pending: "Held", confirmed: "Confirmed", cancelled: "Cancelled", expired: "Expired" };

export async function page(ctx) {
  document.title = "My bookings · TicketBoss";
  events.clear();
  const status = h("div");
  const tbody = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More bookings");
  const ordersSection = h("section", { hidden: true, "aria-labelledby": "orders-title" });
  const waitlists = h("section", { hidden: true, "aria-labelledby": "waitlists-title" });
  let table;
  replace(
    ctx.root,
    h("h1", {}, "My bookings"),
    h("p", { class: "meta" }, `${ctx.user.name} · ${ctx.user.email} · account id `, h("code", {}, ctx.user.id)),
    waitlists,
    status,
    (table = h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "bookings cards-on-phone" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Ticket number", "Event", "Tier", "Seats", "Total", "Status", "Actions"].map((label) =>
              h("th", { scope: "col" }, label),
            ),
          ),
        ),
        tbody,
      ),
    )),
    h("div", { class: "actions" }, more),
    ordersSection,
  );

  const timers = new Set();
  ctx.signal.addEventListener("abort", () => timers.forEach(clearInterval));

  function row(booking, skew) {
    const tr = h("tr", { dataset: { booking: booking.id } });
    const draw = (b) => {
      const eventCell = h("td", {}, b.eventId);
      eventOf(b.eventId).then((event) => {
        if (event) replace(eventCell, h("a", { href: `/events/${encodeURIComponent(event.id)}` }, event.name), h("br"), h("small", {}, timeEl(event.startsAt)));
      });
      const statusCell = h("td", {}, h("span", { class: `badge ${b.status}` }, STATUS_TEXT[b.status] ?? b.status));
      if (b.status === "pending" && b.expiresAt) {
        const left = h("small", { class: "countdown", role: "timer" });
        const expiresAt = Date.parse(b.expiresAt) - skew;
        const tick = () => {
          const ms = expiresAt - Date.now();
          left.textContent = ms > 0 ? ` ${countdown(ms)} left` : " expiring…";
        };
        tick();
        const timer = setInterval(tick, 1000);
        timers.add(timer);
        statusCell.append(left);
      }
      const actions = h("td", { class: "row-actions" });
      if (b.status === "confirmed") {
        actions.append(h("a", { href: `/tickets/${encodeURIComponent(b.id)}`, "aria-label": `Ticket ${b.ticketNumber}` }, "Ticket"));
      }
      if (b.status === "pending") {
        const confirm = h("button", { type: "button", class: "primary" }, "Confirm");
        confirm.addEventListener("click", () =>
          busy(confirm, async () => {
            try {
              const { data } = await idempotent("POST", `/bookings/${b.id}/confirm`, undefined, newIdempotencyKey());
              flash(`Booking ${data.ticketNumber} is confirmed.`);
              draw(data);
            } catch (error) {
              replace(status, errorBox(error));
            }
          }),
        );
        actions.append(confirm);
      }
      if (b.status === "pending" || b.status === "confirmed") {
        const cancel = h("button", { type: "button", class: "danger", "aria-label": `Cancel booking ${b.ticketNumber}` }, "Cancel");
        cancel.addEventListener("click", async () => {
          const ok = await confirmDialog({
            title: `Cancel booking ${b.ticketNumber}?`,
            body: `${b.quantity} seat${b.quantity === 1 ? "" : "s"} go back on sale. This cannot be undone.`,
            confirmLabel: "Cancel booking",
            cancelLabel: "Keep booking",
          });
          if (!ok) return;
          await busy(cancel, async () => {
            try {
              const { data } = await idempotent("PATCH", `/bookings/${b.id}/cancel`, undefined, newIdempotencyKey());
              flash(`Booking ${data.ticketNumber} is cancelled.`);
              draw(data);
            } catch (error) {
              replace(status, errorBox(error));
            }
          });
        });
        actions.append(cancel);
      }
      const labelled = [
        [h("td", {}, h("span", { class: "ticket-number" }, b.ticketNumber)), "Ticket number"],
        [eventCell, "Event"],
        [h("td", {}, b.tier), "Tier"],
        [h("td", { class: "num" }, String(b.quantity)), "Seats"],
        [h("td", { class: "num" }, money(b.totalCents, b.currency)), "Total"],
        [statusCell, "Status"],
      ];
      for (const [cell, label] of labelled) cell.dataset.label = label; // shown on phones
      replace(tr, labelled.map(([cell]) => cell), actions);
    };
    draw(booking);
    return tr;
  }

  let cursor = null;
  const load = async () => {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) params.set("cursor", cursor);
    try {
      const result = await get(`/bookings?${params}`, { signal: ctx.signal });
      const skew = clockSkew(result.headers);
      tbody.append(...result.data.map((b) => row(b, skew)));
      cursor = result.meta?.nextCursor ?? null;
      more.hidden = !cursor;
      table.hidden = !tbody.children.length;
      if (!tbody.children.length) {
        replace(status, h("p", { class: "empty" }, "No bookings yet. ", h("a", { href: "/" }, "Find an event")));
      }
    } catch (error) {
      if (error.name !== "AbortError") replace(status, errorBox(error));
    }
  };
  more.addEventListener("click", () => busy(more, load, "Loading…"));
  const booked = (booking) => {
    status.replaceChildren();
    tbody.prepend(row(booking, 0));
    table.hidden = false;
  };
  await Promise.all([load(), showWaitlists(waitlists, ctx, booked)]);
  if (await supports("orders", "/orders?limit=1")) await showOrders(ordersSection, ctx);
}

/**
 * The buyer's waiting lists: their place in line, or the seats offered with a countdown and
 * "Book these seats". Reloaded every few seconds while an entry waits (an offer may come).
 */
async function showWaitlists(section, ctx, onBooked) {
  const list = h("ul", { class: "cards" });
  const errors = h("div");
  replace(section, h("h2", { id: "waitlists-title" }, "Waiting lists"), errors, list);
  const cards = new Map(); // entry id → { li, state }
  let timer = null;
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));

  const load = async () => {
    clearTimeout(timer);
    let mine;
    try {
      mine = await myEntries(ctx.signal);
      errors.replaceChildren();
    } catch (error) {
      if (error?.name === "AbortError") return;
      replace(errors, errorBox(error));
      section.hidden = false;
      timer = setTimeout(load, WAITLIST_POLL_MS);
      return;
    }
    const shown = [...latestEntries(mine.entries).values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const ids = new Set(shown.map((e) => e.id));
    for (const [id, { li }] of cards) {
      if (!ids.has(id) && li.querySelector(".offer")?.dataset.status !== "booked") {
        li.remove();
        cards.delete(id);
      }
    }
    for (const entry of shown) {
      const state = `${entry.status}:${entry.position}:${entry.offerExpiresAt}`;
      const known = cards.get(entry.id);
      if (known?.state === state) continue;
      const li = h("li", { dataset: { entry: entry.id } });
      const eventName = h("span", {}, entry.eventId);
      eventOf(entry.eventId).then((event) => {
        if (event) replace(eventName, h("a", { href: `/events/${encodeURIComponent(event.id)}` }, event.name));
      });
      const tierName = h("span", {}, entry.tier);
      eventOf(entry.eventId).then((event) => {
        const tier = event?.tiers.find((t) => t.code === entry.tier);
        if (tier) tierName.textContent = tier.name;
      });
      li.append(
        entryCard(entry, {
          skew: mine.skew,
          tierName,
          eventName,
          signal: ctx.signal,
          onChange: load,
          onBooked: (booking) => {
            flash(`Booking ${booking.ticketNumber} is confirmed.`);
            onBooked(booking);
          },
        }),
      );
      if (known) known.li.replaceWith(li);
      else list.append(li);
      cards.set(entry.id, { li, state });
    }
    section.hidden = cards.size === 0;
    if (shown.some((e) => e.status === "waiting" || e.status === "offered")) {
      timer = setTimeout(load, WAITLIST_POLL_MS);
    }
  };
  await load();
}

/** Orders across tiers (when the server has them): confirm or cancel as a whole. */
async function showOrders(section, ctx) {
  let orders;
  try {
    ({ data: orders } = await get("/orders?limit=50", { signal: ctx.signal }));
  } catch (error) {
    if (error.name === "AbortError") return;
    replace(section, h("h2", { id: "orders-title" }, "Orders"), errorBox(error));
    section.hidden = false;
    return;
  }
  if (!orders?.length) return;
  const errors = h("div");
  const list = h("ul", { class: "cards" });
  const item = (order) => {
    const li = h("li", { class: "card", dataset: { order: order.id } });
    const draw = (o) => {
      const actions = h("div", { class: "actions" });
      if (o.status === "pending") {
        const confirm = h("button", { type: "button", class: "primary" }, "Confirm order");
        confirm.addEventListener("click", () =>
          busy(confirm, async () => {
            try {
              draw((await idempotent("POST", `/orders/${o.id}/confirm`, undefined, newIdempotencyKey())).data);
            } catch (error) {
              replace(errors, errorBox(error));
            }
          }),
        );
        actions.append(confirm);
      }
      if (o.status === "pending" || o.status === "confirmed") {
        const cancel = h("button", { type: "button", class: "danger" }, "Cancel order");
        cancel.addEventListener("click", async () => {
          const ok = await confirmDialog({
            title: "Cancel this order?",
            body: "Every seat in it goes back on sale.",
            confirmLabel: "Cancel order",
            cancelLabel: "Keep order",
          });
          if (!ok) return;
          await busy(cancel, async () => {
            try {
              draw((await idempotent("POST", `/orders/${o.id}/cancel`, undefined, newIdempotencyKey())).data);
            } catch (error) {
              replace(errors, errorBox(error));
            }
          });
        });
        actions.append(cancel);
      }
      replace(
        li,
        h("h3", {}, `Order · ${money(o.totalCents, o.currency)} · `, h("span", { class: `badge ${o.status}` }, STATUS_TEXT[o.status] ?? o.status)),
        h(
          "ul",
          {},
          (o.bookings ?? []).map((b) => h("li", {}, `${b.quantity} × ${b.tier} · `, h("span", { class: "ticket-number" }, b.ticketNumber))),
        ),
        actions,
      );
    };
    draw(order);
    return li;
  };
  list.append(...orders.map(item));
  replace(section, h("h2", { id: "orders-title" }, "Orders"), errors, list);
  section.hidden = false;
}
