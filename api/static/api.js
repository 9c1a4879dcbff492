// The console's side of the HTTP API: the session (token and role in sessionStorage), JSON
// requests with the bearer token, errors as classes, and the server's clock.

const API = "/api/v1";
const TOKEN_KEY = "fmon.token";
const USER_KEY = "fmon.user";
// Roles in order: each includes the ones before it (api/deps.py).
const ROLES = ["viewer", "operator", "engineer", "admin"];
// The browser's clock is trusted unless the server's Date header (1 s resolution) disagrees by more.
const SKEW_TOLERANCE_MS = 2_000;

export class AuthError extends Error {}

export class HttpError extends Error {
  /** `detail` is the server's explanation, as text (FastAPI's `detail`). */
  constructor(status, detail = "") {
    super(`HTTP ${status}${detail ? `: ${detail}` : ""}`);
    this.status = status;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------- session

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function getUser() {
  try {
    return JSON.parse(sessionStorage.getItem(USER_KEY)) ?? {};
  } catch {
    return {};
  }
}

export function saveSession(token, user) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
}

export function clearSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
}

/** Whether the signed-in user's role includes `role`. Unknown roles get nothing. */
export function hasRole(role) {
  const mine = ROLES.indexOf(getUser().role);
  return mine >= 0 && mine >= ROLES.indexOf(role);
}

let onUnauthorized = () => {};

/** Called once per rejected token: the app ends the session. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

// ---------------------------------------------------------------------------- renewal

// Tokens are short-lived (15 min by default). The session trades its token for a new one
// (POST /auth/refresh) when this share of its lifetime has passed, so that an operator signs in
// once per shift instead of every 15 minutes; the server ends renewals a day after sign-in.
const RENEW_AT_SHARE = 0.8;
const RENEW_RETRY_MS = 30_000;
// Between two renewals at least this long, whatever the clocks say (no request storm).
const RENEW_MIN_GAP_MS = 10_000;
let renewTimer = 0;

/** The token's claims (its middle part is base64url JSON), or {} when unreadable. */
function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

/** Keep renewing the session's token until stopRenewal(). */
export function startRenewal(minDelayMs = 0) {
  stopRenewal();
  const { iat, exp } = tokenClaims(getToken() ?? "");
  if (!Number.isFinite(exp) || !Number.isFinite(iat)) return;
  const dueMs = (iat + (exp - iat) * RENEW_AT_SHARE) * 1000;
  renewTimer = setTimeout(renewToken, Math.max(minDelayMs, dueMs - serverNow()));
}

export function stopRenewal() {
  clearTimeout(renewTimer);
  renewTimer = 0;
}

async function renewToken() {
  const token = getToken();
  if (!token) return;
  let response;
  const sentAt = Date.now();
  try {
    response = await fetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    // The network is down for now: try again while the token lasts (an expired one gets a 401).
    renewTimer = setTimeout(renewToken, RENEW_RETRY_MS);
    return;
  }
  noteServerTime(response, sentAt); // the next renewal is timed by the server's clock
  if (token !== getToken()) return; // signed out, or in again, meanwhile
  if (response.status === 401) {
    onUnauthorized();
    return;
  }
  if (!response.ok) {
    renewTimer = setTimeout(renewToken, RENEW_RETRY_MS);
    return;
  }
  const grant = await response.json();
  saveSession(grant.access_token, { ...getUser(), role: grant.role });
  startRenewal(RENEW_MIN_GAP_MS);
}

// ---------------------------------------------------------------------------- clock

let skewMs = 0;

/** Now, by the server's clock (for shelve times and step deadlines). */
export function serverNow() {
  return Date.now() + skewMs;
}

function noteServerTime(response, sentAt) {
  const header = Date.parse(response.headers.get("Date") ?? "");
  if (Number.isNaN(header)) return;
  const local = (sentAt + Date.now()) / 2;
  // The header is truncated to the second: its true time is up to 1 s later.
  const skew = header + 500 - local;
  skewMs = Math.abs(skew) > SKEW_TOLERANCE_MS ? skew : 0;
}

// ---------------------------------------------------------------------------- requests

async function request(method, path, { body, accept = "application/json" } = {}) {
  const token = getToken();
  const headers = { Authorization: `Bearer ${token}`, Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sentAt = Date.now();
  const response = await fetch(`${API}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store", // a cached alarm list would be a wrong alarm list
  });
  noteServerTime(response, sentAt);
  if (response.status === 401) {
    // Only the session that made the request ends: a late answer after a new sign-in does nothing.
    if (token && token === getToken()) onUnauthorized();
    throw new AuthError();
  }
  if (!response.ok) throw new HttpError(response.status, await readDetail(response));
  return response;
}

export async function apiGet(path) {
  return (await request("GET", path)).json();
}

export async function apiPost(path, body = {}) {
  return (await request("POST", path, { body })).json();
}

/** A text resource (e.g. a report), with its media type. */
export async function apiText(path, accept) {
  const response = await request("GET", path, { accept });
  return { text: await response.text(), type: response.headers.get("Content-Type") ?? accept };
}

/** The server's `detail` as one line of text, whatever its shape. */
async function readDetail(response) {
  let payload;
  try {
    payload = await response.json();
  } catch {
    return "";
  }
  return detailText(payload?.detail);
}

function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: ["body", "reason"], msg: "…"}, …]
    return detail.map((item) => {
      const where = Array.isArray(item?.loc) ? item.loc.filter((part) => part !== "body").join(".") : "";
      return [where, item?.msg ?? JSON.stringify(item)].filter(Boolean).join(": ");
    }).join("; ");
  }
  if (typeof detail === "object") {
    const problems = Array.isArray(detail.problems)
      ? detail.problems.map((p) => [p.line && `line ${p.line}`, p.field, p.message].filter(Boolean).join(" "))
      : [];
    return [detail.message, ...problems].filter(Boolean).join("; ");
  }
  return String(detail);
}

/** Is this 409 an optimistic-concurrency one (someone else changed the thing first)? */
export function isConflict(error) {
  return error instanceof HttpError && error.status === 409;
}

/**
 * What to tell the user about a failed request: a message {key, params} for the i18n layer.
 * `conflictKey` names the "changed by someone else, refreshed" text of the caller's subject.
 */
export function errorMessage(error, conflictKey = "error.conflict") {
  if (error instanceof AuthError) return { key: "login.expired" };
  if (error instanceof HttpError) {
    if (error.status === 409) {
      // Version checks say "changed"; other 409s say why the state refused the action.
      const versionClash = /changed|reload/i.test(error.detail) && !/cannot close/i.test(error.detail);
      return versionClash
        ? { key: conflictKey }
        : { key: "error.refused", params: { detail: error.detail } };
    }
    if (error.status === 403) return { key: "error.forbidden", params: { detail: error.detail } };
    return { key: "error.http", params: { status: error.status, detail: error.detail || "—" } };
  }
  return { key: "error.network" };
}
