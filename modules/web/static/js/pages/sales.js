// An event's sales, live: sold (confirmed) / held (pending) / available per tier, revenue, and a
// chart of seats sold over time. The chart comes from the event's activity log
// (GET /events/{id}/activity) when the server has it; otherwise from the availability samples
// this page has seen since it opened.

import { get, supports } from "../api.js";
import { clock, h, money, replace, svg, timeEl } from "../dom.js";
import { watchAvailability } from "../live.js";
import { eventNav } from "./organizer.js";

const ACTIVITY_PAGES = 20;
const DOOR_SECONDS = 5;

export async function page(ctx) {
  const [eventId] = ctx.params;
  const path = `/events/${encodeURIComponent(eventId)}`;
  const { data: event } = await get(path, { signal: ctx.signal });
  document.title = `Sales of ${event.name} · TicketBoss`;
  const hasActivity = await supports(`activity:${event.id}`, `${path}/activity?limit=1`);
  const prices = new Map(event.tiers.map((t) => [t.code, t]));

  const tbody = h("tbody");
  const tfoot = h("tfoot");
  const updated = h("p", { class: "live-status" }, "Loading…");
  const chartBox = h("figure", { class: "chart" });
  const doorBody = h("tbody");
  const doorStatus = h("p", { class: "live-status" }, "Loading…");
  const source = h(
    "p",
    { class: "hint" },
    hasActivity
      ? "From the event's activity log: confirmed seats, less cancellations."
      : "From the availability seen since this page opened (this server has no activity log).",
  );
  replace(
    ctx.root,
    h("h1", {}, `Sales · ${event.name}`),
    h(
      "p",
      { class: "meta" },
      timeEl(event.startsAt),
      " · ",
      event.venue,
      " · ",
      h("span", { class: `badge ${event.status}` }, event.status),
    ),
    eventNav(event, "sales"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "sales" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Tier", "Sold", "Held", "Available", "Capacity", "Revenue"].map((t, i) =>
              h("th", { scope: "col", class: [i ? "num" : "", t === "Capacity" ? "wide-only" : ""] }, t),
            ),
          ),
        ),
        tbody,
        tfoot,
      ),
    ),
    updated,
    h("h2", {}, "At the door"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "door" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Tier", "Checked in", "Expected"].map((t, i) => h("th", { scope: "col", class: i ? "num" : "" }, t)),
          ),
        ),
        doorBody,
      ),
    ),
    doorStatus,
    h("h2", {}, "Seats sold over time"),
    chartBox,
    source,
  );

  let mode = "polling";
  const samples = []; // [{ t, sold }] when there is no activity log
  let series = [];

  const draw = (data) => {
    const rows = data.tiers.map((t) => {
      const tier = prices.get(t.code);
      const revenue = (tier?.priceCents ?? 0) * t.confirmed;
      return h(
        "tr",
        { dataset: { tier: t.code } },
        h("th", { scope: "row" }, tier?.name ?? t.code),
        h("td", { class: "num sold" }, String(t.confirmed)),
        h("td", { class: "num held" }, String(t.pending)),
        h("td", { class: "num available" }, String(t.available)),
        h("td", { class: "num wide-only" }, String(t.capacity)),
        h("td", { class: "num" }, money(revenue, tier?.currency)),
      );
    });
    replace(tbody, rows);
    const sum = (key) => data.tiers.reduce((s, t) => s + t[key], 0);
    const revenue = data.tiers.reduce((s, t) => s + (prices.get(t.code)?.priceCents ?? 0) * t.confirmed, 0);
    replace(
      tfoot,
      h(
        "tr",
        {},
        h("th", { scope: "row" }, "Total"),
        h("td", { class: "num sold", dataset: { total: "sold" } }, String(sum("confirmed"))),
        h("td", { class: "num held" }, String(sum("pending"))),
        h("td", { class: "num available" }, String(sum("available"))),
        h("td", { class: "num wide-only" }, String(sum("capacity"))),
        h("td", { class: "num" }, money(revenue, event.tiers[0]?.currency)),
      ),
    );
    updated.textContent = `${mode === "live" ? "Live" : mode === "offline" ? "Reconnecting…" : "Updated every 2 s"} · as of ${clock(data.asOf)}`;
    if (!hasActivity) {
      const sold = sum("confirmed");
      if (!samples.length || samples.at(-1).sold !== sold) samples.push({ t: Date.parse(data.asOf), sold });
      series = samples;
      chart(chartBox, series);
    } else {
      loadActivity();
    }
  };

  // The activity log, refetched (at most every 2 s) when availability changes.
  let activityBusy = false;
  let activityAgain = false;
  let lastSold = null;
  async function loadActivity() {
    if (activityBusy) {
      activityAgain = true;
      return;
    }
    activityBusy = true;
    try {
      const records = [];
      let cursor = null;
      for (let n = 0; n < ACTIVITY_PAGES; n += 1) {
        const params = new URLSearchParams({ limit: "100" });
        if (cursor) params.set("cursor", cursor);
        const { data, meta } = await get(`${path}/activity?${params}`, { signal: ctx.signal });
        records.push(...data);
        cursor = meta?.nextCursor;
        if (!cursor) break;
      }
      series = soldOverTime(records);
      const sold = series.at(-1)?.sold ?? 0;
      if (sold !== lastSold || !chartBox.firstChild) chart(chartBox, series);
      lastSold = sold;
    } catch {
      /* keep the last chart */
    } finally {
      activityBusy = false;
      if (activityAgain && !ctx.signal.aborted) {
        activityAgain = false;
        setTimeout(loadActivity, 2000);
      }
    }
  }

  // Checked in / expected (confirmed seats), per tier: polled, the door changes by the second.
  async function loadDoor() {
    try {
      const { data } = await get(`${path}/checkin/stats`, { signal: ctx.signal });
      const row = (label, d, total) =>
        h(
          "tr",
          { dataset: total ? { door: "total" } : { tier: d.tier } },
          h("th", { scope: "row" }, label),
          h("td", { class: "num checked-in" }, String(d.checkedIn)),
          h("td", { class: "num" }, String(d.expected)),
        );
      replace(doorBody, [
        ...data.tiers.map((t) => row(prices.get(t.tier)?.name ?? t.tier, t, false)),
        row("Total", data, true),
      ]);
      doorStatus.textContent = `Updated every ${DOOR_SECONDS} s · as of ${clock(data.asOf)}`;
    } catch {
      if (!ctx.signal.aborted) doorStatus.textContent = "Door figures unavailable; retrying…";
    }
  }
  loadDoor();
  const doorTimer = setInterval(loadDoor, DOOR_SECONDS * 1000);
  ctx.signal.addEventListener("abort", () => clearInterval(doorTimer));

  const live = watchAvailability(event.id, draw, {
    onMode: (m) => {
      mode = m;
      if (m === "offline") updated.textContent = "Reconnecting…";
    },
  });
  ctx.signal.addEventListener("abort", () => live.stop());
}

