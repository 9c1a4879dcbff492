// The equipment view: the ledger with each item's health (failure risk, open work orders, next
// planned task), the work orders with their status actions (engineers), and the proposed
// 14-day maintenance schedule grouped by day and technician.

import { AuthError, HttpError, apiGet, apiPost, errorMessage, hasRole, isConflict } from "./api.js";
import { formDialog } from "./dialog.js";
import {
  button, byId, cell, el, formatCount, formatDay, formatPercent, keepFocus, labelled, pick, setMessage, timeEl, toast,
} from "./dom.js";
import { t } from "./i18n.js";

const TABS = ["list", "work-orders", "schedule"];
const SCHEDULE_DAYS = 14;
// Work-order actions and the states they may start from (maintenance/workorders.py TRANSITIONS).
const TRANSITIONS = {
  assign: ["open", "assigned", "on_hold"],
  start: ["assigned", "on_hold"],
  hold: ["assigned", "in_progress"],
  complete: ["in_progress"],
  cancel: ["open", "assigned", "in_progress", "on_hold"],
};
const PRIORITIES = ["urgent", "high", "normal", "low"];
const RISK_HIGH = 0.3;
const RISK_CRITICAL = 0.8;

let ui = null;

const live = {
  visible: false,
  tab: "list",
  equipment: null, // items, or null before the first load
  workOrders: null,
  openOnly: true,
  schedule: null,
  technicians: null,
  generation: 0,
  busy: new Set(), // work-order ids with a request in flight
};

export function initEquipment() {
  ui = {
    view: byId("equipment-view"),
    notice: byId("equipment-notice"),
    panel: byId("equipment-panel"),
  };
}

