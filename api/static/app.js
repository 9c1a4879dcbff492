// fmon console, live alarms page.
//
// Data flow: sign in → token in sessionStorage → GET the open alarms → keep them current from
// the WebSocket stream (upsert by id) → render. Every piece of server data reaches the page
// through textContent or attributes, never innerHTML, so alarm text cannot inject markup.

import { getLang, isChinese, otherLang, setLang, t, translatePage } from "./i18n.js";

const API = "/api/v1";
// Suppressed alarms (inhibited by a parent alarm or by design) are recorded but not annunciated.
const ALARMS_PATH = "/alarms?open=true&suppressed=false&limit=200";
const TOKEN_KEY = "fmon.token";
const USER_KEY = "fmon.user";
const GRADES = [1, 2, 3, 4];
const CLOSE_BAD_TOKEN = 4401;
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
// A connection that lived this long counts as healthy and resets the backoff; one that the
// server drops right after opening keeps backing off instead of reconnecting every second.
const STABLE_CONNECTION_MS = 10_000;
const REFRESH_RETRY_MS = 15_000;

const ui = {
  loginView: byId("login-view"),
  loginForm: byId("login-form"),
  loginError: byId("login-error"),
  loginSubmit: byId("login-submit"),
  username: byId("username"),
  password: byId("password"),
  alarmsView: byId("alarms-view"),
  rows: byId("alarm-rows"),
  empty: byId("empty"),
  notice: byId("list-notice"),
  totalCount: byId("total-count"),
  gradeCounts: byId("grade-counts"),
  connection: byId("connection"),
  connectionText: byId("connection-text"),
  user: byId("user"),
  langToggle: byId("lang-toggle"),
  logout: byId("logout"),
};

const live = {
  alarms: new Map(), // id → alarm; open alarms only
  connection: "disconnected",
  socket: null,
  socketOpenedAt: 0,
  reconnectTimer: 0,
  reconnectDelay: RECONNECT_MIN_MS,
  refreshRetryTimer: 0,
  // Each list request gets a number; only the newest one may replace the table.
  fetchGeneration: 0,
  // Alarms pushed while a list request is in flight (null when none is).
  pendingEvents: null,
  renderQueued: false,
};

class AuthError extends Error {}

class HttpError extends Error {
  constructor(status) {
    super(`HTTP ${status}`);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------- session

function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function getUser() {
  try {
    return JSON.parse(sessionStorage.getItem(USER_KEY)) ?? {};
  } catch {
    return {};
  }
}

function saveSession(token, user) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
}

function clearSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
}

function startSession() {
  showAlarmsView();
  // Fetch at once instead of waiting for the stream: the table should fill even when a
  // proxy blocks WebSockets. The stream's "open" fetches again to close the gap between the two.
  refreshAlarms();
  connectStream();
}

/** Back to the login form, e.g. on sign-out or when the API rejects the token. */
function endSession(messageKey = null) {
  clearSession();
  stopStream();
  clearTimeout(live.refreshRetryTimer);
  live.fetchGeneration += 1; // answers to requests still in flight are now stale
  live.pendingEvents = null;
  live.alarms.clear();
  renderAlarms();
  showLogin(messageKey);
}

// ---------------------------------------------------------------------------- login

async function onLoginSubmit(event) {
  event.preventDefault();
  const username = ui.username.value.trim();
  const password = ui.password.value;
  if (!username || !password) {
    setMessage(ui.loginError, { key: "login.missing" });
    return;
  }
  setLoginBusy(true);
  setMessage(ui.loginError, null);
  try {
    const grant = await requestToken(username, password);
    saveSession(grant.access_token, { username, role: grant.role });
    ui.loginForm.reset();
    startSession();
  } catch (error) {
    setMessage(ui.loginError, loginErrorMessage(error));
    ui.password.select();
  } finally {
    setLoginBusy(false);
  }
}

