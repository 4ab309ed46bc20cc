// The front's only way to the server: the public JSON API under /api/v1.
//
// Tokens: the access token lives in this module's memory only; the refresh token lives in an
// httpOnly, Secure, SameSite=Strict cookie the server sets for the refresh and logout paths
// (asked for with the X-TicketBoss-Client header), so no script on the page can read it.
// sessionStorage keeps only a flag, "this tab has a session", so a reload or a printed ticket
// does not log the buyer out. Nothing is written to localStorage. See README ("Web front").

const BASE = "/api/v1";
const SESSION_KEY = "ticketboss.session";
const WEB = { "X-TicketBoss-Client": "web" };
const EARLY_REFRESH_MS = 60_000; // rotate a minute before the access token expires

let access = null; // { token, expiresAt } (expiresAt in this browser's clock, ms)
let refreshTimer = null;
let refreshing = null; // the one refresh in flight: a spent refresh token revokes the session
let user = null;
const sessionListeners = new Set();

export class ApiError extends Error {
  constructor(status, body = {}, headers = null) {
    super(body.message || `The server answered ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code || (status === 0 ? "NETWORK_ERROR" : "HTTP_ERROR");
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    this.requestId = body.requestId || null;
    this.body = body;
    const retryAfter = headers ? Number.parseInt(headers.get("Retry-After") || "", 10) : NaN;
    this.retryAfter = Number.isFinite(retryAfter) ? retryAfter : null;
  }

  /** Outcome unknown (no answer, or the server could not finish): retrying with the same key is safe. */
  get retryable() {
    return (
      this.status === 0 ||
      this.status >= 500 ||
      this.code === "IDEMPOTENCY_REQUEST_IN_PROGRESS"
    );
  }
}

function networkError() {
  return new ApiError(0, {
    message: "Could not reach TicketBoss. Check your connection and try again.",
    code: "NETWORK_ERROR",
  });
}

/** A fresh Idempotency-Key (crypto.randomUUID needs a secure context; fall back to getRandomValues). */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// Session

export function currentUser() {
  return user;
}

export function onSessionChange(listener) {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

function notify() {
  for (const listener of sessionListeners) listener(user);
}

function hasSession() {
  try {
    return sessionStorage.getItem(SESSION_KEY) === "1" || access !== null;
  } catch {
    return access !== null; // storage disabled: the session lasts as long as the page
  }
}

function keep(pair) {
  access = { token: pair.accessToken, expiresAt: Date.now() + pair.expiresIn * 1000 };
  try {
    sessionStorage.setItem(SESSION_KEY, "1");
  } catch {
    /* storage disabled */
  }
  clearTimeout(refreshTimer);
  const delay = Math.max(5_000, pair.expiresIn * 1000 - EARLY_REFRESH_MS);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

function forget() {
  access = null;
  clearTimeout(refreshTimer);
  try {
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    /* storage disabled */
  }
  const had = user !== null;
  user = null;
  if (had) notify();
}

/** Rotate the refresh token (POST /auth/refresh); true when a new pair was obtained. */
export function refresh() {
  refreshing ??= rotate().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function rotate() {
  if (!hasSession()) return false;
  let response;
  try {
    response = await fetch(`${BASE}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...WEB },
      body: "{}",
      credentials: "same-origin",
    });
  } catch {
    return false; // offline: keep the refresh token for the next try
  }
  const body = await readJson(response);
  if (response.ok && body?.success) {
    keep(body.data);
    return true;
  }
  if (response.status === 401 || response.status === 422) forget(); // spent, revoked or expired
  return false;
}

/** Restore the session of this tab (after a reload) and load the user. */
export async function restoreSession() {
  if (!hasSession()) return null;
  if (!(await refresh())) return null;
  try {
    user = (await request("GET", "/auth/me")).data;
  } catch {
    user = null;
  }
  notify();
  return user;
}

async function startSession(pair) {
  keep(pair);
  user = pair.user ?? (await request("GET", "/auth/me")).data;
  notify();
  return user;
}

export async function login(email, password) {
  const { data } = await request("POST", "/auth/login", { body: { email, password }, auth: false });
  return startSession(data);
}

export async function register(name, email, password) {
  const { data } = await request("POST", "/auth/register", {
    body: { name, email, password },
    auth: false,
  });
  return startSession(data);
}

export async function logout() {
  try {
    if (access) await request("POST", "/auth/logout", { body: {} });
  } catch {
    /* the tokens are dropped below either way */
  } finally {
    forget();
  }
}

/** A new password (the current one is required): the other sessions end, this one goes on. */
export async function changePassword(currentPassword, newPassword) {
  const { data } = await request("POST", "/auth/change-password", {
    body: { currentPassword, newPassword },
  });
  return startSession(data);
}

/** Reload the current user (after a role change, say). */
export async function reloadUser() {
  if (!hasSession()) return null;
  user = (await request("GET", "/auth/me")).data;
  notify();
  return user;
}

// ---------------------------------------------------------------------------------------------
// Requests

async function readJson(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * One API call. Resolves to { data, meta, status, headers }; rejects with ApiError whose
 * message is the API's own `message`. A 401 INVALID_TOKEN rotates the tokens and retries once.
 */
export async function request(method, path, options = {}) {
  const { body, auth = true, idempotencyKey, headers = {}, signal, retried = false } = options;
  if (auth && hasSession() && (!access || Date.now() > access.expiresAt - 5_000)) {
    await refresh();
  }
  const sent = { Accept: "application/json", ...WEB, ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const bearer = auth && access ? access.token : null;
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  if (idempotencyKey) sent["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw networkError();
  }
  const json = await readJson(response);
  if (response.ok) {
    return { data: json?.data ?? null, meta: json?.meta ?? null, status: response.status, headers: response.headers };
  }
  if (response.status === 401 && bearer && !retried && json?.code === "INVALID_TOKEN") {
    if (access?.token === bearer) access = null; // not rotated meanwhile by another call
    if (await refresh()) return request(method, path, { ...options, retried: true });
    forget();
  }
  throw new ApiError(response.status, json ?? {}, response.headers);
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });
export const patch = (path, body, options = {}) => request("PATCH", path, { ...options, body });

/**
 * A write that must happen at most once: the same Idempotency-Key on every retry of this attempt.
 * Retries (with backoff) only when the outcome is unknown: no answer, 5xx, or still in progress.
 */
export async function idempotent(method, path, body, key, { tries = 4, headers } = {}) {
  let wait = 400;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request(method, path, { body, idempotencyKey: key, headers });
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || attempt >= tries) throw error;
      const hint = error.retryAfter !== null ? Math.min(error.retryAfter, 5) * 1000 : 0;
      await new Promise((resolve) => setTimeout(resolve, Math.max(wait, hint)));
      wait *= 2;
    }
  }
}

/** Whether an optional endpoint exists on this server (404 "Route not found" or 405 mean no). */
const capabilities = new Map();

export function isMissingRoute(error) {
  return (
    error instanceof ApiError &&
    (error.status === 405 || (error.status === 404 && error.message === "Route not found"))
  );
}

export async function supports(name, probePath) {
  if (!capabilities.has(name)) {
    capabilities.set(
      name,
      get(probePath).then(
        () => true,
        (error) => (isMissingRoute(error) ? false : true),
      ),
    );
  }
  return capabilities.get(name);
}

/** The server's clock minus this browser's (from the Date header), to show countdowns right. */
export function clockSkew(headers) {
  const date = Date.parse(headers?.get("Date") || "");
  // The header has whole seconds (truncated): the server's clock was half a second past it.
  return Number.isFinite(date) ? date + 500 - Date.now() : 0;
}
