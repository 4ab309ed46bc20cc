// Live availability of one event: the Server-Sent Events stream
// (GET /events/{id}/availability/stream, `event: availability`) when the server has it, else
// polling GET /events/{id}/availability every 2 s. EventSource reconnects by itself after a
// dropped connection; an answer that is not a stream (404 on a server without it, or a draft
// the anonymous stream may not show) closes it, and polling takes over.

import { get } from "./api.js";

const POLL_MS = 2000;

/**
 * watch(eventId, onData, { onMode }) → { stop(), now() }.
 * onData(availability) gets the same JSON as GET …/availability's `data`.
 * onMode("live" | "polling" | "offline") tells how fresh the numbers are.
 */
export function watchAvailability(eventId, onData, { onMode = () => {} } = {}) {
  const path = `/events/${encodeURIComponent(eventId)}/availability`;
  let stopped = false;
  let source = null;
  let timer = null;
  let lastAsOf = "";

  const deliver = (data) => {
    if (stopped || !data) return;
    if (data.asOf && lastAsOf && data.asOf < lastAsOf) return; // an older answer arrived late
    lastAsOf = data.asOf || lastAsOf;
    onData(data);
  };

  const fetchOnce = async () => {
    try {
      const { data } = await get(path);
      deliver(data);
      return true;
    } catch {
      return false;
    }
  };

  const poll = async () => {
    timer = null;
    if (stopped) return;
    const ok = await fetchOnce();
    if (stopped) return;
    onMode(ok ? "polling" : "offline");
    timer = setTimeout(poll, POLL_MS);
  };

  const startPolling = () => {
    if (!stopped && timer === null) poll();
  };

  if (typeof EventSource === "function") {
    source = new EventSource(`/api/v1${path}/stream`);
    source.addEventListener("availability", (message) => {
      onMode("live");
      try {
        deliver(JSON.parse(message.data));
      } catch {
        /* a malformed frame: the next one will do */
      }
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        source = null;
        startPolling();
      } else {
        onMode("offline"); // reconnecting by itself
      }
    });
  } else {
    startPolling();
  }

  return {
    stop() {
      stopped = true;
      source?.close();
      clearTimeout(timer);
    },
    /** Fetch now (after this browser's own booking, say): the API shows its own change at once. */
    now: fetchOnce,
  };
}
