// fmon console: sign-in, navigation between the views (hash routes), the event stream, language.
//
// Data flow: sign in → token in sessionStorage → GET the open alarms → keep them current from
// the WebSocket stream → render. The stream also carries incident events for the incidents view.
// Every piece of server data reaches the page through textContent or attributes, never
// innerHTML, so alarm text cannot inject markup.
//
//   #/alarms            live alarms          #/alarms/{id}      … with that alarm's detail drawer
//   #/incidents         incidents            #/incidents/{id}   one incident and its playbook
//   #/equipment         equipment ledger     #/equipment/work-orders, #/equipment/schedule

import {
  annunciatedCount, closeAlarmDetail, initAlarms, onAlarmMessage, openAlarmDetail, refreshAlarms, renderAlarms,
  resetAlarms,
} from "./alarms.js";
import {
  AuthError, HttpError, clearSession, getToken, getUser, saveSession, setUnauthorizedHandler, startRenewal, stopRenewal,
} from "./api.js";
import { byId, clearToasts, formatCount, renderMessages, retranslateToasts, setMessage } from "./dom.js";
import {
  hideEquipment, initEquipment, refreshEquipment, renderEquipment, resetEquipment, showEquipment,
} from "./equipment.js";
import { otherLang, setLang, t, translatePage } from "./i18n.js";
import {
  hideIncidents, initIncidents, onIncidentAlarm, onIncidentMessage, refreshIncidents, renderIncidents, resetIncidents,
  showIncidents,
} from "./incidents.js";

const API = "/api/v1";
const CLOSE_BAD_TOKEN = 4401;
// The server ended a connection whose token expired or whose user was disabled: reconnecting
// with the renewed token carries on; without one, the server refuses it with 4401.
const CLOSE_POLICY_VIOLATION = 1008;
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
// A connection that lived this long counts as healthy and resets the backoff; one that the
// server drops right after opening keeps backing off instead of reconnecting every second.
const STABLE_CONNECTION_MS = 10_000;

const ui = {
  loginView: byId("login-view"),
  loginForm: byId("login-form"),
  loginError: byId("login-error"),
  loginSubmit: byId("login-submit"),
  username: byId("username"),
  password: byId("password"),
  nav: byId("main-nav"),
  navAlarmCount: byId("nav-alarm-count"),
  navAlarmCountText: byId("nav-alarm-count-text"),
  viewTitle: byId("view-title"),
  connection: byId("connection"),
  connectionText: byId("connection-text"),
  user: byId("user"),
  langToggle: byId("lang-toggle"),
  logout: byId("logout"),
};

// The views: their section, title and what to do when shown, hidden and refreshed.
const VIEWS = {
  alarms: {
    section: byId("alarms-view"),
    title: "view.alarms",
    show: (id) => (isId(id) ? openAlarmDetail(Number(id)) : closeAlarmDetail()),
    hide: () => closeAlarmDetail(),
    refresh: () => {}, // the alarm list is refreshed for every view: it feeds the navigation count
  },
  incidents: {
    section: byId("incidents-view"),
    title: "view.incidents",
    show: (id) => showIncidents(isId(id) ? Number(id) : null),
    hide: () => hideIncidents(),
    refresh: () => refreshIncidents(),
  },
  equipment: {
    section: byId("equipment-view"),
    title: "view.equipment",
    show: (tab) => showEquipment(tab),
    hide: () => hideEquipment(),
    refresh: () => refreshEquipment(),
  },
};

const live = {
  connection: "disconnected",
  socket: null,
  socketOpenedAt: 0,
  reconnectTimer: 0,
  reconnectDelay: RECONNECT_MIN_MS,
  view: null, // the name of the view shown
};

// ---------------------------------------------------------------------------- session

function startSession() {
  showConsole();
  startRenewal();
  // Fetch at once instead of waiting for the stream: the table should fill even when a
  // proxy blocks WebSockets. The stream's "open" fetches again to close the gap between the two.
  refreshAlarms();
  route();
  connectStream();
}

