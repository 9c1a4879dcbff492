// The live alarm page: the open alarms (kept current from the stream), the operator's actions on
// them (acknowledge, shelve, unshelve, reset, comment; bulk acknowledge) and the detail drawer
// with the alarm's history and the alarms it suppresses.
//
// Rows are kept per alarm and only rebuilt when their alarm changed, and moved rather than
// re-created when the order changes: a stream burst does not steal the keyboard focus nor a
// click that is under way on another row.

import { AuthError, HttpError, apiGet, apiPost, errorMessage, hasRole, isConflict, serverNow } from "./api.js";
import { formDialog } from "./dialog.js";
import {
  append, button, byId, cell, el, fieldRow, formatClock, formatCount, formatValue, keepFocus, setMessage, timeEl,
  timeOf, toast,
} from "./dom.js";
import { getLang, isChinese, t } from "./i18n.js";

// Suppressed alarms (inhibited by a parent alarm or by design) are recorded but not annunciated.
const ALARMS_PATH = "/alarms?open=true&suppressed=false&limit=200";
const GRADES = [1, 2, 3, 4];
const REFRESH_RETRY_MS = 15_000;
// The server refuses longer shelving (alarms/lifecycle.py DEFAULT_MAX_SHELVE); it does not
// publish the limit, so the picker offers up to it and the server's 422 covers the rest.
const MAX_SHELVE_MIN = 8 * 60;
const SHELVE_CHOICES_MIN = [15, 30, 60, 120, 240, 480];
// The longest choice ends a little before the limit, so that clock drift cannot make it too long.
const SHELVE_MARGIN_MS = 60_000;
const DETAIL_REFETCH_MS = 300;
const ACKABLE = new Set(["unack", "rtn_unack"]);

let ui = null;

const live = {
  alarms: new Map(), // id → alarm; open alarms only
  refreshRetryTimer: 0,
  // Each list request gets a number; only the newest one may replace the table.
  fetchGeneration: 0,
  // Alarms pushed while a list request is in flight (null when none is).
  pendingEvents: null,
  renderQueued: false,
  rows: new Map(), // id → {row, signature}
  selected: new Set(), // ids ticked for a bulk action
  busy: new Set(), // ids with an action in flight
  showShelved: false,
  shelveTimer: 0,
  detail: null, // {id, data, generation, refetchTimer} while the drawer is open
  onChange: () => {},
};

// ---------------------------------------------------------------------------- set-up

export function initAlarms({ onChange }) {
  live.onChange = onChange;
  ui = {
    rows: byId("alarm-rows"),
    table: byId("alarm-table"),
    tableWrap: byId("alarm-table-wrap"),
    empty: byId("empty"),
    notice: byId("list-notice"),
    totalCount: byId("total-count"),
    gradeCounts: byId("grade-counts"),
    selectAll: byId("select-all"),
    bulkBar: byId("bulk-bar"),
    selectionCount: byId("selection-count"),
    bulkAck: byId("bulk-ack"),
    clearSelection: byId("clear-selection"),
    showShelved: byId("show-shelved"),
    shelvedCount: byId("shelved-count"),
    drawer: byId("alarm-drawer"),
    drawerTitle: byId("drawer-title"),
    drawerClose: byId("drawer-close"),
    drawerNotice: byId("drawer-notice"),
    drawerSummary: byId("drawer-summary"),
    drawerActions: byId("drawer-actions"),
    drawerFields: byId("drawer-fields"),
    drawerChildren: byId("drawer-children"),
    drawerChildrenEmpty: byId("drawer-children-empty"),
    drawerHistory: byId("drawer-history"),
    commentForm: byId("comment-form"),
    commentText: byId("comment-text"),
    commentSection: byId("comment-section"),
  };
  ui.selectAll.addEventListener("change", onSelectAll);
  ui.bulkAck.addEventListener("click", onBulkAck);
  ui.clearSelection.addEventListener("click", () => {
    live.selected.clear();
    scheduleRender();
  });
  ui.showShelved.addEventListener("change", () => {
    live.showShelved = ui.showShelved.checked;
    renderAlarms();
  });
  ui.drawerClose.addEventListener("click", () => ui.drawer.close());
  ui.drawer.addEventListener("close", onDrawerClosed);
  // A click on the backdrop (outside the panel) closes the drawer, as Esc does.
  ui.drawer.addEventListener("click", (event) => {
    if (event.target === ui.drawer) ui.drawer.close();
  });
  ui.commentForm.addEventListener("submit", onComment);
}

