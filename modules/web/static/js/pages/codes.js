// An event's access codes (organizer, admin): the list with uses, create (validity window,
// tiers, hidden tiers, reserveSeats, discountPercent, maxUses), edit, disable and enable again.
// The list reloads when the event's seats change (a redemption is a booking), so uses stay live.

import { get, patch, post, request } from "../api.js";
import { busy, errorBox, field, flash, fromLocalInput, h, markInvalid, notice, replace, timeEl, toLocalInput } from "../dom.js";
import { watchAvailability } from "../live.js";
import { eventNav } from "./organizer.js";

export async function page(ctx) {
  const [eventId] = ctx.params;
  const path = `/events/${encodeURIComponent(eventId)}`;
  const { data: event } = await get(path, { signal: ctx.signal });
  document.title = `Access codes of ${event.name} · TicketBoss`;
  const tierNames = new Map(event.tiers.map((t) => [t.code, t.name]));

  const status = h("div");
  const tbody = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap", hidden: true },
    h(
      "table",
      { class: "codes cards-on-phone" },
      h(
        "thead",
        {},
        h("tr", {}, ["Code", "Tiers", "Uses", "Discount", "Valid", "Seats held", "Status", "Actions"].map((t) => h("th", { scope: "col" }, t))),
      ),
      tbody,
    ),
  );
  const created = h("div", { "aria-live": "polite" });
  replace(
    ctx.root,
    h("h1", {}, `Access codes · ${event.name}`),
    h("p", { class: "meta" }, timeEl(event.startsAt), " · ", event.venue, " · ", h("span", { class: `badge ${event.status}` }, event.status)),
    eventNav(event, "codes"),
    h("p", { class: "hint" }, "A code unlocks its tiers (hidden ones too) for as many bookings as it allows; a cancelled booking gives its use back."),
    status,
    table,
    h("h2", { id: "new-code-title" }, "Create a code"),
    created,
    createForm(),
  );

  // --- the list --------------------------------------------------------------------------------
  let codes = [];
  const draw = () => {
    replace(tbody, codes.map(row));
    table.hidden = !codes.length;
    if (!codes.length) replace(status, h("p", { class: "empty" }, "No codes yet."));
    else if (status.querySelector(".empty")) status.replaceChildren();
  };
  let loading = false;
  let again = false;
  const load = async () => {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      codes = (await get(`${path}/codes`, { signal: ctx.signal })).data;
      draw();
    } catch (error) {
      if (error?.name !== "AbortError") replace(status, errorBox(error));
    } finally {
      loading = false;
      if (again && !ctx.signal.aborted) {
        again = false;
        load();
      }
    }
  };

  function row(c) {
    const tiers = c.tiers.map((t) => tierNames.get(t) ?? t).join(", ");
    const valid = [
      c.validFrom ? ["from ", timeEl(c.validFrom)] : null,
      c.validFrom && c.validUntil ? h("br") : null,
      c.validUntil ? ["until ", timeEl(c.validUntil)] : null,
    ];
    const actions = h("td", { class: "row-actions" });
    const edit = h("button", { type: "button", "aria-label": `Edit code ${c.code}` }, "Edit");
    edit.addEventListener("click", () => editDialog(c));
    const toggle = h(
      "button",
      { type: "button", class: c.enabled ? "danger" : null, "aria-label": `${c.enabled ? "Disable" : "Enable"} code ${c.code}` },
      c.enabled ? "Disable" : "Enable",
    );
    toggle.addEventListener("click", () =>
      busy(toggle, async () => {
        status.replaceChildren();
        try {
          const url = `${path}/codes/${encodeURIComponent(c.id)}`;
          const { data } = c.enabled ? await request("DELETE", url) : await patch(url, { enabled: true });
          flash(`Code ${data.code} is ${data.enabled ? "enabled" : "disabled"}.`);
          codes = codes.map((x) => (x.id === data.id ? data : x));
          draw();
        } catch (error) {
          replace(status, errorBox(error));
        }
      }),
    );
    actions.append(edit, toggle);
    const cells = [
      [h("th", { scope: "row" }, h("code", {}, c.code)), null],
      [h("td", {}, tiers), "Tiers"],
      [h("td", { class: "num uses" }, `${c.uses} / ${c.maxUses}`), "Uses"],
      [h("td", { class: "num" }, c.discountPercent ? `${c.discountPercent}%` : "—"), "Discount"],
      [h("td", {}, c.validFrom || c.validUntil ? valid : "Always"), "Valid"],
      [h("td", { class: "num" }, c.reserveSeats ? String(c.heldSeats) : "—"), "Seats held"],
      [h("td", {}, h("span", { class: `badge ${c.enabled ? "confirmed" : "cancelled"}` }, c.enabled ? "enabled" : "disabled")), "Status"],
    ];
    for (const [cell, label] of cells) if (label) cell.dataset.label = label;
    return h("tr", { dataset: { code: c.code } }, cells.map(([cell]) => cell), actions);
  }

  // --- create ----------------------------------------------------------------------------------
  function createForm() {
    const code = h("input", { type: "text", name: "code", required: true, maxlength: 64, pattern: "[A-Za-z0-9_\\-]{3,64}", autocapitalize: "characters", autocomplete: "off", spellcheck: false });
    const maxUses = h("input", { type: "number", name: "maxUses", min: 1, max: 100000, step: 1, value: 10, required: true });
    const discount = h("input", { type: "number", name: "discountPercent", min: 0, max: 100, step: 1, value: 0 });
    const validFrom = h("input", { type: "datetime-local", name: "validFrom" });
    const validUntil = h("input", { type: "datetime-local", name: "validUntil" });
    const reserve = h("input", { type: "checkbox", name: "reserveSeats" });
    const boxes = event.tiers.map((t) => ({
      code: t.code,
      input: h("input", { type: "checkbox", name: "tiers", value: t.code, checked: event.tiers.length === 1 }),
      tier: t,
    }));
    const errors = h("div");
    const submit = h("button", { type: "submit", class: "primary" }, "Create code");
    const form = h(
      "form",
      { class: "stack code-form", "aria-labelledby": "new-code-title", noValidate: true },
      errors,
      h("div", { class: "two" }, field("Code", code, "3 to 64 letters, digits, - or _"), field("Uses allowed", maxUses, "How many bookings may use it")),
      h(
        "fieldset",
        { class: "checks" },
        h("legend", {}, "Tiers it unlocks"),
        boxes.map(({ input, tier }) =>
          h("label", { class: "check" }, input, ` ${tier.name} `, h("span", { class: "code" }, tier.code), tier.hidden ? h("small", {}, " · hidden: sold only with a code") : null),
        ),
      ),
      h("div", { class: "two" }, field("Valid from (optional)", validFrom, "Your local time"), field("Valid until (optional)", validUntil)),
      field("Discount (%)", discount, "0 for none"),
      h(
        "div",
        { class: "field" },
        h("label", { class: "check" }, reserve, " Hold seats back for the code's holders"),
        h("small", { class: "hint" }, "One tier only: as many of its seats as uses allowed stay off public sale while the code is valid."),
      ),
      h("div", { class: "actions" }, submit),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errors.replaceChildren();
      created.replaceChildren();
      const body = {
        code: code.value.trim(),
        maxUses: Number.parseInt(maxUses.value, 10) || 0,
        tiers: boxes.filter((b) => b.input.checked).map((b) => b.code),
        discountPercent: Number.parseInt(discount.value || "0", 10) || 0,
        reserveSeats: reserve.checked,
      };
      if (validFrom.value) body.validFrom = fromLocalInput(validFrom.value);
      if (validUntil.value) body.validUntil = fromLocalInput(validUntil.value);
      if (!body.tiers.length) {
        replace(errors, notice("Choose at least one tier the code unlocks.", "error"));
        return;
      }
      // Not retried: a code is unique per event, so a second try after a lost answer would
      // only be told ACCESS_CODE_TAKEN.
      await busy(
        submit,
        async () => {
          try {
            const { data } = await post(`${path}/codes`, body);
            markInvalid(form, null);
            replace(created, notice(`Code ${data.code} created: ${data.maxUses} uses.`, "success"));
            form.reset();
            maxUses.value = 10;
            codes = [...codes.filter((c) => c.id !== data.id), data];
            draw();
          } catch (error) {
            markInvalid(form, error);
            replace(errors, errorBox(error));
          }
        },
        "Creating…",
      );
    });
    return form;
  }

  // --- edit ------------------------------------------------------------------------------------
  function editDialog(c) {
    const maxUses = h("input", { type: "number", name: "maxUses", min: 1, max: 100000, step: 1, value: c.maxUses, required: true });
    const discount = h("input", { type: "number", name: "discountPercent", min: 0, max: 100, step: 1, value: c.discountPercent });
    const validFrom = h("input", { type: "datetime-local", name: "validFrom", value: toLocalInput(c.validFrom) });
    const validUntil = h("input", { type: "datetime-local", name: "validUntil", value: toLocalInput(c.validUntil) });
    const errors = h("div");
    const save = h("button", { type: "submit", class: "primary" }, "Save code");
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h(
      "form",
      { class: "stack", noValidate: true },
      errors,
      field("Uses allowed", maxUses, `Used ${c.uses} times so far`),
      field("Discount (%)", discount),
      field("Valid from (optional)", validFrom, "Empty: from now on"),
      field("Valid until (optional)", validUntil, "Empty: until the event"),
      h("div", { class: "actions" }, cancel, save),
    );
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "edit-code-title" }, h("h2", { id: "edit-code-title" }, `Edit code ${c.code}`), form);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errors.replaceChildren();
      const body = {
        maxUses: Number.parseInt(maxUses.value, 10) || 0,
        discountPercent: Number.parseInt(discount.value || "0", 10) || 0,
        validFrom: fromLocalInput(validFrom.value),
        validUntil: fromLocalInput(validUntil.value),
      };
      await busy(
        save,
        async () => {
          try {
            const { data } = await patch(`${path}/codes/${encodeURIComponent(c.id)}`, body);
            flash(`Saved code ${data.code}.`);
            codes = codes.map((x) => (x.id === data.id ? data : x));
            draw();
            dialog.close();
          } catch (error) {
            markInvalid(form, error);
            replace(errors, errorBox(error));
          }
        },
        "Saving…",
      );
    });
    document.body.append(dialog);
    dialog.showModal();
    maxUses.focus();
  }

  await load();
  const live = watchAvailability(event.id, () => load());
  ctx.signal.addEventListener("abort", () => live.stop());
}
