// DOM helpers: build elements without innerHTML (no markup from data), format money and dates,
// show errors in words. Event handlers are attached with addEventListener, never inline.

import { ApiError } from "./api.js";

/**
 * h("button", { class: "primary", onclick: fn, disabled: true }, "Book") → <button>.
 * Attributes starting with "on" become listeners; `dataset` and boolean props are handled.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (name === "text") {
      el.textContent = value;
    } else if (name === "for") {
      el.htmlFor = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (name in el && !name.includes("-") && name !== "list" && name !== "form") {
      el[name] = value;
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function money(cents, currency = "USD") {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "";
}

export function clock(iso) {
  return iso ? timeOnly.format(new Date(iso)) : "";
}

export function timeEl(iso, text = when(iso)) {
  return h("time", { datetime: iso }, text);
}

/** "9:59" from milliseconds left. */
export function countdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

/** datetime-local value ("2025-06-01T20:00") for an ISO instant, in this browser's zone. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}

// ---------------------------------------------------------------------------------------------
// Errors, messages, dialogs

/** The words for an error: the API's message, its field errors, and when to retry on a 429. */
export function describe(error) {
  if (!(error instanceof ApiError)) {
    return { message: error?.message || "Something went wrong.", details: [] };
  }
  const details = error.errors.map((e) => (e.field && e.field !== "body" ? `${e.field}: ${e.message}` : e.message));
  if (Array.isArray(error.body?.tiers)) {
    for (const t of error.body.tiers) {
      details.push(`${t.tier}: ${t.requested} requested, ${t.available} available`);
    }
  }
  if (error.status === 429) {
    details.push(
      error.retryAfter !== null
        ? `Try again in ${error.retryAfter} s.`
        : "Try again in a little while.",
    );
  }
  return { message: error.message, details };
}

/** An alert box for an error (role="alert": read out at once). */
export function errorBox(error) {
  const { message, details } = describe(error);
  return h(
    "div",
    { class: "notice error", role: "alert" },
    h("p", {}, message),
    details.length ? h("ul", {}, details.map((d) => h("li", {}, d))) : null,
  );
}

export function notice(text, kind = "info") {
  return h("div", { class: `notice ${kind}`, role: "status" }, text);
}

/** Mark the inputs named in the error's field list as invalid (aria-invalid). */
export function markInvalid(form, error) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  if (!(error instanceof ApiError)) return;
  for (const { field } of error.errors) {
    const name = String(field || "").split(".").pop();
    const input = name && form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  }
}

let flashTimer = null;

/** A short message in the page's live region: it stays for the next page, then goes. */
export function flash(text, kind = "success") {
  const box = document.getElementById("flash");
  if (!box) return;
  clearTimeout(flashTimer);
  replace(box, h("p", { class: `notice ${kind}` }, text));
  box.dataset.pages = "0";
  flashTimer = setTimeout(() => box.replaceChildren(), 8000);
}

/** Called on every navigation: a flash outlives one page change, not two. */
export function ageFlash() {
  const box = document.getElementById("flash");
  if (!box?.firstChild) return;
  const pages = Number(box.dataset.pages || "0") + 1;
  box.dataset.pages = String(pages);
  if (pages > 1) box.replaceChildren();
}

/**
 * A modal confirmation (<dialog>): resolves true when confirmed. Keyboard: Esc cancels,
 * focus starts on the safe choice.
 */
export function confirmDialog({ title, body, confirmLabel, cancelLabel = "Keep it", danger = true }) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", value: "cancel" }, cancelLabel);
    const ok = h("button", { type: "button", class: danger ? "danger" : "primary", value: "ok" }, confirmLabel);
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "dialog-title" },
      h("h2", { id: "dialog-title" }, title),
      body ? h("p", {}, body) : null,
      h("div", { class: "actions" }, cancel, ok),
    );
    let result = false;
    ok.addEventListener("click", () => {
      result = true;
      dialog.close();
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Run `action` with the button disabled (and marked busy) until it settles. */
export async function busy(button, action, busyText) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (busyText) button.textContent = busyText;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    if (busyText) button.textContent = label;
  }
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}
