// Organizers: their events (drafts and the rest), create, edit (If-Match: version), publish,
// cancel (after a confirmation), and links to each event's sales, access codes and waiting list.

import { ApiError, get, idempotent, newIdempotencyKey, request } from "../api.js";
import {
  busy,
  confirmDialog,
  errorBox,
  field,
  flash,
  fromLocalInput,
  h,
  markInvalid,
  notice,
  replace,
  timeEl,
  toLocalInput,
} from "../dom.js";

const STATUSES = ["draft", "published", "completed", "cancelled"];

/** The links between an event's organizer pages; `current` is the one on screen. */
export function eventNav(event, current) {
  const base = `/organizer/events/${encodeURIComponent(event.id)}`;
  const pages = [
    ["edit", `${base}/edit`, "Edit"],
    ["sales", `${base}/sales`, "Sales"],
    ["codes", `${base}/codes`, "Access codes"],
    ["waitlist", `${base}/waitlist`, "Waiting list"],
    ["event", `/events/${encodeURIComponent(event.id)}`, "Event page"],
  ].filter(([name]) => name !== "edit" || event.status === "draft" || event.status === "published");
  return h(
    "nav",
    { class: "event-nav", "aria-label": "This event" },
    h(
      "ul",
      {},
      pages.map(([name, href, text]) => h("li", {}, h("a", { href, "aria-current": name === current ? "page" : null }, text))),
    ),
  );
}
const PAGES_PER_STATUS = 5;

async function myEvents(user, signal) {
  const all = [];
  for (const status of STATUSES) {
    let cursor = null;
    for (let n = 0; n < PAGES_PER_STATUS; n += 1) {
      const params = new URLSearchParams({ status, limit: "100" });
      if (cursor) params.set("cursor", cursor);
      const { data, meta } = await get(`/events?${params}`, { signal });
      all.push(...data.filter((e) => user.role === "admin" || e.organizerId === user.id));
      cursor = meta?.nextCursor;
      if (!cursor) break;
    }
  }
  return all.sort((a, b) => a.startsAt.localeCompare(b.startsAt));
}

export async function dashboard(ctx) {
  document.title = "Organizer · TicketBoss";
  const status = h("div");
  const tbody = h("tbody");
  replace(
    ctx.root,
    h("h1", {}, ctx.user.role === "admin" ? "All events" : "Your events"),
    h("p", { class: "actions" }, h("a", { class: "button primary", href: "/organizer/events/new" }, "Create an event")),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "events cards-on-phone" },
        h("thead", {}, h("tr", {}, ["Event", "Starts", "Status", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        tbody,
      ),
    ),
  );
  const events = await myEvents(ctx.user, ctx.signal);
  if (!events.length) replace(status, h("p", { class: "empty" }, "No events yet."));

  const row = (event) => {
    const tr = h("tr", { dataset: { event: event.id } });
    const draw = (e) => {
      const actions = h("td", { class: "row-actions" });
      if (e.status === "draft") {
        const publish = h("button", { type: "button", class: "primary", "aria-label": `Publish ${e.name}` }, "Publish");
        publish.addEventListener("click", () =>
          busy(publish, async () => {
            try {
              const { data } = await idempotent("POST", `/events/${e.id}/publish`, undefined, newIdempotencyKey());
              flash(`${data.name} is on sale.`);
              draw(data);
            } catch (error) {
              replace(status, errorBox(error));
            }
          }),
        );
        actions.append(publish);
      }
      if (e.status === "draft" || e.status === "published") {
        actions.append(h("a", { href: `/organizer/events/${encodeURIComponent(e.id)}/edit`, "aria-label": `Edit ${e.name}` }, "Edit"));
      }
      const base = `/organizer/events/${encodeURIComponent(e.id)}`;
      actions.append(
        h("a", { href: `${base}/sales`, "aria-label": `Sales of ${e.name}` }, "Sales"),
        h("a", { href: `${base}/codes`, "aria-label": `Access codes of ${e.name}` }, "Codes"),
        h("a", { href: `${base}/waitlist`, "aria-label": `Waiting list of ${e.name}` }, "Waiting list"),
      );
      if (e.status === "draft" || e.status === "published") {
        const cancel = h("button", { type: "button", class: "danger", "aria-label": `Cancel ${e.name}` }, "Cancel");
        cancel.addEventListener("click", async () => {
          const ok = await confirmDialog({
            title: `Cancel ${e.name}?`,
            body: "Sales stop and every booking of this event is released. This cannot be undone.",
            confirmLabel: "Cancel event",
            cancelLabel: "Keep event",
          });
          if (!ok) return;
          await busy(cancel, async () => {
            try {
              const { data } = await idempotent("POST", `/events/${e.id}/cancel`, undefined, newIdempotencyKey());
              flash(`${data.name} is cancelled.`);
              draw(data);
            } catch (error) {
              replace(status, errorBox(error));
            }
          });
        });
        actions.append(cancel);
      }
      replace(
        tr,
        h("th", { scope: "row" }, h("a", { href: `/events/${encodeURIComponent(e.id)}` }, e.name), h("br"), h("small", {}, e.venue)),
        h("td", { dataset: { label: "Starts" } }, timeEl(e.startsAt)),
        h("td", { dataset: { label: "Status" } }, h("span", { class: `badge ${e.status}` }, e.status)),
        actions,
      );
    };
    draw(event);
    return tr;
  };
  tbody.append(...events.map(row));
}