/**
 * Seats sold over time from activity records (newest first from the API): a confirmed booking
 * adds its seats when it becomes confirmed; cancelling a confirmed one takes them back.
 */
export function soldOverTime(records) {
  const ordered = [...records].sort((a, b) => a.occurredAt.localeCompare(b.occurredAt));
  const confirmed = new Map(); // bookingId → seats counted
  const points = [];
  let sold = 0;
  for (const r of ordered) {
    const id = r.bookingId;
    const data = r.data ?? {};
    const seats = Number(data.quantity) || 0;
    if (!id) continue;
    let changed = false;
    if (r.type === "booking.confirmed" || (r.type === "booking.created" && data.status === "confirmed")) {
      if (!confirmed.has(id)) {
        confirmed.set(id, seats);
        sold += seats;
        changed = true;
      }
    } else if (r.type === "booking.cancelled" && confirmed.has(id)) {
      sold -= confirmed.get(id);
      confirmed.delete(id);
      changed = true;
    }
    if (changed) points.push({ t: Date.parse(r.occurredAt), sold });
  }
  return points;
}

/** A step chart (SVG, no inline style) of cumulative seats sold. */
function chart(box, points) {
  const W = 640;
  const H = 220;
  const pad = { l: 44, r: 16, t: 12, b: 34 };
  const now = Date.now();
  const last = points.at(-1);
  const summary = last
    ? `${last.sold} seats sold; last change at ${clock(new Date(last.t).toISOString())}.`
    : "No seats sold yet.";
  if (!points.length) {
    replace(box, h("p", { class: "empty" }, "No sales yet."), h("figcaption", { class: "visually-hidden" }, summary));
    box.dataset.points = "0";
    return;
  }
  const t0 = points[0].t;
  const t1 = Math.max(now, last.t + 1000);
  const maxSold = Math.max(1, ...points.map((p) => p.sold));
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / maxSold) * (H - pad.t - pad.b);
  let d = `M${x(t0)} ${y(0)}`;
  for (const p of points) d += ` H${x(p.t).toFixed(1)} V${y(p.sold).toFixed(1)}`;
  d += ` H${x(t1).toFixed(1)}`;
  const axis = { class: "axis" };
  const graphic = svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Seats sold over time: ${summary}` },
    svg("line", { ...axis, x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }),
    svg("line", { ...axis, x1: pad.l, y1: pad.t, x2: pad.l, y2: H - pad.b }),
    svg("text", { class: "tick", x: pad.l - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
    svg("text", { class: "tick", x: pad.l - 6, y: y(maxSold) + 4, "text-anchor": "end" }, String(maxSold)),
    svg("text", { class: "tick", x: pad.l, y: H - 10, "text-anchor": "start" }, clock(new Date(t0).toISOString())),
    svg("text", { class: "tick", x: W - pad.r, y: H - 10, "text-anchor": "end" }, clock(new Date(t1).toISOString())),
    svg("path", { class: "line", d }),
    points.map((p) => svg("circle", { class: "dot", cx: x(p.t).toFixed(1), cy: y(p.sold).toFixed(1), r: 3 })),
  );
  replace(box, graphic, h("figcaption", {}, summary));
  box.dataset.points = String(points.length);
}
