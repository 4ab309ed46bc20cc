// The events list: search (q) and cursor pagination ("More events").

import { get } from "../api.js";
import { busy, errorBox, h, money, replace, timeEl } from "../dom.js";

const PAGE_SIZE = 12;

function card(event) {
  const prices = event.tiers.map((t) => t.priceCents);
  const available = event.tiers.reduce((sum, t) => sum + t.available, 0);
  const from = prices.length ? Math.min(...prices) : null;
  return h(
    "li",
    { class: "card" },
    h("h2", {}, h("a", { href: `/events/${encodeURIComponent(event.id)}` }, event.name)),
    h("p", { class: "meta" }, timeEl(event.startsAt), " · ", event.venue),
    h(
      "p",
      { class: "meta" },
      from !== null ? `From ${money(from, event.tiers[0]?.currency)}` : "",
      " · ",
      available > 0 ? `${available} seats left` : h("strong", {}, "Sold out"),
    ),
  );
}

export async function page(ctx) {
  const q = (ctx.query.get("q") || "").trim();
  document.title = q ? `“${q}” · Events · TicketBoss` : "Events · TicketBoss";
  const search = h("input", { type: "search", name: "q", value: q, maxlength: 200, autocomplete: "off" });
  const form = h(
    "form",
    { class: "search", role: "search" },
    h("label", { for: "event-search" }, "Search events"),
    h("div", { class: "row" }, Object.assign(search, { id: "event-search" }), h("button", { type: "submit" }, "Search")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = search.value.trim();
    ctx.navigate(value ? `/?q=${encodeURIComponent(value)}` : "/");
  });
  const list = h("ul", { class: "cards", "aria-live": "polite" });
  const status = h("div");
  const more = h("button", { type: "button", hidden: true }, "More events");
  replace(
    ctx.root,
    h("h1", {}, q ? `Events matching “${q}”` : "Events"),
    form,
    status,
    list,
    h("div", { class: "actions" }, more),
  );

  let cursor = null;
  const load = async () => {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (q) params.set("q", q);
    if (cursor) params.set("cursor", cursor);
    try {
      const { data, meta } = await get(`/events?${params}`, { signal: ctx.signal });
      list.append(...data.map(card));
      cursor = meta?.nextCursor ?? null;
      more.hidden = !cursor;
      if (!list.children.length) {
        replace(status, h("p", { class: "empty" }, q ? "No event matches your search." : "No events on sale yet."));
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(status, errorBox(error));
    }
  };
  more.addEventListener("click", () => busy(more, load, "Loading…"));
  await load();
}