// ---------------------------------------------------------------------------------------------
// Create / edit

function tierRow(tier, { existing, onRemove, index }) {
  const code = h("input", {
    type: "text",
    name: "code",
    value: tier.code ?? "",
    required: true,
    maxlength: 32,
    pattern: "[A-Za-z0-9_\\-]{1,32}",
    readOnly: existing,
    autocapitalize: "characters",
  });
  const name = h("input", { type: "text", name: "name", value: tier.name ?? "", required: true, maxlength: 100 });
  const price = h("input", {
    type: "number",
    name: "priceCents",
    min: 0,
    step: "0.01",
    value: tier.priceCents !== undefined ? (tier.priceCents / 100).toFixed(2) : "",
    required: true,
    inputmode: "decimal",
  });
  const capacity = h("input", { type: "number", name: "capacity", min: 0, step: 1, value: tier.capacity ?? "", required: true });
  const hiddenId = `hidden-${Math.random().toString(36).slice(2, 9)}`;
  const hidden = h("input", {
    type: "checkbox",
    name: "hidden",
    id: hiddenId,
    checked: Boolean(tier.hidden),
    "aria-describedby": `${hiddenId}-hint`,
  });
  const legend = h("legend", {}, `Tier ${index}`);
  const remove = existing
    ? null
    : h("button", { type: "button", class: "link", onclick: () => onRemove(fieldset) }, `Remove tier ${index}`);
  const fieldset = h(
    "fieldset",
    { class: "tier-row" },
    legend,
    field("Code", code, existing ? "Codes of saved tiers cannot change." : "Letters, digits, - or _; e.g. GA, VIP"),
    field("Name", name),
    field("Price (USD)", price),
    field("Capacity", capacity),
    h(
      "div",
      { class: "field" },
      h("label", { class: "check" }, hidden, " Hidden (unlisted)"),
      h("small", { class: "hint", id: `${hiddenId}-hint` }, "Sold only with an access code"),
    ),
    remove,
  );
  fieldset.read = () => ({
    code: code.value.trim(),
    name: name.value.trim(),
    priceCents: Math.round(Number.parseFloat(price.value || "0") * 100),
    capacity: Number.parseInt(capacity.value || "0", 10),
    hidden: hidden.checked,
  });
  fieldset.renumber = (i) => {
    legend.textContent = `Tier ${i}`;
    if (remove) remove.textContent = `Remove tier ${i}`;
  };
  return fieldset;
}

