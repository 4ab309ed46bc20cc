// An event's waiting lists (organizer, admin): per tier, the live entries in line order with
// their state (GET /events/{id}/waitlist, reloaded every 5 s and when the seats change), and a
// switch that opens or closes the tier's list (PATCH /events/{id} `tiers[].waitlistOpen`).

import { ApiError, clockSkew, get, idempotent, newIdempotencyKey } from "../api.js";
import { countdown, errorBox, flash, h, replace, timeEl } from "../dom.js";
import { watchAvailability } from "../live.js";
import { eventNav } from "./organizer.js";

const POLL_MS = 5000;
const STATE_TEXT = { waiting: "Waiting", offered: "Offered" };

export async function page(ctx) {
  const [eventId] = ctx.params;
  const path = `/events/${encodeURIComponent(eventId)}`;
  let { data: event } = await get(path, { signal: ctx.signal });
  document.title = `Waiting list of ${event.name} · TicketBoss`;

  const status = h("div");
  const updated = h("p", { class: "live-status" }, "Loading…");
  const sections = new Map(); // tier code → { section, tbody, summary, toggle }
  const body = h("div");
  replace(
    ctx.root,
    h("h1", {}, `Waiting list · ${event.name}`),
    h("p", { class: "meta" }, timeEl(event.startsAt), " · ", event.venue, " · ", h("span", { class: `badge ${event.status}` }, event.status)),
    eventNav(event, "waitlist"),
    h("p", { class: "hint" }, "Buyers join a tier's list when it is sold out. Freed seats are offered in line order and held for the buyer a while; an offer not taken passes to the next."),
    status,
    body,
    updated,
  );

  for (const tier of event.tiers) {
    const tbody = h("tbody");
    const summary = h("p", { class: "waitlist-summary" });
    const toggle = h("input", { type: "checkbox", role: "switch", name: "waitlistOpen", checked: tier.waitlistOpen !== false });
    const toggleErrors = h("div");
    toggle.addEventListener("change", () => setOpen(tier.code, toggle, toggleErrors));
    const empty = h("p", { class: "empty" }, "Nobody is waiting.");
    const table = h(
      "div",
      { class: "table-wrap", hidden: true },
      h(
        "table",
        { class: "waitlist-entries cards-on-phone" },
        h("thead", {}, h("tr", {}, ["#", "Account", "Seats", "State", "Joined"].map((t) => h("th", { scope: "col" }, t)))),
        tbody,
      ),
    );
    const section = h(
      "section",
      { class: "waitlist-tier", dataset: { tier: tier.code }, "aria-labelledby": `wl-${tier.code}` },
      h("h2", { id: `wl-${tier.code}` }, tier.name, h("span", { class: "code" }, ` ${tier.code}`), tier.hidden ? h("small", {}, " · hidden") : null),
      h("label", { class: "check" }, toggle, ` Waiting list open for ${tier.name}`),
      toggleErrors,
      summary,
      empty,
      table,
    );
    sections.set(tier.code, { section, tbody, summary, toggle, empty, table, available: tier.available });
    body.append(section);
  }

  async function setOpen(code, toggle, errors) {
    const open = toggle.checked;
    errors.replaceChildren();
    toggle.disabled = true;
    try {
      const { data } = await idempotent("PATCH", path, { tiers: [{ code, waitlistOpen: open }] }, newIdempotencyKey());
      event = data;
      const tier = data.tiers.find((t) => t.code === code);
      toggle.checked = tier?.waitlistOpen !== false;
      flash(`The waiting list of ${tier?.name ?? code} is ${toggle.checked ? "open" : "closed"}.`);
    } catch (error) {
      toggle.checked = !open;
      if (error?.name !== "AbortError") replace(errors, errorBox(error));
    } finally {
      toggle.disabled = false;
    }
  }

  // --- the entries ------------------------------------------------------------------------------
  let entries = [];
  let skew = 0;
  const timers = new Set();
  ctx.signal.addEventListener("abort", () => timers.forEach(clearInterval));

  const draw = () => {
    timers.forEach(clearInterval);
    timers.clear();
    for (const [code, s] of sections) {
      const mine = entries.filter((e) => e.tier === code);
      const waiting = mine.filter((e) => e.status === "waiting");
      const offered = mine.filter((e) => e.status === "offered");
      s.summary.textContent = `${waiting.length} waiting (${seats(waiting)} seats) · ${offered.length} offered (${seats(offered)} seats) · ${s.available} available`;
      replace(s.tbody, mine.map((e, i) => entryRow(e, i + 1)));
      s.table.hidden = !mine.length;
      s.empty.hidden = Boolean(mine.length);
    }
  };

  function entryRow(e, place) {
    const state = h("td", {}, h("span", { class: `badge ${e.status === "offered" ? "pending" : "draft"}` }, STATE_TEXT[e.status] ?? e.status));
    if (e.status === "offered" && e.offerExpiresAt) {
      const left = h("small", { class: "countdown" });
      const until = Date.parse(e.offerExpiresAt) - skew;
      const tick = () => {
        const ms = until - Date.now();
        left.textContent = ms > 0 ? ` ${countdown(ms)} left` : " ending…";
      };
      tick();
      timers.add(setInterval(tick, 1000));
      state.append(left);
    }
    const cells = [
      [h("th", { scope: "row", class: "num" }, String(e.position ?? place)), null],
      [h("td", {}, h("code", {}, e.ownerId ?? "—")), "Account"],
      [h("td", { class: "num" }, String(e.quantity)), "Seats"],
      [state, "State"],
      [h("td", {}, timeEl(e.createdAt)), "Joined"],
    ];
    for (const [cell, label] of cells) if (label) cell.dataset.label = label;
    return h("tr", { dataset: { entry: e.id, status: e.status } }, cells.map(([cell]) => cell));
  }

  let timer = null;
  let loading = false;
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));
  const load = async () => {
    if (loading) return;
    loading = true;
    clearTimeout(timer);
    try {
      const result = await get(`${path}/waitlist`, { signal: ctx.signal });
      entries = result.data;
      skew = clockSkew(result.headers);
      status.replaceChildren();
      draw();
      updated.textContent = `Updated every 5 s · as of ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error?.name === "AbortError") return;
      replace(status, errorBox(error));
      if (error instanceof ApiError && (error.status === 403 || error.status === 404)) return;
    } finally {
      loading = false;
    }
    if (!ctx.signal.aborted) timer = setTimeout(load, POLL_MS);
  };
  await load();

  const live = watchAvailability(event.id, (data) => {
    for (const t of data.tiers) {
      const s = sections.get(t.code);
      if (s) s.available = t.available;
    }
    load();
  });
  ctx.signal.addEventListener("abort", () => live.stop());
}

function seats(entries) {
  return entries.reduce((n, e) => n + e.quantity, 0);
}