/** Back to the login form, e.g. on sign-out or when the API rejects the token. */
function endSession(messageKey = null) {
  stopRenewal();
  clearSession();
  stopStream();
  resetAlarms();
  resetIncidents();
  resetEquipment();
  closeDialogs();
  clearToasts();
  hideViews();
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

// ---------------------------------------------------------------------------- routing

function parseRoute() {
  const parts = (window.location.hash || "").replace(/^#\/?/, "").split("/").filter(Boolean);
  const name = parts[0] in VIEWS ? parts[0] : "alarms";
  return { name, arg: parts[1] ?? null };
}

function isId(text) {
  return /^\d{1,12}$/.test(text ?? "");
}

/** Form dialogs belong to the view they were opened on. */
function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog.modal")) dialog.close();
}

function route() {
  if (!getToken()) return;
  closeDialogs();
  const { name, arg } = parseRoute();
  const changed = live.view !== name;
  if (changed) {
    if (live.view) VIEWS[live.view].hide();
    for (const [viewName, view] of Object.entries(VIEWS)) view.section.hidden = viewName !== name;
    live.view = name;
  }
  renderNav();
  renderTitle();
  VIEWS[name].show(arg);
  // After a navigation, screen-reader and keyboard users start at the new view's heading.
  if (changed && document.activeElement?.closest?.("#main-nav")) ui.viewTitle.focus({ preventScroll: true });
}

function hideViews() {
  if (live.view) VIEWS[live.view].hide();
  for (const view of Object.values(VIEWS)) view.section.hidden = true;
  live.view = null;
}

function renderNav() {
  for (const link of ui.nav.querySelectorAll("a[data-route]")) {
    if (link.dataset.route === live.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function renderTitle() {
  const key = live.view ? VIEWS[live.view].title : "app.title";
  ui.viewTitle.textContent = t(key);
  document.title = `${t(key)} · fmon`;
}

function renderNavCount() {
  const count = annunciatedCount();
  ui.navAlarmCount.textContent = formatCount(count);
  ui.navAlarmCount.hidden = count === 0;
  ui.navAlarmCountText.textContent = count ? t("nav.alarmCount", { count }) : "";
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
  // Nothing is pushed to a closed socket: whatever changed before this moment comes from the lists.
  refreshAll();
}

function refreshAll() {
  refreshAlarms();
  if (live.view) VIEWS[live.view].refresh();
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
  if (message?.type === "alarm" && message.alarm) {
    onAlarmMessage(message.alarm);
    onIncidentAlarm(message.alarm);
  }
  else if (message?.type === "incident" && message.incident) onIncidentMessage(message);
  else if (message?.type === "resync") refreshAll(); // the server dropped events for this console
}

function onStreamClose(socket, event) {
  if (socket !== live.socket) return; // closed on purpose by stopStream()
  live.socket = null;
  if (event.code === CLOSE_BAD_TOKEN) {
    endSession("login.expired");
    return;
  }
  const stable = live.socketOpenedAt && Date.now() - live.socketOpenedAt >= STABLE_CONNECTION_MS;
  if (event.code === CLOSE_POLICY_VIOLATION && stable) {
    connectStream(); // at once: the "open" handler re-reads what was missed
    return;
  }
  if (stable) live.reconnectDelay = RECONNECT_MIN_MS;
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
  ui.nav.hidden = true;
  ui.connection.hidden = true;
  ui.user.hidden = true;
  ui.logout.hidden = true;
  ui.loginView.hidden = false;
  renderTitle();
  setMessage(ui.loginError, messageKey ? { key: messageKey } : null);
  ui.username.focus();
}

function showConsole() {
  ui.loginView.hidden = true;
  setMessage(ui.loginError, null);
  renderUser();
  ui.nav.hidden = false;
  ui.connection.hidden = false;
  ui.user.hidden = false;
  ui.logout.hidden = false;
}

function applyLanguage() {
  translatePage();
  ui.langToggle.lang = otherLang(); // the button is labelled in the language it switches to
  renderMessages();
  retranslateToasts();
  renderConnection();
  renderUser();
  renderTitle();
  renderAlarms();
  renderNavCount();
  renderIncidents();
  renderEquipment();
}

// ---------------------------------------------------------------------------- start

function boot() {
  initAlarms({ onChange: renderNavCount });
  initIncidents();
  initEquipment();
  setUnauthorizedHandler(() => endSession("login.expired"));
  applyLanguage();
  ui.loginForm.addEventListener("submit", onLoginSubmit);
  ui.logout.addEventListener("click", () => endSession());
  ui.langToggle.addEventListener("click", () => {
    setLang(otherLang());
    applyLanguage();
  });
  window.addEventListener("hashchange", route);
  if (getToken()) startSession();
  else showLogin();
}

boot();