export function showEquipment(tab) {
  live.visible = true;
  live.tab = TABS.includes(tab) ? tab : "list";
  for (const link of ui.view.querySelectorAll(".subnav a[data-tab]")) {
    if (link.dataset.tab === live.tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  renderEquipment();
  refreshEquipment();
}

export function hideEquipment() {
  live.visible = false;
}

export function resetEquipment() {
  live.visible = false;
  live.equipment = live.workOrders = live.schedule = live.technicians = null;
  live.generation += 1;
  ui.panel.replaceChildren();
  setMessage(ui.notice, null);
}

/** Read what the current tab shows (no stream events for the ledger: on show and on demand). */
export async function refreshEquipment() {
  if (!live.visible) return;
  const generation = ++live.generation;
  const tab = live.tab;
  const wanted = [get("/equipment?limit=1000").then((page) => { live.equipment = page.items ?? []; })];
  if (tab !== "list") wanted.push(get("/technicians").then((page) => { live.technicians = page.items ?? []; }));
  if (tab === "work-orders") {
    wanted.push(get(`/work-orders?limit=500${live.openOnly ? "&open=true" : ""}`).then((page) => { live.workOrders = page.items ?? []; }));
  }
  if (tab === "schedule") wanted.push(get(`/maintenance/schedule?days=${SCHEDULE_DAYS}`).then((data) => { live.schedule = data; }));
  const results = await Promise.allSettled(wanted);
  if (generation !== live.generation) return;
  const failure = results.find((result) => result.status === "rejected")?.reason;
  if (failure instanceof AuthError) return;
  setMessage(ui.notice, failure ? loadError(failure) : null);
  renderEquipment();
}

function get(path) {
  return apiGet(path);
}

function loadError(error) {
  if (error instanceof HttpError && error.status === 404) return { key: "common.unavailable" };
  return error instanceof HttpError
    ? { key: "common.loadFailedHttp", params: { status: error.status } }
    : { key: "common.loadFailedNetwork" };
}

export function renderEquipment() {
  if (!live.visible) return;
  const render = { list: renderList, "work-orders": renderWorkOrders, schedule: renderSchedule }[live.tab];
  keepFocus(ui.panel, () => ui.panel.replaceChildren(...render()));
}

function toolbar(...children) {
  return el("div", { className: "toolbar" }, el("div", { className: "toolbar-group" }, ...children),
    button("common.refresh", { focusKey: "equipment-refresh", onClick: () => refreshEquipment() }));
}

function loading() {
  return el("p", { className: "muted", textContent: t("common.loading") });
}

function equipmentName(id) {
  const item = live.equipment?.find((e) => e.id === id);
  return item ? pick(item, "name") || item.id : id;
}

// ---------------------------------------------------------------------------- ledger

function renderList() {
  const bar = toolbar(newWorkOrderButton());
  if (live.equipment === null) return [bar, loading()];
  // The most likely to fail first: that is what an engineer scans the list for.
  const items = [...live.equipment].sort((a, b) =>
    (b.health?.risk?.probability ?? -1) - (a.health?.risk?.probability ?? -1) || a.id.localeCompare(b.id));
  const head = ["equipment.col.name", "equipment.col.type", "equipment.col.location", "col.state", "equipment.col.risk",
    "equipment.col.openOrders", "equipment.col.nextTask"];
  const table = el("table", { className: "data-table card-table equipment-table" },
    el("caption", { className: "visually-hidden", textContent: t("equipment.caption") }),
    el("thead", {}, el("tr", {}, ...head.map((key, i) => el("th", { scope: "col", className: i === 5 ? "numeric" : "", textContent: t(key) })))),
    el("tbody", {}, ...items.map(equipmentRow)));
  const wrap = el("div", { className: "table-wrap" }, table);
  if (!items.length) wrap.append(el("p", { className: "empty", textContent: t("equipment.empty") }));
  return [bar, wrap];
}

function equipmentRow(item) {
  const row = el("tr", { dataset: { equipmentId: item.id } });
  const location = [item.site, item.building, item.floor, item.zone].filter(Boolean).join(" / ");
  const next = item.health?.next_task;
  row.append(
    cell(el("span", { className: "stacked" }, el("span", { textContent: pick(item, "name") || item.id }),
      el("span", { className: "muted", textContent: item.id })), "name-cell card-title"),
    labelled(cell(pick(item, "type") || item.type), "equipment.col.type"),
    labelled(cell(location || "—"), "equipment.col.location"),
    cell(el("span", { className: `equipment-status status-${item.status}`, textContent: pick(item, "status") || item.status })),
    labelled(cell(riskBar(item.health?.risk), "risk-cell"), "equipment.col.risk"),
    labelled(cell(formatCount(item.health?.open_work_orders ?? 0), "numeric"), "equipment.col.openOrders"),
    labelled(cell(next
      ? el("span", { className: "stacked" }, el("span", { textContent: pick(next, "title") }),
        el("span", { className: "muted", textContent: t("equipment.due", { date: next.due }) }))
      : el("span", { className: "muted", textContent: "—" })), "equipment.col.nextTask"),
  );
  return row;
}

/** The failure probability as a bar, with its horizon, as text beside it. */
function riskBar(risk) {
  if (!risk || typeof risk.probability !== "number") return el("span", { className: "muted", textContent: t("equipment.noRisk") });
  const p = Math.min(1, Math.max(0, risk.probability));
  const level = p >= RISK_CRITICAL ? "critical" : p >= RISK_HIGH ? "high" : "low";
  const text = t("equipment.risk", { percent: formatPercent(p), days: risk.horizon_days });
  const fill = el("span", { className: "risk-fill" });
  fill.style.width = `${Math.round(p * 100)}%`;
  const bar = el("span", { className: `risk-bar risk-${level}`, attrs: {
    role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(p * 100), "aria-valuetext": text,
    "aria-label": t("equipment.col.risk"),
  } }, fill);
  const features = (risk.top_features ?? []).map((f) => (Array.isArray(f) ? f[0] : f)).filter(Boolean).slice(0, 3);
  const box = el("span", { className: "risk" }, bar, el("span", { className: "risk-text", textContent: text }));
  if (features.length) box.title = t("equipment.riskWhy", { features: features.join(", ") });
  return box;
}

// ---------------------------------------------------------------------------- work orders

function newWorkOrderButton() {
  if (!hasRole("operator")) return null;
  return button("wo.new", { className: "button-act", focusKey: "wo-new", onClick: openNewWorkOrder, disabled: !live.equipment?.length });
}

function renderWorkOrders() {
  const openOnly = el("input", { type: "checkbox", id: "wo-open-only", checked: live.openOnly });
  openOnly.dataset.focusKey = "wo-open-only";
  openOnly.addEventListener("change", () => {
    live.openOnly = openOnly.checked;
    live.workOrders = null;
    renderEquipment();
    refreshEquipment();
  });
  const bar = toolbar(el("label", { className: "toggle" }, openOnly, el("span", { textContent: t("wo.openOnly") })), newWorkOrderButton());
  if (live.workOrders === null) return [bar, loading()];
  const engineer = hasRole("engineer");
  const head = ["wo.col.id", "wo.col.title", "wo.col.equipment", "wo.col.kind", "wo.col.priority", "col.state", "wo.col.assignee", "wo.col.due"];
  if (engineer) head.push("col.actions");
  const table = el("table", { className: "data-table card-table wo-table" },
    el("caption", { className: "visually-hidden", textContent: t("wo.caption") }),
    el("thead", {}, el("tr", {}, ...head.map((key) => el("th", { scope: "col", textContent: t(key) })))),
    el("tbody", {}, ...live.workOrders.map((order) => workOrderRow(order, engineer))));
  const wrap = el("div", { className: "table-wrap" }, table);
  if (!live.workOrders.length) wrap.append(el("p", { className: "empty", textContent: t("wo.empty") }));
  return [bar, wrap];
}

function workOrderRow(order, engineer) {
  const row = el("tr", { className: `wo priority-${order.priority}`, dataset: { workOrderId: String(order.id), status: order.status } });
  const titleId = `wo-title-${order.id}`;
  row.append(
    cell(`#${order.id}`, "numeric id-cell"),
    cell(el("span", { className: "stacked" }, el("span", { id: titleId, textContent: order.title || "—" }),
      order.hold_reason && order.status === "on_hold" ? el("span", { className: "muted", textContent: order.hold_reason }) : null), "card-title"),
    labelled(cell(el("span", { className: "stacked" }, el("span", { textContent: equipmentName(order.equipment_id) }),
      el("span", { className: "muted", textContent: order.equipment_id }))), "wo.col.equipment"),
    cell(t(`wo.kind.${order.kind}`)),
    cell(el("span", { className: `chip priority priority-${order.priority}`, textContent: t(`priority.${order.priority}`) })),
    cell(el("span", { className: `wo-status status-${order.status}`, textContent: t(`wo.status.${order.status}`) })),
    labelled(cell(order.assignee ? technicianName(order.assignee) : el("span", { className: "muted", textContent: t("steps.unassigned") })), "wo.col.assignee"),
    labelled(cell(order.due_at ? timeEl(order.due_at, "short") : "—", "time-cell"), "wo.col.due"),
  );
  if (engineer) row.append(cell(workOrderActions(order, titleId), "actions-cell"));
  return row;
}

function technicianName(id) {
  return live.technicians?.find((tech) => tech.id === id)?.name ?? id;
}

function workOrderActions(order, titleId) {
  const busy = live.busy.has(order.id);
  const box = el("div", { className: "row-actions wrap" });
  const add = (action, onClick, className = "button-quiet") => {
    if (!TRANSITIONS[action].includes(order.status)) return;
    const node = button(`wo.action.${action}`, { className, focusKey: `wo-${order.id}-${action}`, disabled: busy, onClick });
    node.setAttribute("aria-describedby", titleId);
    box.append(node);
  };
  add("assign", () => openAssign(order));
  add("start", () => workOrderAction(order, "start", {}), "button-act");
  add("hold", () => openReason(order, "hold"));
  add("complete", () => openComplete(order), "button-act");
  add("cancel", () => openReason(order, "cancel"));
  return box;
}

async function postWorkOrder(order, action, body) {
  live.busy.add(order.id);
  renderEquipment();
  try {
    // The version shown now: after a 409 the list was read again, and a retry must not repeat it.
    const current = live.workOrders?.find((o) => o.id === order.id) ?? order;
    const updated = await apiPost(`/work-orders/${order.id}/${action}`, { ...body, version: current.version });
    replaceOrder(updated);
    return updated;
  } catch (error) {
    if (isConflict(error)) refreshEquipment(); // someone else changed it first: show it as it is
    throw error;
  } finally {
    live.busy.delete(order.id);
    renderEquipment();
  }
}

function replaceOrder(updated) {
  if (!live.workOrders) return;
  const index = live.workOrders.findIndex((o) => o.id === updated.id);
  const open = !["done", "cancelled"].includes(updated.status);
  if (index >= 0) {
    if (live.openOnly && !open) live.workOrders.splice(index, 1);
    else live.workOrders[index] = updated;
  } else if (open || !live.openOnly) {
    live.workOrders.push(updated);
  }
}

async function workOrderAction(order, action, body) {
  try {
    const updated = await postWorkOrder(order, action, body);
    toast({ key: `wo.done.${action}`, params: { id: updated.id } });
  } catch (error) {
    if (!(error instanceof AuthError)) toast(errorMessage(error, "wo.conflict"), "error");
  }
}

function orderIntro(order) {
  return [el("p", { className: "dialog-subject", textContent: `#${order.id} ${order.title ?? ""}` })];
}

function back(order, action) {
  return () => document.querySelector(`[data-focus-key="wo-${order.id}-${action}"]`) ?? ui.panel.querySelector("button");
}

function inDialogConflict(error, dialog) {
  if (isConflict(error)) dialog.showError(errorMessage(error, "wo.conflict"));
}

function openAssign(order) {
  const techs = (live.technicians ?? []).filter((tech) => tech.active !== false);
  const fit = techs.filter((tech) => !order.skill || (tech.skills ?? []).includes(order.skill));
  const options = (fit.length ? fit : techs).map((tech) => ({ value: tech.id, label: `${tech.name} (${(tech.skills ?? []).join(", ")})` }));
  formDialog({
    title: { key: "wo.assignTitle" },
    intro: orderIntro(order),
    fields: options.length
      ? [{ name: "assignee", kind: "select", label: "wo.col.assignee", options, value: order.assignee ?? options[0].value,
        hint: order.skill ? "wo.skillHint" : undefined, hintParams: { skill: order.skill } },
      { name: "reason", kind: "text", label: "field.note", maxLength: 2000 }]
      : [{ name: "assignee", kind: "text", label: "wo.col.assignee", required: true, maxLength: 64 },
        { name: "reason", kind: "text", label: "field.note", maxLength: 2000 }],
    submit: { key: "wo.action.assign" },
    returnFocus: back(order, "assign"),
    onSubmit: async ({ assignee, reason }) => {
      const updated = await postWorkOrder(order, "assign", { assignee, reason });
      toast({ key: "wo.done.assign", params: { id: updated.id } });
    },
    onError: inDialogConflict,
  });
}

function openReason(order, action) {
  formDialog({
    title: { key: `wo.${action}Title` },
    intro: orderIntro(order),
    fields: [{ name: "reason", kind: "textarea", label: "field.reason", required: true }],
    submit: { key: `wo.action.${action}`, danger: action === "cancel" },
    returnFocus: back(order, action),
    onSubmit: async ({ reason }) => {
      const updated = await postWorkOrder(order, action, { reason });
      toast({ key: `wo.done.${action}`, params: { id: updated.id } });
    },
    onError: inDialogConflict,
  });
}

function openComplete(order) {
  formDialog({
    title: { key: "wo.completeTitle" },
    intro: orderIntro(order),
    fields: [
      { name: "minutes", kind: "number", label: "wo.minutesSpent", required: true, min: 0, step: 1, value: order.estimate_min ?? "" },
      { name: "notes", kind: "textarea", label: "wo.notes", maxLength: 5000 },
    ],
    submit: { key: "wo.action.complete" },
    returnFocus: back(order, "complete"),
    onSubmit: async ({ minutes, notes }) => {
      const updated = await postWorkOrder(order, "complete", { minutes_spent: Math.round(Number(minutes)), notes });
      toast({ key: "wo.done.complete", params: { id: updated.id } });
    },
    onError: inDialogConflict,
  });
}

function openNewWorkOrder() {
  const items = live.equipment ?? [];
  formDialog({
    title: { key: "wo.newTitle" },
    fields: [
      { name: "equipment", kind: "select", label: "wo.col.equipment", required: true,
        options: items.map((item) => ({ value: item.id, label: `${pick(item, "name") || item.id} · ${item.id}` })) },
      { name: "title", kind: "text", label: "wo.col.title", required: true, maxLength: 300 },
      { name: "description", kind: "textarea", label: "wo.description", maxLength: 5000 },
      { name: "priority", kind: "select", label: "wo.col.priority", value: "normal",
        options: PRIORITIES.map((p) => ({ value: p, label: t(`priority.${p}`) })) },
    ],
    submit: { key: "wo.create" },
    returnFocus: () => ui.panel.querySelector('[data-focus-key="wo-new"]'),
    onSubmit: async ({ equipment, title, description, priority }) => {
      const created = await apiPost("/work-orders", { equipment_id: equipment, kind: "corrective", title, description, priority });
      toast({ key: "wo.done.create", params: { id: created.id } });
      refreshEquipment();
    },
  });
}

// ---------------------------------------------------------------------------- schedule

function renderSchedule() {
  const bar = toolbar();
  const schedule = live.schedule;
  if (!schedule) return [bar, loading()];
  const intro = el("p", { className: "muted schedule-intro", textContent: t("schedule.intro", {
    first: formatDay(schedule.first_day), last: formatDay(schedule.last_day), tz: schedule.timezone ?? "",
  }) });
  const days = (schedule.days ?? []).map(dayBlock);
  const nodes = [bar, intro, el("div", { className: "schedule" }, ...days)];
  const unscheduled = schedule.unscheduled ?? [];
  if (unscheduled.length) {
    nodes.push(el("section", { className: "detail-section unscheduled" },
      el("h3", { textContent: t("schedule.unscheduled", { count: unscheduled.length }) }),
      el("ul", { className: "schedule-items" }, ...unscheduled.map((item) => el("li", { className: "schedule-item" },
        el("div", { className: "schedule-line" }, jobTitle(item)),
        el("div", { className: "schedule-reason", textContent: pick(item, "reason") }))))));
  }
  return nodes;
}

function dayBlock(day) {
  const items = day.items ?? [];
  const section = el("section", { className: "schedule-day", dataset: { date: day.date } },
    el("h3", { textContent: formatDay(day.date) }));
  if (!items.length) {
    section.append(el("p", { className: "muted", textContent: t("schedule.nothing") }));
    return section;
  }
  const byTech = new Map();
  for (const item of items) {
    if (!byTech.has(item.technician)) byTech.set(item.technician, []);
    byTech.get(item.technician).push(item);
  }
  for (const [tech, jobs] of byTech) {
    section.append(el("div", { className: "schedule-tech" },
      el("h4", { textContent: technicianName(tech) }),
      el("ul", { className: "schedule-items" }, ...jobs.map((job) => el("li", { className: `schedule-item${job.late ? " is-late" : ""}` },
        el("div", { className: "schedule-line" },
          el("span", { className: "schedule-time", textContent: `${siteClock(job.start)}–${siteClock(job.end)}` }),
          jobTitle(job),
          job.late ? el("span", { className: "chip chip-late", textContent: t("schedule.late") }) : null),
        el("div", { className: "schedule-reason", textContent: pick(job, "reason"), title: pick(job, "reason") }))))));
  }
  return section;
}

function jobTitle(job) {
  return el("span", { className: "schedule-job" },
    el("span", { className: `chip kind-${job.kind}`, textContent: t(`wo.kind.${job.kind}`) }),
    job.priority && job.priority !== "normal" ? el("span", { className: `chip priority priority-${job.priority}`, textContent: t(`priority.${job.priority}`) }) : null,
    el("span", { className: "schedule-title", textContent: pick(job, "title") }),
    el("span", { className: "muted", textContent: `· ${equipmentName(job.equipment_id)}` }));
}

/** HH:MM of a schedule time as the site's clock reads it (the ISO text carries the site's offset). */
function siteClock(iso) {
  const match = /T(\d{2}:\d{2})/.exec(iso ?? "");
  return match ? match[1] : "";
}