async function requestToken(username, password) {
  // URLSearchParams makes fetch send application/x-www-form-urlencoded, as OAuth2 expects.
  const response = await fetch(`${API}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ username, password }),
    headers: { Accept: "application/json" },
  });
  if (response.status === 401) throw new AuthError();
  if (!response.ok) throw new HttpError(response.status);
  return response.json();
}

function loginErrorMessage(error) {
  if (error instanceof AuthError) return { key: "login.badCredentials" };
  if (error instanceof HttpError) return { key: "login.failed", params: { status: error.status } };
  return { key: "login.network" };
}

function setLoginBusy(busy) {
  ui.loginSubmit.disabled = busy;
  ui.loginSubmit.dataset.i18n = busy ? "login.busy" : "login.submit";
  ui.loginSubmit.textContent = t(ui.loginSubmit.dataset.i18n);
}

// ---------------------------------------------------------------------------- alarm list

async function apiGet(path) {
  const response = await fetch(`${API}${path}`, {
    headers: { Authorization: `Bearer ${getToken()}`, Accept: "application/json" },
    cache: "no-store", // a cached alarm list would be a wrong alarm list
  });
  if (response.status === 401) throw new AuthError();
  if (!response.ok) throw new HttpError(response.status);
  return response.json();
}

async function refreshAlarms() {
  clearTimeout(live.refreshRetryTimer);
  const generation = ++live.fetchGeneration;
  live.pendingEvents = [];
  try {
    const page = await apiGet(ALARMS_PATH);
    if (generation === live.fetchGeneration) applySnapshot(page);
  } catch (error) {
    if (generation === live.fetchGeneration) onRefreshFailed(error);
  }
}

function onRefreshFailed(error) {
  live.pendingEvents = null;
  if (error instanceof AuthError) {
    endSession("login.expired");
    return;
  }
  // Keep showing the last known list; it is still the best information the operator has.
  const message =
    error instanceof HttpError
      ? { key: "alarms.loadFailedHttp", params: { status: error.status } }
      : { key: "alarms.loadFailedNetwork" };
  setMessage(ui.notice, message);
  live.refreshRetryTimer = setTimeout(refreshAlarms, REFRESH_RETRY_MS);
}

function applySnapshot({ items = [], total = items.length }) {
  const pushedMeanwhile = live.pendingEvents ?? [];
  live.pendingEvents = null;
  live.alarms = new Map();
  for (const alarm of items) upsertAlarm(alarm);
  // The snapshot may be older than alarms pushed while it was on its way; replay them
  // (upsertAlarm keeps whichever version is newer).
  for (const alarm of pushedMeanwhile) upsertAlarm(alarm);
  const truncated = total > items.length;
  setMessage(ui.notice, truncated ? { key: "alarms.partial", params: { shown: items.length, total } } : null);
  scheduleRender();
}

function upsertAlarm(alarm) {
  const known = live.alarms.get(alarm.id);
  if (known && (known.version ?? 0) > (alarm.version ?? 0)) return;
  if (alarm.state === "normal" || alarm.suppressed_by) {
    live.alarms.delete(alarm.id);
  } else {
    live.alarms.set(alarm.id, alarm);
  }
}

/** Most severe first (grade 1), then the newest within a grade. */
function compareAlarms(a, b) {
  return (
    gradeOf(a) - gradeOf(b) ||
    timeOf(b.raised_at) - timeOf(a.raised_at) ||
    b.id - a.id // stable order for alarms raised in the same instant
  );
}

// ---------------------------------------------------------------------------- stream

function streamUrl() {
  const url = new URL(`${API}/stream`, window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", getToken());
  return url;
}

function connectStream() {
  clearTimeout(live.reconnectTimer);
  const socket = new WebSocket(streamUrl());
  live.socket = socket;
  live.socketOpenedAt = 0;
  setConnection("connecting");
  socket.addEventListener("open", () => onStreamOpen(socket));
  socket.addEventListener("message", (event) => onStreamMessage(socket, event.data));
  socket.addEventListener("close", (event) => onStreamClose(socket, event));
}

function onStreamOpen(socket) {
  if (socket !== live.socket) return;
  live.socketOpenedAt = Date.now();
  setConnection("connected");
  // Nothing is pushed to a closed socket: whatever changed before this moment comes from the list.
  refreshAlarms();
}

function onStreamMessage(socket, data) {
  if (socket !== live.socket) return;
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    console.warn("fmon: ignoring a stream frame that is not JSON");
    return;
  }
  // Other message types belong to other pages; this one only follows alarms.
  if (message?.type !== "alarm" || !message.alarm) return;
  live.pendingEvents?.push(message.alarm);
  upsertAlarm(message.alarm);
  scheduleRender();
}

function onStreamClose(socket, event) {
  if (socket !== live.socket) return; // closed on purpose by stopStream()
  live.socket = null;
  if (event.code === CLOSE_BAD_TOKEN) {
    endSession("login.expired");
    return;
  }
  if (live.socketOpenedAt && Date.now() - live.socketOpenedAt >= STABLE_CONNECTION_MS) {
    live.reconnectDelay = RECONNECT_MIN_MS;
  }
  setConnection("disconnected");
  scheduleReconnect();
  // A handshake refused with a plain HTTP error carries no close code, so ask the list
  // endpoint whether the token is still good; this also keeps the table fresh meanwhile.
  refreshAlarms();
}

function scheduleReconnect() {
  const delay = live.reconnectDelay;
  live.reconnectDelay = Math.min(delay * 2, RECONNECT_MAX_MS);
  // Jitter, so that consoles do not all hit a restarted server in the same instant.
  const jittered = delay * (0.75 + Math.random() * 0.5);
  live.reconnectTimer = setTimeout(connectStream, jittered);
}

function stopStream() {
  clearTimeout(live.reconnectTimer);
  const socket = live.socket;
  live.socket = null; // before close(), so that onStreamClose ignores this socket
  socket?.close(1000);
  live.reconnectDelay = RECONNECT_MIN_MS;
  setConnection("disconnected");
}

// ---------------------------------------------------------------------------- rendering

/** Coalesce bursts of pushed alarms into one repaint per frame. */
function scheduleRender() {
  if (live.renderQueued) return;
  live.renderQueued = true;
  requestAnimationFrame(() => {
    live.renderQueued = false;
    renderAlarms();
  });
}

function renderAlarms() {
  const alarms = [...live.alarms.values()].sort(compareAlarms);
  ui.rows.replaceChildren(...alarms.map(alarmRow));
  ui.empty.hidden = alarms.length > 0;
  renderCounts(alarms);
}

function alarmRow(alarm) {
  const row = element("tr", { className: `alarm grade-${gradeClass(alarm)}` });
  row.dataset.alarmId = String(alarm.id);
  row.dataset.state = String(alarm.state);
  row.append(
    cell(gradeBadge(alarm), "grade-cell"),
    cell(stateLabel(alarm.state), "state-cell"),
    cell(messageOf(alarm), "message-cell"),
    cell(deviceOf(alarm), "device-cell"),
    cell(formatValue(alarm.value), "numeric"),
    cell(timeElement(alarm.raised_at), "time-cell"),
    cell(formatCount(alarm.repeat_count ?? 0), "numeric"),
  );
  return row;
}

function gradeBadge(alarm) {
  const label = (isChinese() ? alarm.grade_label_zh : alarm.grade_label_en) || t(`grade.${gradeOf(alarm)}`);
  return element("span", { className: `badge grade-${gradeClass(alarm)}`, textContent: label });
}

function stateLabel(state) {
  return element("span", { className: `state state-${state}`, textContent: t(`state.${state}`) });
}

function messageOf(alarm) {
  const preferred = isChinese() ? alarm.message_zh : alarm.message_en;
  const fallback = isChinese() ? alarm.message_en : alarm.message_zh;
  return preferred || fallback || alarm.rule_id || "";
}

function deviceOf(alarm) {
  const where = [alarm.site, alarm.family].filter(Boolean).join(" / ");
  const device = element("span", { className: "device" });
  device.title = alarm.source ?? "";
  device.append(
    element("span", { className: "device-id", textContent: alarm.device_id ?? alarm.source ?? "" }),
    element("span", { className: "device-where", textContent: where }),
  );
  return device;
}

function timeElement(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso ?? "");
  const node = element("time", { textContent: timeFormat().format(when) });
  node.dateTime = when.toISOString();
  node.title = when.toISOString(); // UTC on hover, for comparing with other systems' logs
  return node;
}

function renderCounts(alarms) {
  const perGrade = new Map(GRADES.map((grade) => [grade, 0]));
  for (const alarm of alarms) {
    const grade = gradeOf(alarm);
    if (perGrade.has(grade)) perGrade.set(grade, perGrade.get(grade) + 1);
  }
  ui.totalCount.textContent = formatCount(alarms.length);
  ui.gradeCounts.replaceChildren(...GRADES.map((grade) => gradeCount(grade, perGrade.get(grade))));
}

function gradeCount(grade, count) {
  const item = element("li", { className: `grade-count grade-${grade}${count ? "" : " is-zero"}` });
  item.dataset.grade = String(grade);
  item.append(
    element("span", { className: "swatch" }),
    element("span", { className: "grade-count-label", textContent: t(`grade.${grade}`) }),
    element("span", { className: "grade-count-value", textContent: formatCount(count) }),
  );
  return item;
}

function setConnection(state) {
  live.connection = state;
  renderConnection();
}

function renderConnection() {
  ui.connection.dataset.state = live.connection;
  ui.connectionText.textContent = t(`conn.${live.connection}`);
}

function renderUser() {
  const { username, role } = getUser();
  ui.user.textContent = [username, role && t(`role.${role}`)].filter(Boolean).join(" · ");
}

// ---------------------------------------------------------------------------- views

function showLogin(messageKey = null) {
  ui.alarmsView.hidden = true;
  ui.connection.hidden = true;
  ui.user.hidden = true;
  ui.logout.hidden = true;
  ui.loginView.hidden = false;
  setMessage(ui.loginError, messageKey ? { key: messageKey } : null);
  ui.username.focus();
}

function showAlarmsView() {
  ui.loginView.hidden = true;
  setMessage(ui.loginError, null);
  renderUser();
  ui.alarmsView.hidden = false;
  ui.connection.hidden = false;
  ui.user.hidden = false;
  ui.logout.hidden = false;
}

// Messages are kept as keys so that switching language re-translates what is on screen.
const shownMessages = new Map(); // element → {key, params}

function setMessage(target, message) {
  if (message) shownMessages.set(target, message);
  else shownMessages.delete(target);
  renderMessage(target);
}

function renderMessage(target) {
  const message = shownMessages.get(target);
  target.hidden = !message;
  target.textContent = message ? t(message.key, message.params) : "";
}

function applyLanguage() {
  translatePage();
  ui.langToggle.lang = otherLang(); // the button is labelled in the language it switches to
  for (const target of shownMessages.keys()) renderMessage(target);
  renderConnection();
  renderUser();
  renderAlarms();
}

// ---------------------------------------------------------------------------- helpers

function byId(id) {
  return document.getElementById(id);
}

function element(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

function cell(content, className) {
  const td = element("td", { className });
  td.append(content); // strings become text nodes: no markup is ever parsed
  return td;
}

function gradeOf(alarm) {
  const grade = Number(alarm.grade);
  return GRADES.includes(grade) ? grade : GRADES.length + 1; // unknown grades sort last
}

function gradeClass(alarm) {
  const grade = gradeOf(alarm);
  return GRADES.includes(grade) ? String(grade) : "unknown";
}

function timeOf(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : ms;
}

const formatters = new Map();

function cachedFormat(kind, make) {
  const key = `${kind}:${getLang()}`;
  if (!formatters.has(key)) formatters.set(key, make(getLang()));
  return formatters.get(key);
}

function timeFormat() {
  // The browser's own time zone: operators read times against the wall clock.
  return cachedFormat("time", (lang) => new Intl.DateTimeFormat(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }));
}

function formatValue(value) {
  if (typeof value === "number") {
    return cachedFormat("value", (lang) => new Intl.NumberFormat(lang, { maximumFractionDigits: 2 })).format(value);
  }
  if (value === null || value === undefined || value === "") return "—";
  return String(value);
}

function formatCount(count) {
  return cachedFormat("count", (lang) => new Intl.NumberFormat(lang)).format(count);
}

// ---------------------------------------------------------------------------- start

function boot() {
  applyLanguage();
  ui.loginForm.addEventListener("submit", onLoginSubmit);
  ui.logout.addEventListener("click", () => endSession());
  ui.langToggle.addEventListener("click", () => {
    setLang(otherLang());
    applyLanguage();
  });
  if (getToken()) startSession();
  else showLogin();
}

boot();
