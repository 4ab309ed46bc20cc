// An event's waiting room on its page: join, your place (position, how many ahead, ETA),
// kept live by polling …/queue/me every 2 s (EventSource cannot send the bearer token), and
// "You're in": the admission token the booking requests then carry as Admission-Token.

import { ApiError, get, post } from "../api.js";
import { busy, countdown, errorBox, h, notice, replace, timeEl } from "../dom.js";

const POLL_MS = 2000;

/**
 * waitingRoom(event, { signal, onAdmitted }) → { element, token() }.
 * onAdmitted() is called once, when the buyer's admission starts.
 */
export function waitingRoom(event, { signal, onAdmitted }) {
  const path = `/events/${encodeURIComponent(event.id)}/queue`;
  const status = h("div", { class: "queue-status", "aria-live": "polite" });
  const errors = h("div");
  const element = h(
    "section",
    { class: "hold queue", "aria-labelledby": "queue-title" },
    h("h2", { id: "queue-title" }, "Waiting room"),
    h(
      "p",
      { class: "hint" },
      "This on-sale is queued. Everyone who joins before ",
      timeEl(event.queue.opensAt),
      " gets a place drawn at random at that moment; later arrivals line up behind them.",
    ),
    status,
    errors,
  );
  let place = null;
  let timer = null;
  let admitted = false;
  signal.addEventListener("abort", () => clearTimeout(timer));

  const show = () => {
    if (!place) {
      const join = h("button", { type: "button", class: "primary" }, "Join the waiting room");
      join.addEventListener("click", () =>
        busy(
          join,
          async () => {
            errors.replaceChildren();
            try {
              place = (await post(path, undefined, { signal })).data;
              show();
              schedule();
            } catch (error) {
              replace(errors, errorBox(error));
            }
          },
          "Joining…",
        ),
      );
      replace(status, h("p", { class: "actions" }, join));
      return;
    }
    switch (place.state) {
      case "prequeue":
        replace(status, notice("You are in the pre-queue. Your place is drawn when the waiting room opens."));
        break;
      case "waiting":
        replace(
          status,
          h(
            "p",
            { class: "queue-place" },
            "Your place: ",
            h("strong", { class: "queue-position" }, `#${place.position}`),
            ` · ${place.ahead} ahead of you`,
            place.etaSeconds === null ? " · admission is paused" : ` · about ${countdown(place.etaSeconds * 1000)} to go`,
          ),
          h("p", { class: "live-status" }, "Live · updated every 2 s"),
        );
        break;
      case "admitted":
        replace(
          status,
          notice("You're in! Choose your seats and book now.", "success"),
          h("p", {}, "Your admission lasts until ", timeEl(place.admittedUntil, new Date(place.admittedUntil).toLocaleTimeString()), "."),
        );
        if (!admitted) {
          admitted = true;
          onAdmitted();
        }
        break;
      default:
        replace(status, notice("Your admission has ended.", "error"));
    }
  };

  const schedule = () => {
    clearTimeout(timer);
    if (signal.aborted || !place || place.state === "expired") return;
    timer = setTimeout(refresh, place.state === "admitted" ? 10 * POLL_MS : POLL_MS);
  };

  const refresh = async () => {
    try {
      place = (await get(`${path}/me`, { signal })).data;
      errors.replaceChildren();
    } catch (error) {
      if (error?.name === "AbortError") return;
      if (error instanceof ApiError && error.code === "NOT_IN_QUEUE") place = null;
      else replace(errors, errorBox(error));
    }
    show();
    schedule();
  };

  refresh();
  return { element, token: () => (place?.state === "admitted" ? place.admissionToken : null) };
}