export async function editor(ctx) {
  const [eventId] = ctx.params;
  let event = null;
  if (eventId) ({ data: event } = await get(`/events/${encodeURIComponent(eventId)}`, { signal: ctx.signal }));
  document.title = `${event ? "Edit event" : "Create an event"} · TicketBoss`;

  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200, value: event?.name ?? "" });
  const venue = h("input", { type: "text", name: "venue", required: true, maxlength: 200, value: event?.venue ?? "" });
  const startsAt = h("input", { type: "datetime-local", name: "startsAt", required: true, value: toLocalInput(event?.startsAt) });
  const endsAt = h("input", { type: "datetime-local", name: "endsAt", value: toLocalInput(event?.endsAt) });
  const description = h("textarea", { name: "description", rows: 4, maxlength: 5000 }, event?.description ?? "");
  const maxPerUser = h("input", { type: "number", name: "maxPerUser", min: 1, max: 100, step: 1, value: event?.maxPerUser ?? "" });
  const tiersBox = h("div", { class: "tiers-box" });
  const errors = h("div");
  const submit = h("button", { type: "submit", class: "primary" }, event ? "Save changes" : "Create draft");

  const renumber = () => [...tiersBox.children].forEach((f, i) => f.renumber(i + 1));
  const addTier = (tier = {}, existing = false) => {
    tiersBox.append(
      tierRow(tier, {
        existing,
        index: tiersBox.children.length + 1,
        onRemove: (fieldset) => {
          fieldset.remove();
          renumber();
        },
      }),
    );
  };
  if (event) for (const t of event.tiers) addTier(t, true);
  else addTier({ code: "GA", name: "General Admission" });
  const add = h("button", { type: "button", onclick: () => {
    addTier();
    tiersBox.lastElementChild.querySelector("input").focus();
  } }, "Add a tier");

  const form = h(
    "form",
    { class: "stack event-form" },
    errors,
    field("Event name", name),
    field("Venue", venue),
    h("div", { class: "two" }, field("Starts at", startsAt, "Your local time"), field("Ends at (optional)", endsAt)),
    field("Description (optional)", description),
    field("Most tickets one buyer may hold (optional)", maxPerUser),
    h("fieldset", { class: "tiers-fieldset" }, h("legend", {}, "Ticket tiers"), tiersBox, add),
    h("div", { class: "actions" }, submit, h("a", { href: "/organizer" }, "Back to your events")),
  );

  let attemptKey = null; // one Idempotency-Key per attempt to create, reused on retries
  form.addEventListener("input", () => {
    attemptKey = null;
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    const body = {
      name: name.value.trim(),
      venue: venue.value.trim(),
      startsAt: fromLocalInput(startsAt.value),
      endsAt: fromLocalInput(endsAt.value),
      description: description.value.trim() || null,
      maxPerUser: maxPerUser.value ? Number.parseInt(maxPerUser.value, 10) : null,
      tiers: [...tiersBox.children].map((f) => f.read()),
    };
    if (!event) {
      if (!body.endsAt) delete body.endsAt;
      if (!body.description) delete body.description;
      if (!body.maxPerUser) delete body.maxPerUser;
    }
    attemptKey ??= newIdempotencyKey();
    await busy(
      submit,
      async () => {
        try {
          if (event) {
            const { data } = await request("PATCH", `/events/${encodeURIComponent(event.id)}`, {
              body,
              headers: { "If-Match": `"${event.version}"` },
              idempotencyKey: attemptKey,
            });
            flash(`Saved ${data.name}.`);
          } else {
            const { data } = await idempotent("POST", "/events", body, attemptKey);
            flash(`Draft “${data.name}” created. Publish it to open sales.`);
          }
          ctx.navigate("/organizer");
        } catch (error) {
          if (!(error instanceof ApiError) || !error.retryable) attemptKey = null;
          markInvalid(form, error);
          if (error.status === 412) {
            replace(
              errors,
              errorBox(error),
              notice("Someone changed this event after you opened it. Reload to see their version, then edit again.", "error"),
              h("p", {}, h("a", { href: location.pathname }, "Reload the event")),
            );
          } else {
            replace(errors, errorBox(error));
          }
          errors.scrollIntoView({ block: "nearest" });
        }
      },
      event ? "Saving…" : "Creating…",
    );
  });

  replace(
    ctx.root,
    h("h1", {}, event ? `Edit ${event.name}` : "Create an event"),
    event ? h("p", { class: "meta" }, `Status: ${event.status} · version ${event.version}`) : h("p", { class: "meta" }, "It starts as a draft: nobody sees it until you publish it."),
    event ? eventNav(event, "edit") : null,
    form,
  );
  name.focus();
}
