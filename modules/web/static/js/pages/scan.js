// The door: a scanner device (its token from the organizer) checks tickets in. The camera reads
// QR codes through the browser's BarcodeDetector where there is one; typing or pasting the code
// works everywhere. The token stays in this tab (sessionStorage), never in the account session.

import { request } from "../api.js";
import { h, replace } from "../dom.js";

const TOKEN_KEY = "ticketboss.scannerToken";
const ANSWERS = {
  ok: ["Welcome in", "ok"],
  already_used: ["Already used", "bad"],
  revoked: ["Revoked ticket", "bad"],
  unknown: ["Not a ticket for this event", "bad"],
  wrong_list: ["Wrong entrance", "warn"],
  not_yet_valid: ["Not open yet", "warn"],
};

function nonce() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function asScanner(token) {
  return { auth: false, headers: { Authorization: `Bearer ${token}` } };
}

export async function page(ctx) {
  document.title = "Scanner · TicketBoss";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return tokenForm(ctx);
  let lists;
  try {
    ({ data: lists } = await request("GET", "/checkin/lists", { ...asScanner(token), signal: ctx.signal }));
  } catch (error) {
    if (error.name === "AbortError") throw error;
    sessionStorage.removeItem(TOKEN_KEY);
    return tokenForm(ctx, error.message);
  }
  return scanner(ctx, token, lists);
}

function tokenForm(ctx, problem = null) {
  const input = h("input", { id: "scanner-token", name: "token", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "scan-token" },
    h("h1", {}, "Scanner"),
    problem ? h("p", { role: "alert", class: "error" }, problem) : null,
    h("label", { for: "scanner-token" }, "Device token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Start scanning"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    page(ctx);
  });
  replace(ctx.root, form);
}

function scanner(ctx, token, lists) {
  const select = h(
    "select",
    { id: "scan-list", name: "list" },
    lists.map((l) => h("option", { value: l.id }, l.name)),
  );
  const answer = h("output", { class: "scan-answer", role: "status", "aria-live": "assertive", "aria-label": "Scan answer" }, "Ready");
  const code = h("input", { id: "scan-code", name: "qr", autocomplete: "off", required: true });
  const direction = h(
    "select",
    { id: "scan-type", name: "type" },
    h("option", { value: "entry" }, "Entry"),
    h("option", { value: "exit" }, "Exit"),
  );
  let busy = false;
  async function redeem(qr) {
    if (busy || !qr) return;
    busy = true;
    answer.className = "scan-answer";
    answer.textContent = "Checking…";
    try {
      const body = { list: select.value, qr, nonce: nonce(), type: direction.value };
      const { data } = await request("POST", "/checkin/redeem", { ...asScanner(token), body });
      const [text, tone] = ANSWERS[data.result] ?? [data.result, "bad"];
      answer.className = `scan-answer ${tone}`;
      answer.dataset.result = data.result;
      const seat = data.ticket ? ` · ${data.ticket.tier} · ${data.ticket.ticketNumber}/${data.ticket.seat}` : "";
      answer.textContent = text + seat;
    } catch (error) {
      answer.className = "scan-answer bad";
      answer.dataset.result = "error";
      answer.textContent = error.message;
    } finally {
      busy = false;
    }
  }
  const form = h(
    "form",
    { class: "scan-manual" },
    h("label", { for: "scan-code" }, "Ticket code"),
    code,
    h("button", { type: "submit", class: "primary" }, "Check ticket"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    redeem(code.value.trim());
    code.value = "";
  });
  const camera = h("div", { class: "scan-camera" });
  if ("BarcodeDetector" in window) camera.append(cameraButton(ctx, redeem));
  const leave = h("button", { type: "button" }, "Sign out this device");
  leave.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    page(ctx);
  });
  replace(
    ctx.root,
    h(
      "section",
      { class: "scan" },
      h("h1", {}, "Scanner"),
      lists.length ? null : h("p", { role: "alert", class: "error" }, "This event has no check-in list yet."),
      h("label", { for: "scan-list" }, "Check-in list"),
      select,
      h("label", { for: "scan-type" }, "Direction"),
      direction,
      answer,
      camera,
      form,
      leave,
    ),
  );
}

function cameraButton(ctx, redeem) {
  const video = h("video", { playsinline: true, muted: true, class: "scan-video" });
  const start = h("button", { type: "button" }, "Use camera");
  start.addEventListener("click", async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    ctx.signal.addEventListener("abort", () => stream.getTracks().forEach((t) => t.stop()));
    video.srcObject = stream;
    await video.play();
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    let last = "";
    const tick = async () => {
      if (ctx.signal.aborted) return;
      const [found] = await detector.detect(video).catch(() => []);
      if (found && found.rawValue !== last) {
        last = found.rawValue;
        await redeem(found.rawValue);
      }
      setTimeout(tick, 250);
    };
    tick();
  });
  return h("div", {}, start, video);
}