/** Forget everything (sign-out). */
export function resetAlarms() {
  clearTimeout(live.refreshRetryTimer);
  live.fetchGeneration += 1; // answers to requests still in flight are now stale
  live.pendingEvents = null;
  live.alarms.clear();
  live.selected.clear();
  live.busy.clear();
  if (ui.drawer.open) ui.drawer.close();
  live.detail = null;
  renderAlarms();
}

// ---------------------------------------------------------------------------- the list

export async function refreshAlarms() {
  clearTimeout(live.refreshRetryTimer);
  const generation = ++live.fetchGeneration;
  live.pendingEvents = [];
  try {
    const page = await apiGet(ALARMS_PATH);
    if (generation === live.fetchGeneration) applySnapshot(page);
  } catch (error) {
    if (generation === live.fetchGeneration) onRefreshFailed(error);
  }
  if (live.detail) scheduleDetailRefetch();
}

function onRefreshFailed(error) {
  live.pendingEvents = null;
  if (error instanceof AuthError) return; // the session ends (api.js)
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

/** An alarm from the stream. */
export function onAlarmMessage(alarm) {
  live.pendingEvents?.push(alarm);
  upsertAlarm(alarm);
  scheduleRender();
  if (live.detail?.id === alarm.id && (alarm.version ?? 0) > (live.detail.data?.version ?? 0)) scheduleDetailRefetch();
}

function upsertAlarm(alarm) {
  const known = live.alarms.get(alarm.id);
  if (known && (known.version ?? 0) > (alarm.version ?? 0)) return;
  if (alarm.state === "normal" || alarm.suppressed_by) {
    live.alarms.delete(alarm.id);
    live.selected.delete(alarm.id);
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

function isShelved(alarm) {
  return Boolean(alarm.shelved_until) && timeOf(alarm.shelved_until) > serverNow();
}

/** The open, annunciated alarms (not shelved), for the navigation's count. */
export function annunciatedCount() {
  let count = 0;
  for (const alarm of live.alarms.values()) if (!isShelved(alarm)) count += 1;
  return count;
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

export function renderAlarms() {
  const all = [...live.alarms.values()].sort(compareAlarms);
  const shelved = all.filter(isShelved);
  const annunciated = all.filter((alarm) => !isShelved(alarm));
  const shown = live.showShelved ? all : annunciated;
  const canAct = hasRole("operator");
  for (const id of live.selected) if (!shown.some((alarm) => alarm.id === id)) live.selected.delete(id);
  ui.table.classList.toggle("can-act", canAct);
  ui.bulkBar.hidden = !canAct;
  reconcileRows(shown, canAct);
  ui.empty.hidden = shown.length > 0;
  renderCounts(annunciated);
  ui.shelvedCount.textContent = formatCount(shelved.length);
  renderSelection(shown, canAct);
  scheduleShelveExpiry(shelved);
  if (live.detail?.data) renderDrawer();
  live.onChange();
}

function reconcileRows(shown, canAct) {
  const lang = getLang();
  const wanted = new Set(shown.map((alarm) => alarm.id));
  const active = document.activeElement;
  const focusedRow = active && ui.rows.contains(active) ? active.closest("tr") : null;
  const focusedIndex = focusedRow ? [...ui.rows.children].indexOf(focusedRow) : -1;
  keepFocus(ui.tableWrap, () => {
    for (const [id, entry] of live.rows) {
      if (!wanted.has(id)) {
        entry.row.remove();
        live.rows.delete(id);
      }
    }
    shown.forEach((alarm, index) => {
      const signature = [JSON.stringify(alarm), lang, canAct, live.selected.has(alarm.id), live.busy.has(alarm.id),
        isShelved(alarm)].join("|");
      let entry = live.rows.get(alarm.id);
      if (!entry || entry.signature !== signature) {
        const row = alarmRow(alarm, canAct);
        if (entry) entry.row.replaceWith(row);
        entry = { row, signature };
        live.rows.set(alarm.id, entry);
      }
      const at = ui.rows.children[index] ?? null;
      if (at !== entry.row) moveRow(entry.row, at);
    });
  }, (key) => {
    // The focused control went away (e.g. Ack of an acknowledged alarm): its row's Details
    // button, else the row now in its place, else the table itself.
    const id = /^alarm-(\d+)-/.exec(key ?? "")?.[1];
    const replacement = shown[Math.min(Math.max(focusedIndex, 0), shown.length - 1)];
    return [id && `alarm-${id}-details`, replacement && `alarm-${replacement.id}-details`, "alarm-table"].filter(Boolean);
  });
}

function moveRow(row, before) {
  // moveBefore keeps the focus and state of a row that moves; insertBefore is the fallback.
  if (row.isConnected && typeof ui.rows.moveBefore === "function") ui.rows.moveBefore(row, before);
  else ui.rows.insertBefore(row, before);
}

function alarmRow(alarm, canAct) {
  const grade = gradeClass(alarm);
  const shelved = isShelved(alarm);
  const row = el("tr", { className: `alarm grade-${grade}${shelved ? " is-shelved" : ""}` });
  row.dataset.alarmId = String(alarm.id);
  row.dataset.state = String(alarm.state);
  if (shelved) row.dataset.shelved = "true";
  const messageId = `alarm-msg-${alarm.id}`;
  if (canAct) {
    const box = el("input", {
      type: "checkbox", className: "row-select", checked: live.selected.has(alarm.id),
      attrs: { "aria-label": t("alarms.selectOne", { message: messageOf(alarm) }) },
      dataset: { focusKey: `alarm-${alarm.id}-select` },
    });
    box.addEventListener("change", () => {
      if (box.checked) live.selected.add(alarm.id);
      else live.selected.delete(alarm.id);
      scheduleRender();
    });
    row.append(cell(box, "select-cell"));
  }
  row.append(
    cell(gradeBadge(alarm), "grade-cell"),
    cell(stateCell(alarm), "state-cell"),
    cell(el("span", { id: messageId, textContent: messageOf(alarm) }), "message-cell"),
    cell(deviceOf(alarm), "device-cell"),
    cell(formatValue(alarm.value), "numeric value-cell"),
    cell(timeEl(alarm.raised_at), "time-cell"),
    cell(formatCount(alarm.repeat_count ?? 0), "numeric repeats-cell"),
    cell(rowActions(alarm, canAct, messageId), "actions-cell"),
  );
  return row;
}

function stateCell(alarm) {
  const box = el("span", { className: "state-box" }, stateLabel(alarm.state));
  if (isShelved(alarm)) {
    box.append(el("span", { className: "chip chip-shelved", textContent: t("alarms.shelvedUntil", { time: formatClock(alarm.shelved_until) }) }));
  }
  if (needsReset(alarm)) box.append(el("span", { className: "chip chip-latched", textContent: t("alarms.latched") }));
  return box;
}

/** Ack/Reset share the first slot and Shelve/Unshelve the second, so the column never changes width. */
function rowActions(alarm, canAct, describedBy) {
  const box = el("div", { className: "row-actions" });
  const busy = live.busy.has(alarm.id);
  const key = (name) => `alarm-${alarm.id}-${name}`;
  const describe = (node) => {
    node.setAttribute("aria-describedby", describedBy);
    return node;
  };
  if (canAct) {
    let first = el("span", { className: "slot" });
    if (ACKABLE.has(alarm.state)) {
      first = describe(button("action.ack", { className: "button-act", focusKey: key("ack"), disabled: busy,
        onClick: () => rowAction(alarm.id, "ack") }));
    } else if (needsReset(alarm)) {
      first = describe(button("action.reset", { className: "button-quiet", focusKey: key("reset"), disabled: busy,
        onClick: () => rowAction(alarm.id, "reset") }));
    }
    let second = el("span", { className: "slot" });
    if (isShelved(alarm)) {
      second = describe(button("action.unshelve", { focusKey: key("unshelve"), disabled: busy,
        onClick: () => rowAction(alarm.id, "unshelve") }));
    } else if (alarm.state !== "normal") {
      second = describe(button("action.shelve", { focusKey: key("shelve"), disabled: busy,
        onClick: () => openShelveDialog(alarm.id) }));
    }
    box.append(first, second);
  }
  box.append(describe(button("action.details", { focusKey: key("details"),
    onClick: () => { window.location.hash = `#/alarms/${alarm.id}`; } })));
  return box;
}

export function gradeBadge(item) {
  const grade = gradeOf(item);
  const label = (isChinese() ? item.grade_label_zh : item.grade_label_en) || t(`grade.${grade}`);
  return el("span", { className: `badge grade-${gradeClass(item)}`, textContent: label });
}

export function stateLabel(state) {
  return el("span", { className: `state state-${state}`, textContent: t(`state.${state}`) });
}

export function messageOf(alarm) {
  const preferred = isChinese() ? alarm.message_zh : alarm.message_en;
  const fallback = isChinese() ? alarm.message_en : alarm.message_zh;
  return preferred || fallback || alarm.rule_id || "";
}

function deviceOf(alarm) {
  const where = [alarm.site, alarm.family].filter(Boolean).join(" / ");
  const device = el("span", { className: "device" });
  device.title = alarm.source ?? "";
  device.append(
    el("span", { className: "device-id", textContent: alarm.device_id ?? alarm.source ?? "" }),
    el("span", { className: "device-where", textContent: where }),
  );
  return device;
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
  const item = el("li", { className: `grade-count grade-${grade}${count ? "" : " is-zero"}` });
  item.dataset.grade = String(grade);
  item.append(
    el("span", { className: "swatch" }),
    el("span", { className: "grade-count-label", textContent: t(`grade.${grade}`) }),
    el("span", { className: "grade-count-value", textContent: formatCount(count) }),
  );
  return item;
}

/** Shelving ends by time, without an event: show the alarm again when it does. */
function scheduleShelveExpiry(shelved) {
  clearTimeout(live.shelveTimer);
  if (!shelved.length) return;
  const next = Math.min(...shelved.map((alarm) => timeOf(alarm.shelved_until)));
  live.shelveTimer = setTimeout(scheduleRender, Math.max(0, next - serverNow()) + 500);
}

// ---------------------------------------------------------------------------- selection

function renderSelection(shown, canAct) {
  if (!canAct) return;
  const ticked = shown.filter((alarm) => live.selected.has(alarm.id));
  const ackable = ticked.filter((alarm) => ACKABLE.has(alarm.state));
  ui.selectAll.checked = shown.length > 0 && ticked.length === shown.length;
  ui.selectAll.indeterminate = ticked.length > 0 && ticked.length < shown.length;
  ui.selectAll.disabled = shown.length === 0;
  // A live region: only touched when its text changes, or every repaint would be announced.
  const selectionText = t("alarms.selected", { count: formatCount(ticked.length) });
  if (ui.selectionCount.textContent !== selectionText) ui.selectionCount.textContent = selectionText;
  ui.bulkAck.textContent = t("alarms.bulkAck", { count: formatCount(ackable.length) });
  ui.bulkAck.disabled = ackable.length === 0;
  ui.clearSelection.disabled = ticked.length === 0;
}

function visibleAlarms() {
  return [...live.alarms.values()].filter((alarm) => live.showShelved || !isShelved(alarm));
}

function onSelectAll() {
  if (ui.selectAll.checked) for (const alarm of visibleAlarms()) live.selected.add(alarm.id);
  else live.selected.clear();
  renderAlarms();
}

function onBulkAck() {
  const ids = visibleAlarms().filter((alarm) => live.selected.has(alarm.id) && ACKABLE.has(alarm.state)).map((a) => a.id);
  if (!ids.length) return;
  formDialog({
    title: { key: "alarms.bulkAckTitle", params: { count: formatCount(ids.length) } },
    fields: [{ name: "reason", kind: "textarea", label: "field.note", hint: "field.noteOptional" }],
    submit: { key: "action.ack" },
    returnFocus: () => ui.selectAll,
    onSubmit: async ({ reason }) => {
      const { results = [] } = await apiPost("/alarms/ack", { ids, reason });
      const failed = [];
      for (const result of results) {
        if (result.status === 200 && result.alarm) {
          upsertAlarm(result.alarm);
          live.selected.delete(result.id);
        } else {
          failed.push(result);
        }
      }
      scheduleRender();
      const done = results.length - failed.length;
      if (failed.length) {
        const detail = failed.map((result) => `#${result.id} ${result.detail ?? result.status}`).join("; ");
        toast({ key: "alarms.bulkPartial", params: { done: formatCount(done), failed: formatCount(failed.length), detail } }, "error");
        // What failed was probably changed by someone else: show it as it is now.
        await Promise.all(failed.filter((r) => r.status === 409).map((r) => reloadAlarm(r.id)));
      } else {
        toast({ key: "alarms.bulkDone", params: { count: formatCount(done) } });
      }
    },
  });
}

// ---------------------------------------------------------------------------- actions

function currentAlarm(id) {
  return live.alarms.get(id) ?? (live.detail?.id === id ? live.detail.data : null);
}

/** POST an action with the version the operator saw; the answer is the alarm as it is now. */
async function perform(id, action, body = {}) {
  const alarm = currentAlarm(id);
  live.busy.add(id);
  scheduleRender();
  try {
    const payload = action === "comment" ? body : { ...body, version: alarm?.version };
    const updated = await apiPost(`/alarms/${id}/${action}`, payload);
    upsertAlarm(updated);
    if (live.detail?.id === id) scheduleDetailRefetch();
    return updated;
  } catch (error) {
    // 409: someone changed the alarm first (or its state refuses the action): show it as it is.
    if (isConflict(error)) await reloadAlarm(id);
    throw error;
  } finally {
    live.busy.delete(id);
    scheduleRender();
  }
}

async function rowAction(id, action) {
  try {
    const updated = await perform(id, action);
    toast({ key: `alarms.done.${action}`, params: { message: messageOf(updated) } });
  } catch (error) {
    if (!(error instanceof AuthError)) toast(errorMessage(error, "alarms.conflict"), "error");
  }
}

/** GET one alarm and put it where it belongs (the list, the drawer). */
async function reloadAlarm(id) {
  try {
    const { history: _history, children: _children, ...alarm } = await apiGet(`/alarms/${id}`);
    const known = live.alarms.get(id);
    if (known && (known.version ?? 0) > (alarm.version ?? 0)) return;
    if (known || alarm.state !== "normal") {
      live.alarms.delete(id); // the server's answer wins, whatever its version
      upsertAlarm(alarm);
    }
    scheduleRender();
    if (live.detail?.id === id) scheduleDetailRefetch();
  } catch {
    // The next list refresh or stream event brings it.
  }
}

function openShelveDialog(id) {
  const alarm = currentAlarm(id);
  if (!alarm) return;
  formDialog({
    title: { key: "alarms.shelveTitle" },
    intro: [el("p", { className: "dialog-subject", textContent: messageOf(alarm) })],
    fields: [
      { name: "reason", kind: "textarea", label: "field.reason", required: true, hint: "alarms.shelveReasonHint" },
      {
        name: "minutes", kind: "select", label: "field.duration", value: String(MAX_SHELVE_MIN),
        hint: "alarms.shelveMax", hintParams: { hours: MAX_SHELVE_MIN / 60 },
        options: SHELVE_CHOICES_MIN.map((minutes) => ({ value: String(minutes), label: durationLabel(minutes) })),
      },
    ],
    submit: { key: "action.shelve" },
    returnFocus: () => focusTarget(id),
    onSubmit: async ({ reason, minutes }) => {
      const ms = Number(minutes) * 60_000;
      const until = new Date(serverNow() + ms - (Number(minutes) >= MAX_SHELVE_MIN ? SHELVE_MARGIN_MS : 0));
      const updated = await perform(id, "shelve", { reason, until: until.toISOString() });
      toast({ key: "alarms.done.shelve", params: { message: messageOf(updated) } });
    },
    onError: (error, dialog) => {
      if (isConflict(error)) dialog.showError(errorMessage(error, "alarms.conflict"));
    },
  });
}

function durationLabel(minutes) {
  return minutes < 60 ? t("duration.minutes", { n: minutes }) : t("duration.hours", { n: minutes / 60 });
}

function focusTarget(id) {
  // From the drawer, the focus stays in it (the page behind a modal cannot take it).
  if (ui.drawer.open) return ui.drawerActions.querySelector("button:not([disabled])") ?? ui.drawerClose;
  return document.querySelector(`[data-focus-key="alarm-${id}-details"]`) ?? ui.tableWrap;
}

// ---------------------------------------------------------------------------- drawer

/** Open the drawer on one alarm (from the hash route #/alarms/{id}). */
export function openAlarmDetail(id) {
  if (live.detail?.id !== id) {
    clearTimeout(live.detail?.refetchTimer);
    live.detail = { id, data: null, generation: 0, refetchTimer: 0 };
    ui.drawerSummary.replaceChildren(el("p", { className: "muted", textContent: t("common.loading") }));
    for (const node of [ui.drawerActions, ui.drawerFields, ui.drawerChildren, ui.drawerHistory]) node.replaceChildren();
    ui.drawerChildrenEmpty.hidden = true;
    ui.commentText.value = "";
    setMessage(ui.drawerNotice, null);
  }
  if (!ui.drawer.open) ui.drawer.showModal();
  loadDetail();
}

export function closeAlarmDetail() {
  if (ui.drawer.open) ui.drawer.close();
}

function onDrawerClosed() {
  const id = live.detail?.id;
  clearTimeout(live.detail?.refetchTimer);
  live.detail = null;
  if (/^#\/alarms\/\d+/.test(window.location.hash)) history.replaceState(null, "", "#/alarms");
  if (id !== undefined) {
    const back = document.querySelector(`[data-focus-key="alarm-${id}-details"]`);
    if (back && !back.closest("[hidden]")) back.focus({ preventScroll: true });
  }
}

function scheduleDetailRefetch() {
  if (!live.detail) return;
  clearTimeout(live.detail.refetchTimer);
  live.detail.refetchTimer = setTimeout(loadDetail, DETAIL_REFETCH_MS);
}

async function loadDetail() {
  const detail = live.detail;
  if (!detail) return;
  const generation = ++detail.generation;
  try {
    const data = await apiGet(`/alarms/${detail.id}`);
    if (data.children === undefined) data.children = (await apiGet(`/alarms/${detail.id}/children`)).items ?? [];
    if (live.detail !== detail || generation !== detail.generation) return;
    detail.data = data;
    setMessage(ui.drawerNotice, null);
    renderDrawer();
  } catch (error) {
    if (live.detail !== detail || error instanceof AuthError) return;
    setMessage(ui.drawerNotice, error instanceof HttpError && error.status === 404
      ? { key: "alarms.notFound", params: { id: detail.id } }
      : errorMessage(error));
  }
}

function renderDrawer() {
  const alarm = live.detail?.data;
  if (!alarm) return;
  const canAct = hasRole("operator");
  // Re-rendered only when something it shows changed: the list repaints on every stream event.
  const signature = [JSON.stringify(alarm), getLang(), canAct, live.busy.has(alarm.id), isShelved(alarm)].join("|");
  if (live.detail.signature === signature) return;
  live.detail.signature = signature;
  ui.drawerTitle.textContent = t("alarms.detailTitle", { id: alarm.id });
  ui.drawerSummary.replaceChildren(
    el("div", { className: "drawer-badges" }, gradeBadge(alarm), stateCell(alarm)),
    el("p", { className: "drawer-message", textContent: messageOf(alarm) }),
  );
  keepFocus(ui.drawer, () => ui.drawerActions.replaceChildren(...drawerButtons(alarm, canAct)), () => ["drawer-close"]);
  ui.drawerClose.dataset.focusKey = "drawer-close";
  ui.drawerActions.hidden = !canAct;
  ui.commentSection.hidden = !canAct;
  ui.drawerFields.replaceChildren(...detailFields(alarm));
  const children = alarm.children ?? [];
  ui.drawerChildren.replaceChildren(...children.map(childItem));
  ui.drawerChildrenEmpty.hidden = children.length > 0;
  ui.drawerHistory.replaceChildren(...(alarm.history ?? []).map(historyItem));
}

function drawerButtons(alarm, canAct) {
  if (!canAct) return [];
  const busy = live.busy.has(alarm.id);
  const buttons = [];
  const add = (key, focusKey, onClick, className = "button-quiet") =>
    buttons.push(button(key, { className, focusKey, disabled: busy, onClick }));
  if (ACKABLE.has(alarm.state)) add("action.ack", "drawer-ack", () => drawerAction(alarm.id, "ack"), "button-act");
  if (needsReset(alarm)) add("action.reset", "drawer-reset", () => drawerAction(alarm.id, "reset"));
  if (isShelved(alarm)) add("action.unshelve", "drawer-unshelve", () => drawerAction(alarm.id, "unshelve"));
  else if (alarm.state !== "normal") add("action.shelve", "drawer-shelve", () => openShelveDialog(alarm.id));
  if (!buttons.length) buttons.push(el("span", { className: "muted", textContent: t("alarms.noActions") }));
  return buttons;
}

async function drawerAction(id, action) {
  try {
    const updated = await perform(id, action);
    setMessage(ui.drawerNotice, { key: `alarms.done.${action}`, params: { message: messageOf(updated) } });
  } catch (error) {
    if (!(error instanceof AuthError)) setMessage(ui.drawerNotice, errorMessage(error, "alarms.conflict"));
  }
}

async function onComment(event) {
  event.preventDefault();
  const id = live.detail?.id;
  const text = ui.commentText.value.trim();
  if (id === undefined) return;
  if (!text) {
    setMessage(ui.drawerNotice, { key: "dialog.required", params: { field: t("alarms.comment") } });
    ui.commentText.focus();
    return;
  }
  const submit = ui.commentForm.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    await perform(id, "comment", { reason: text });
    ui.commentText.value = "";
    setMessage(ui.drawerNotice, { key: "alarms.done.comment" });
  } catch (error) {
    if (!(error instanceof AuthError)) setMessage(ui.drawerNotice, errorMessage(error, "alarms.conflict"));
  } finally {
    submit.disabled = false;
  }
}

function detailFields(alarm) {
  const rows = [];
  const add = (key, value) => rows.push(...fieldRow(key, value));
  add("col.device", deviceOf(alarm));
  add("field.place", [alarm.site, alarm.building, alarm.zone].filter(Boolean).join(" / "));
  add("field.rule", [alarm.category, alarm.rule_id].filter(Boolean).join(" · "));
  add("col.value", formatValue(alarm.value));
  add("col.raisedAt", timeEl(alarm.raised_at));
  if (alarm.cleared_at) add("field.clearedAt", timeEl(alarm.cleared_at));
  if (alarm.acked_at) add("field.acked", el("span", {}, alarm.acked_by ?? "", " · ", timeEl(alarm.acked_at)));
  add("col.repeats", formatCount(alarm.repeat_count ?? 0));
  if (alarm.shelved_until) {
    add("field.shelved", el("span", {}, t(isShelved(alarm) ? "alarms.shelvedUntil" : "alarms.shelveEnded",
      { time: formatClock(alarm.shelved_until) }), alarm.shelved_by ? ` · ${alarm.shelved_by}` : "",
    alarm.shelve_reason ? ` · ${alarm.shelve_reason}` : ""));
  }
  if (alarm.latching) add("field.latching", t(alarm.condition_active ? "alarms.conditionActive" : "alarms.conditionGone"));
  if (alarm.suppressed_by) add("field.suppressedBy", alarm.suppressed_by);
  if (alarm.parent_id) add("field.parent", el("a", { href: `#/alarms/${alarm.parent_id}`, textContent: `#${alarm.parent_id}` }));
  if (alarm.out_of_service) add("field.outOfService", t("common.yes"));
  add("field.incident", alarm.incident_id
    ? el("a", { href: `#/incidents/${alarm.incident_id}`, textContent: t("alarms.openIncident", { id: alarm.incident_id }) })
    : t("alarms.noIncident"));
  return rows;
}

function childItem(child) {
  const item = el("li", { className: "linked-alarm" });
  append(item, [
    gradeBadge(child),
    el("a", { href: `#/alarms/${child.id}`, textContent: messageOf(child) }),
    el("span", { className: "muted" }, t(`state.${child.state}`), " · ",
      t(child.suppressed ? "alarms.suppressedNow" : "alarms.suppressedEarlier")),
  ]);
  return item;
}

export function historyItem(entry) {
  const label = t(`audit.${entry.action}`);
  const action = label === `audit.${entry.action}` ? entry.action : label;
  const detail = entry.detail ?? {};
  const bits = [];
  if (detail.from && detail.to && detail.from !== detail.to) bits.push(`${t(`state.${detail.from}`)} → ${t(`state.${detail.to}`)}`);
  if (detail.until) bits.push(t("alarms.shelvedUntil", { time: formatClock(detail.until) }));
  return el("li", { className: "history-item" },
    el("div", { className: "history-head" }, timeEl(entry.at), el("span", { className: "history-actor", textContent: entry.actor ?? "" }),
      el("span", { className: "history-action", textContent: action })),
    entry.reason ? el("div", { className: "history-reason", textContent: entry.reason }) : null,
    bits.length ? el("div", { className: "muted", textContent: bits.join(" · ") }) : null);
}

// ---------------------------------------------------------------------------- helpers

function needsReset(alarm) {
  return Boolean(alarm.latching) && !alarm.condition_active && alarm.state === "acked";
}

function gradeOf(item) {
  const grade = Number(item.grade);
  return GRADES.includes(grade) ? grade : GRADES.length + 1; // unknown grades sort last
}

export function gradeClass(item) {
  const grade = gradeOf(item);
  return GRADES.includes(grade) ? String(grade) : "unknown";
}

