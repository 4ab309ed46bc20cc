// One event: tiers, prices, live availability, and booking as a hold → confirm.
//
// An attempt is one selection of seats. Its Idempotency-Key is made once, when the attempt
// starts, and sent again on every retry of it (automatic retries after a lost answer, and a
// second click on Book with the same selection): the server then answers with the same hold
// instead of booking twice. A new selection, or a definitive refusal, starts a new attempt.
//
// "Have a code?" checks an access code (POST /events/{id}/codes/check): the tiers it unlocks
// (hidden ones too) join the table at the code's price, and a booking of one of them carries
// `accessCode`. A sold-out tier offers its waiting list (see waitlistPanel below).

import { ApiError, clockSkew, get, idempotent, newIdempotencyKey, post, supports } from "../api.js";
import { busy, countdown, errorBox, field, h, markInvalid, money, notice, replace, timeEl } from "../dom.js";
import { watchAvailability } from "../live.js";
import { entryCard, latestEntries, myEntries } from "./offers.js";
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
  const rows = new Map(); // code → { tier, input, cell, price, tr, unitCents, bonus, unlocked }
  const tbody = h("tbody");
  const addRow = (tier, { unlocked = false } = {}) => {
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
    const price = h("td", { class: "num price" }, money(tier.priceCents, tier.currency));
    const tr = h(
      "tr",
      { class: unlocked ? "unlocked" : null, dataset: { tier: tier.code } },
      h("th", { scope: "row" }, tier.name, h("span", { class: "code" }, ` ${tier.code}`), unlocked ? h("small", { class: "unlock-note" }, " · with your code") : null),
      price,
      cell,
      h("td", { class: "num" }, h("label", { for: id, class: "visually-hidden" }, `Quantity of ${tier.name}`), input),
    );
    const row = { tier, input, cell, price, tr, unitCents: tier.priceCents, bonus: 0, unlocked };
    rows.set(tier.code, row);
    tbody.append(tr);
    return row;
  };
  for (const tier of event.tiers) addRow(tier);
  if (event.tiers.length === 1 && event.tiers[0].available > 0) rows.values().next().value.input.value = 1;

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
          for (const { input, tier, bonus } of rows.values()) input.disabled = tier.available + bonus <= 0;
          bookButton.disabled = false;
          form.scrollIntoView({ block: "start" });
          bookButton.focus();
        },
      })
    : null;

  // --- access codes -----------------------------------------------------------------------------
  let code = null; // { text, tiers: Set, discountPercent } while a checked code applies
  const codeBox = bookable && user ? codeForm() : null;

  function codeForm() {
    const input = h("input", {
      type: "text",
      name: "accessCode",
      maxlength: 64,
      autocomplete: "off",
      autocapitalize: "characters",
      spellcheck: false,
      required: true,
    });
    const apply = h("button", { type: "submit" }, "Apply code");
    const status = h("div", { "aria-live": "polite" });
    const codeFormEl = h("form", { class: "inline-form", noValidate: true }, field("Access code", input), apply);
    codeFormEl.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      status.replaceChildren();
      markInvalid(codeFormEl, null);
      if (!text) {
        replace(status, notice("Type the code you were given.", "error"));
        return;
      }
      await busy(
        apply,
        async () => {
          try {
            const { data } = await post(`/events/${encodeURIComponent(event.id)}/codes/check`, { accessCode: text });
            applyCode(data);
            const names = data.tiers.map((t) => t.name).join(", ");
            const off = data.discountPercent ? `${data.discountPercent}% off ` : "";
            const remove = h("button", { type: "button", class: "link" }, "Remove code");
            remove.addEventListener("click", () => {
              clearCode();
              status.replaceChildren();
              input.value = "";
              input.focus();
            });
            replace(
              status,
              h(
                "div",
                { class: "notice success", role: "status" },
                h("p", {}, `Code ${data.code} applied: ${off}${names}.`, data.validUntil ? [" Valid until ", timeEl(data.validUntil), "."] : ""),
                remove,
              ),
            );
          } catch (error) {
            clearCode();
            markInvalid(codeFormEl, error);
            replace(status, errorBox(error));
          }
        },
        "Checking…",
      );
    });
    return h(
      "details",
      { class: "code-box" },
      h("summary", {}, "Have a code?"),
      h("p", { class: "hint" }, "An access code may unlock tiers that are not listed, or a lower price."),
      codeFormEl,
      status,
    );
  }

  function applyCode(data) {
    clearCode();
    code = { text: data.code, tiers: new Set(data.tiers.map((t) => t.code)), discountPercent: data.discountPercent };
    for (const t of data.tiers) {
      const row = rows.get(t.code) ?? addRow(t, { unlocked: true });
      row.unitCents = t.unitPriceCents;
      row.bonus = Math.max(0, t.available - row.tier.available);
      showAvailable(row, t.available - row.bonus);
      replace(
        row.price,
        t.unitPriceCents !== t.priceCents ? [h("s", { "aria-label": `was ${money(t.priceCents, t.currency)}` }, money(t.priceCents, t.currency)), " "] : null,
        money(t.unitPriceCents, t.currency),
      );
    }
    attempt = null;
    showTotal();
  }

  function clearCode() {
    if (!code) return;
    for (const [tierCode, row] of rows) {
      if (!code.tiers.has(tierCode)) continue;
      if (row.unlocked) {
        row.tr.remove();
        rows.delete(tierCode);
        continue;
      }
      row.unitCents = row.tier.priceCents;
      row.bonus = 0;
      showAvailable(row, row.tier.available);
      replace(row.price, money(row.tier.priceCents, row.tier.currency));
    }
    code = null;
    attempt = null;
    showTotal();
  }

  function showAvailable(row, publicAvailable) {
    row.tier.available = publicAvailable;
    const available = publicAvailable + row.bonus;
    row.cell.textContent = availableText(available);
    row.input.max = String(Math.max(0, Math.min(MAX_PER_BOOKING, available)));
  }

  // --- the waiting list ---------------------------------------------------------------------------
  const waitlist = bookable && user ? waitlistPanel() : null;

  function waitlistPanel() {
    const section = h("section", { class: "waitlist", "aria-labelledby": "waitlist-title", hidden: true });
    const list = h("div", { class: "waitlist-tiers" });
    const errors = h("div");
    replace(
      section,
      h("h2", { id: "waitlist-title" }, "Waiting list"),
      h("p", { class: "hint" }, "Sold out? Join the waiting list: seats that free up are offered in line order."),
      errors,
      list,
    );
    const most = Math.min(MAX_PER_BOOKING, event.maxPerUser ?? MAX_PER_BOOKING);
    const boxes = new Map(); // tier code → { box, state }
    let entries = new Map(); // tier code → the entry that speaks for it
    let skew = 0;
    let loading = null;
    let again = false;

    const load = async () => {
      if (loading) {
        again = true;
        return loading;
      }
      loading = (async () => {
        try {
          const mine = await myEntries(ctx.signal);
          skew = mine.skew;
          entries = new Map(
            [...latestEntries(mine.entries.filter((e) => e.eventId === event.id)).values()].map((e) => [e.tier, e]),
          );
          errors.replaceChildren();
        } catch (error) {
          if (error?.name === "AbortError") return;
          replace(errors, errorBox(error));
        }
        draw();
      })().finally(() => {
        loading = null;
        if (again && !ctx.signal.aborted) {
          again = false;
          load();
        }
      });
      return loading;
    };

    const draw = () => {
      for (const row of rows.values()) {
        if (row.unlocked || row.tier.hidden) continue; // hidden tiers sell by code, not by list
        const { tier } = row;
        const entry = entries.get(tier.code);
        const soldOut = tier.available <= 0;
        const state = entry
          ? `${entry.id}:${entry.status}:${entry.position}:${entry.offerExpiresAt}`
          : soldOut
            ? `join:${tier.waitlistOpen !== false}`
            : "none";
        const known = boxes.get(tier.code);
        if (known?.state === state) continue;
        known?.box.remove();
        const box = h("div", { class: "waitlist-tier", dataset: { tier: tier.code } });
        boxes.set(tier.code, { box, state });
        if (entry) {
          box.append(
            entryCard(entry, {
              skew,
              tierName: tier.name,
              signal: ctx.signal,
              onChange: load,
              onBooked: (booking) => {
                showConfirmed(booking, "booking");
                live.now();
              },
            }),
          );
          if (entry.status === "expired" && soldOut && tier.waitlistOpen !== false) box.append(joinForm(tier));
        } else if (soldOut) {
          box.append(
            tier.waitlistOpen === false
              ? notice(`${tier.name} is sold out, and its waiting list is closed.`)
              : joinForm(tier),
          );
        }
        list.append(box);
      }
      section.hidden = ![...boxes.values()].some(({ box }) => box.childNodes.length);
    };

    const joinForm = (tier) => {
      const quantity = h("input", { type: "number", name: "quantity", min: 1, max: most, step: 1, value: 1, inputmode: "numeric" });
      const join = h("button", { type: "submit", class: "primary", "aria-label": `Join the waiting list for ${tier.name}` }, "Join the waiting list");
      const joinErrors = h("div");
      const joinFormEl = h(
        "form",
        { class: "inline-form", noValidate: true },
        h("p", { class: "sold-out" }, h("strong", {}, `${tier.name} is sold out.`)),
        field(`Seats wanted of ${tier.name}`, quantity, most > 1 ? `Up to ${most}` : null),
        join,
      );
      joinFormEl.addEventListener("submit", async (e) => {
        e.preventDefault();
        joinErrors.replaceChildren();
        await busy(
          join,
          async () => {
            try {
              const body = { tier: tier.code, quantity: Number.parseInt(quantity.value, 10) || 0 };
              await post(`/events/${encodeURIComponent(event.id)}/waitlist`, body);
              await load();
            } catch (error) {
              markInvalid(joinFormEl, error);
              replace(joinErrors, errorBox(error));
            }
          },
          "Joining…",
        );
      });
      return h("div", {}, joinFormEl, joinErrors);
    };

    load();
    return {
      element: section,
      /** The seats changed: redraw, and reload the entries if one may have got an offer. */
      changed() {
        draw();
        if ([...entries.values()].some((e) => e.status === "waiting" || e.status === "offered")) load();
      },
    };
  }

  replace(
    ctx.root,
    h("h1", {}, event.name),
    h("p", { class: "meta" }, timeEl(event.startsAt), " · ", event.venue, event.status !== "published" ? ` · ${event.status}` : ""),
    event.description ? h("p", { class: "description" }, event.description) : null,
    room?.element,
    codeBox,
    form,
    holdPanel,
    waitlist?.element,
  );

  // --- live availability ------------------------------------------------------------------------
  const live = watchAvailability(
    event.id,
    (data) => {
      for (const t of data.tiers) {
        const row = rows.get(t.code);
        if (row) showAvailable(row, t.available);
      }
      waitlist?.changed();
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
    const cents = items.reduce((s, i) => s + i.quantity * rows.get(i.tier).unitCents, 0);
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
    const coded = code ? items.filter((i) => code.tiers.has(i.tier)) : [];
    if (coded.length && items.length > 1) {
      replace(formErrors, notice("A code applies to one booking of one tier: choose seats in one tier.", "error"));
      return;
    }
    const accessCode = coded.length ? code.text : null;
    const fingerprint = JSON.stringify([items, accessCode]);
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
                  {
                    eventId: event.id,
                    tier: items[0].tier,
                    quantity: items[0].quantity,
                    hold: true,
                    ...(accessCode ? { accessCode } : {}),
                  },
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
