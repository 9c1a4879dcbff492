// The incidents view: the list (open first) and one incident with its playbook run as a
// checklist: each step's role, assignee, deadline (with a live countdown), status, device
// commands and evidence, and the operator's actions on it. Kept current from the stream's
// incident events; the report opens as HTML or downloads as Markdown.

import { gradeBadge, gradeClass, historyItem, messageOf, stateLabel } from "./alarms.js";
import { AuthError, HttpError, apiGet, apiPost, apiText, errorMessage, hasRole, isConflict, serverNow } from "./api.js";
import { confirmDialog, formDialog } from "./dialog.js";
import {
  button, byId, cell, el, fieldRow, formatCount, formatDuration, keepFocus, labelled, pick, setMessage, timeEl, timeOf,
  toast,
} from "./dom.js";
import { t } from "./i18n.js";

const SETTLED = new Set(["done", "skipped"]);
const LIST_LIMIT = 200;
const LIST_REFRESH_MS = 30_000; // overdue counts are computed by the server: keep them fresh
const REFETCH_MS = 300;
const BLOB_LIFETIME_MS = 60_000;

let ui = null;

const live = {
  visible: false,
  id: null, // the incident shown in detail, or null for the list
  filter: "open",
  list: new Map(), // id → incident summary
  listLoaded: false,
  listGeneration: 0,
  listTimer: 0,
  detail: null, // the incident detail (with run.steps) of live.id
  detailGeneration: 0,
  refetchTimer: 0,
  ticker: 0,
  busy: new Set(), // step ids (and "close") with a request in flight
  expanded: new Set(), // step ids whose explanation is open
  renderQueued: false,
};

export function initIncidents() {
  ui = {
    listView: byId("incident-list-view"),
    detailView: byId("incident-detail-view"),
    filter: byId("incident-filter"),
    refresh: byId("incidents-refresh"),
    notice: byId("incidents-notice"),
    rows: byId("incident-rows"),
    empty: byId("incidents-empty"),
    detailNotice: byId("incident-notice"),
    detail: byId("incident-detail"),
  };
  ui.filter.value = live.filter;
  ui.filter.addEventListener("change", () => {
    live.filter = ui.filter.value;
    loadList();
  });
  ui.refresh.addEventListener("click", () => loadList());
}

export function showIncidents(id) {
  live.visible = true;
  const changed = live.id !== id;
  live.id = id;
  ui.listView.hidden = id !== null;
  ui.detailView.hidden = id === null;
  clearInterval(live.ticker);
  clearInterval(live.listTimer);
  if (id === null) {
    live.detail = null;
    loadList();
    live.listTimer = setInterval(loadList, LIST_REFRESH_MS);
  } else {
    if (changed) {
      live.detail = null;
      live.expanded.clear();
      ui.detail.replaceChildren(el("p", { className: "muted", textContent: t("common.loading") }));
      setMessage(ui.detailNotice, null);
    }
    loadDetail({ focus: changed });
    live.ticker = setInterval(tick, 1000);
  }
}

export function hideIncidents() {
  live.visible = false;
  clearInterval(live.ticker);
  clearInterval(live.listTimer);
  clearTimeout(live.refetchTimer);
}

export function resetIncidents() {
  hideIncidents();
  live.id = null;
  live.list.clear();
  live.listLoaded = false;
  live.detail = null;
  live.busy.clear();
  live.listGeneration += 1;
  live.detailGeneration += 1;
  ui.rows.replaceChildren();
  ui.detail.replaceChildren();
}

/** The stream reconnected or asked for a resync: read again what is shown. */
export function refreshIncidents() {
  if (!live.visible) return;
  if (live.id === null) loadList();
  else loadDetail();
}

export function renderIncidents() {
  if (!live.visible) return;
  if (live.id === null) renderList();
  else renderDetail();
}

// ---------------------------------------------------------------------------- stream

/** {type: "incident", event, incident: summary, step?} */
export function onIncidentMessage(message) {
  const summary = message.incident;
  if (live.listLoaded) {
    if (matchesFilter(summary)) live.list.set(summary.id, summary);
    else live.list.delete(summary.id);
    if (live.visible && live.id === null) scheduleRender();
  }
  if (live.detail && live.detail.id === summary.id) {
    if (message.step) applyStep(message.step);
    mergeSummary(summary);
    // A step event carries the step; anything else (opened, closed, regraded) is read again.
    if (message.event !== "step.updated") scheduleRefetch();
    scheduleRender();
  }
}

/** An alarm event: the incident shown may list that alarm. */
export function onIncidentAlarm(alarm) {
  const alarms = live.detail?.alarms;
  if (!alarms) return;
  const index = alarms.findIndex((item) => item.id === alarm.id);
  if (index >= 0 && (alarm.version ?? 0) >= (alarms[index].version ?? 0)) {
    alarms[index] = { ...alarms[index], ...alarm };
    scheduleRender();
  } else if (index < 0 && alarm.incident_id === live.detail.id) {
    scheduleRefetch();
  }
}

function matchesFilter(incident) {
  return live.filter === "all" || incident.state === live.filter;
}

function applyStep(step) {
  const steps = live.detail?.run?.steps;
  if (!Array.isArray(steps)) return;
  const index = steps.findIndex((item) => item.step_id === step.step_id);
  if (index < 0) {
    scheduleRefetch(); // a step added by a regrade
  } else if ((step.version ?? 0) >= (steps[index].version ?? 0)) {
    steps[index] = step;
  }
}

function mergeSummary(summary) {
  const detail = live.detail;
  if (!detail || (summary.version ?? 0) < (detail.version ?? 0)) return;
  const { run, alarms: _alarms, history: _history, ...incident } = summary;
  Object.assign(detail, incident);
  if (run && detail.run) {
    const { steps: _count, ...runFields } = run; // in a summary, `steps` is a count
    Object.assign(detail.run, runFields);
  }
}

function scheduleRender() {
  if (live.renderQueued) return;
  live.renderQueued = true;
  requestAnimationFrame(() => {
    live.renderQueued = false;
    renderIncidents();
  });
}

function scheduleRefetch() {
  clearTimeout(live.refetchTimer);
  live.refetchTimer = setTimeout(() => loadDetail(), REFETCH_MS);
}

// ---------------------------------------------------------------------------- list

async function loadList() {
  const generation = ++live.listGeneration;
  const state = live.filter === "all" ? "" : `&state=${live.filter}`;
  try {
    const page = await apiGet(`/incidents?limit=${LIST_LIMIT}${state}`);
    if (generation !== live.listGeneration) return;
    live.list = new Map((page.items ?? []).map((item) => [item.id, item]));
    live.listLoaded = true;
    const total = page.total ?? live.list.size;
    setMessage(ui.notice, total > live.list.size ? { key: "incidents.partial", params: { shown: live.list.size, total } } : null);
    renderList();
  } catch (error) {
    if (generation !== live.listGeneration || error instanceof AuthError) return;
    setMessage(ui.notice, loadError(error));
  }
}

function loadError(error) {
  if (error instanceof HttpError && error.status === 404) return { key: "common.unavailable" };
  return error instanceof HttpError
    ? { key: "common.loadFailedHttp", params: { status: error.status } }
    : { key: "common.loadFailedNetwork" };
}

/** Open first, then the most severe, then the newest (the server's order). */
function compareIncidents(a, b) {
  return (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) ||
    (a.grade ?? 9) - (b.grade ?? 9) ||
    timeOf(b.opened_at) - timeOf(a.opened_at) ||
    b.id - a.id;
}

function renderList() {
  const items = [...live.list.values()].sort(compareIncidents);
  keepFocus(ui.rows, () => ui.rows.replaceChildren(...items.map(incidentRow)));
  ui.empty.hidden = items.length > 0 || !live.listLoaded;
}

function incidentRow(incident) {
  const run = incident.run;
  const row = el("tr", { className: `incident grade-${gradeClass(incident)}${incident.state === "closed" ? " is-closed" : ""}` });
  row.dataset.incidentId = String(incident.id);
  const link = el("a", { href: `#/incidents/${incident.id}`, textContent: pick(incident, "title") || `#${incident.id}` });
  link.dataset.focusKey = `incident-${incident.id}`;
  const overdue = run?.overdue_steps ?? 0;
  row.append(
    cell(gradeBadge(incident), "grade-cell"),
    cell(link, "title-cell card-title"),
    labelled(cell(run ? pick(run, "title") : el("span", { className: "muted", textContent: t("incidents.noPlaybook") }), "playbook-cell"), "incidents.col.playbook"),
    cell(incidentState(incident), "state-cell"),
    labelled(cell(timeEl(incident.opened_at), "time-cell"), "incidents.col.openedAt"),
    labelled(cell(formatCount(incident.alarm_count ?? 0), "numeric"), "incidents.col.alarms"),
    labelled(cell(run ? t("incidents.stepsDone", { done: formatCount(run.steps - run.open_steps), total: formatCount(run.steps) }) : "—", "numeric steps-cell"), "incidents.col.steps"),
    labelled(cell(el("span", { className: overdue ? "overdue-count" : "muted", textContent: formatCount(overdue) }), "numeric overdue-cell"), "incidents.col.overdue"),
  );
  return row;
}

function incidentState(incident) {
  return el("span", { className: `state incident-${incident.state}`, textContent: t(`incidents.state.${incident.state}`) });
}

// ---------------------------------------------------------------------------- detail

async function loadDetail({ focus = false } = {}) {
  const id = live.id;
  if (id === null) return;
  const generation = ++live.detailGeneration;
  try {
    const detail = await apiGet(`/incidents/${id}`);
    if (generation !== live.detailGeneration || live.id !== id) return;
    live.detail = detail;
    setMessage(ui.detailNotice, null);
    renderDetail();
    if (focus) byId("incident-title")?.focus({ preventScroll: true });
  } catch (error) {
    if (generation !== live.detailGeneration || error instanceof AuthError) return;
    if (error instanceof HttpError && error.status === 404) {
      ui.detail.replaceChildren();
      setMessage(ui.detailNotice, { key: "incidents.notFound", params: { id } });
    } else {
      setMessage(ui.detailNotice, loadError(error));
    }
  }
}

function renderDetail() {
  const incident = live.detail;
  if (!incident) return;
  keepFocus(ui.detail, () => ui.detail.replaceChildren(
    detailHead(incident),
    stepsSection(incident),
    alarmsSection(incident),
    historySection(incident),
  ), (key) => (key?.startsWith("step-") ? [`${key.split(":")[0]}:comment`, "incident-title"] : ["incident-title"]));
  tick();
}

function canAct() {
  return hasRole("operator");
}

function isRunning(incident) {
  return incident.state === "open" && incident.run?.state === "running";
}

function detailHead(incident) {
  const run = incident.run;
  const head = el("header", { className: `incident-head grade-${gradeClass(incident)}` });
  const title = el("h2", { id: "incident-title", tabIndex: -1, textContent: pick(incident, "title") || `#${incident.id}` });
  title.dataset.focusKey = "incident-title";
  head.append(el("div", { className: "incident-badges" }, gradeBadge(incident), incidentState(incident)), title);

  const meta = el("dl", { className: "fields fields-inline" });
  const add = (key, value) => meta.append(...fieldRow(key, value));
  add("incidents.col.openedAt", timeEl(incident.opened_at));
  add("field.place", [incident.site, incident.building, incident.zone].filter(Boolean).join(" / "));
  add("incidents.col.playbook", run ? pick(run, "title") : t("incidents.noPlaybook"));
  if (run) {
    add("incidents.startedBy", el("span", {}, run.started_by ?? "", " · ", timeEl(run.started_at)));
    add("incidents.col.steps", t("incidents.stepsDone", { done: formatCount(run.steps.length - openSteps(run)), total: formatCount(run.steps.length) }));
    add("incidents.col.overdue", el("span", { className: overdueCount(run) ? "overdue-count" : "", textContent: formatCount(overdueCount(run)) }));
  }
  add("incidents.col.alarms", formatCount(incident.alarm_count ?? 0));
  if (incident.state === "closed") {
    add("incidents.closedAt", timeEl(incident.closed_at));
    if (run?.closed_by) add("incidents.closedBy", [run.closed_by, run.close_reason].filter(Boolean).join(" · "));
  }
  head.append(meta);

  const actions = el("div", { className: "incident-actions" },
    button("incidents.reportHtml", { focusKey: "report-html", onClick: () => openReport(incident.id) }),
    button("incidents.reportMd", { focusKey: "report-md", onClick: () => downloadReport(incident.id) }));
  if (canAct() && run && isRunning(incident)) {
    actions.append(button("incidents.close", { className: "button-danger", focusKey: "incident-close",
      disabled: live.busy.has("close"), onClick: () => openCloseDialog(incident) }));
  }
  head.append(actions);
  return head;
}

function openSteps(run) {
  return run.steps.filter((step) => !SETTLED.has(step.status)).length;
}

function overdueCount(run) {
  return run.steps.filter(isOverdue).length;
}

function isOverdue(step) {
  return !SETTLED.has(step.status) && (step.overdue || (step.deadline_at && timeOf(step.deadline_at) <= serverNow()));
}

function stepsSection(incident) {
  const section = el("section", { className: "detail-section" }, el("h3", { textContent: t("incidents.steps") }));
  const run = incident.run;
  if (!run) {
    section.append(el("p", { className: "muted", textContent: t("incidents.noRun") }));
    return section;
  }
  section.append(el("ol", { className: "steps" }, ...run.steps.map((step, index) => stepItem(incident, step, index + 1))));
  return section;
}

function stepItem(incident, step, number) {
  const settled = SETTLED.has(step.status);
  const item = el("li", { className: `step status-${step.status}${isOverdue(step) ? " is-overdue" : ""}` });
  item.dataset.stepId = step.step_id;
  item.dataset.status = step.status;
  const titleId = `step-title-${step.step_id}`;
  item.append(el("div", { className: "step-head" },
    el("span", { className: "step-no", textContent: String(number), attrs: { "aria-hidden": "true" } }),
    el("h4", { id: titleId, className: "step-title", textContent: pick(step, "title") }),
    el("span", { className: `step-status status-${step.status}`, textContent: t(`steps.status.${step.status}`) })));

  const meta = el("dl", { className: "step-meta" });
  const add = (key, value) => meta.append(el("div", { className: "meta-pair" }, ...fieldRow(key, value)));
  add("steps.kind", el("span", {}, t(`steps.kind.${step.kind}`), step.mandatory ? "" : ` · ${t("steps.optional")}`));
  add("steps.role", el("span", {}, pick(step, "role") || step.role, step.external ? ` · ${t("steps.external")}` : ""));
  add("steps.assignee", step.assignee || el("span", { className: "muted", textContent: t("steps.unassigned") }));
  const deadline = el("span", { className: "deadline" }, timeEl(step.deadline_at));
  if (!settled && step.deadline_at) {
    const countdown = el("span", { className: "countdown" });
    countdown.dataset.deadline = step.deadline_at;
    deadline.append(" · ", countdown);
  }
  add("steps.deadline", deadline);
  if (step.done_at) add(step.status === "skipped" ? "steps.skippedBy" : "steps.doneBy", el("span", {}, step.done_by ?? "", " · ", timeEl(step.done_at)));
  if (step.option) {
    const option = (step.options ?? []).find((o) => o.id === step.option);
    add("steps.decision", option ? pick(option, "label") : step.option);
  }
  if (step.status_reason) add("steps.reason", step.status_reason);
  if (step.confirmed_by) add("steps.confirmedBy", el("span", {}, step.confirmed_by, " · ", timeEl(step.confirmed_at)));
  item.append(meta);

  const explanation = pick(step, "detail");
  if (explanation) {
    const details = el("details", { className: "step-detail", open: live.expanded.has(step.step_id) },
      el("summary", { textContent: t("steps.howTo") }), el("p", { textContent: explanation }));
    details.addEventListener("toggle", () => {
      if (details.open) live.expanded.add(step.step_id);
      else live.expanded.delete(step.step_id);
    });
    item.append(details);
  }
  if (step.kind === "command") item.append(commandBlock(step));
  if (step.evidence?.length) item.append(evidenceBlock(step));
  const actions = stepActions(incident, step, titleId);
  if (actions) item.append(actions);
  return item;
}

function commandBlock(step) {
  const box = el("div", { className: "command" });
  const command = step.command;
  if (command) {
    box.append(el("p", { className: "command-what" },
      el("code", { textContent: command.name }),
      " · ", t(command.target === "zone" ? "steps.targetZone" : "steps.targetSource", { family: command.family ?? "" }),
      Object.keys(command.expect ?? {}).length ? ` · ${t("steps.expect", { expect: plain(command.expect) })}` : ""));
  }
  if (!step.commands?.length) {
    const hint = step.status === "awaiting_confirmation" ? "steps.awaitingConfirmation"
      : step.status === "pending" ? "steps.autoSend" : null;
    if (hint) box.append(el("p", { className: "muted", textContent: t(hint) }));
    return box;
  }
  const list = el("ul", { className: "command-list" });
  for (const sent of step.commands) {
    const stages = [];
    if (sent.sent_at) stages.push(el("span", { className: "stage stage-ok", textContent: t("command.sent") }));
    if (sent.acked_at) {
      const ok = !sent.ack_status || sent.ack_status === "done" || sent.ack_status === "ok";
      stages.push(el("span", { className: `stage ${ok ? "stage-ok" : "stage-bad"}`, textContent: t("command.acked", { status: sent.ack_status ?? "" }) }));
    }
    if (sent.readback_at) stages.push(el("span", { className: "stage stage-ok", textContent: t("command.readBack", { value: plain(sent.readback_value) }) }));
    list.append(el("li", { className: `command-item command-${sent.state}` },
      el("span", { className: "command-device", textContent: sent.device ?? "" }),
      el("span", { className: `command-state state-${sent.state}`, textContent: t(`command.state.${sent.state}`) }),
      ...stages,
      sent.error || sent.ack_reason ? el("span", { className: "command-error", textContent: sent.error || sent.ack_reason }) : null));
  }
  box.append(list);
  return box;
}

function plain(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k} = ${v}`).join(", ");
  return String(value);
}

function evidenceBlock(step) {
  const list = el("ul", { className: "evidence" });
  for (const item of step.evidence) {
    const photo = /^https?:\/\//i.test(item.photo_url ?? "")
      ? el("a", { href: item.photo_url, target: "_blank", rel: "noopener noreferrer", textContent: t("steps.photo") })
      : null;
    list.append(el("li", {}, timeEl(item.at, "short"), " ", el("strong", { textContent: item.by ?? "" }), "：", item.text ?? "",
      photo ? " · " : "", photo));
  }
  return el("div", { className: "evidence-block" }, el("h5", { textContent: t("steps.evidence") }), list);
}

function stepActions(incident, step, titleId) {
  if (!canAct()) return null;
  const running = isRunning(incident);
  const open = !SETTLED.has(step.status);
  const busy = live.busy.has(step.step_id);
  const key = (name) => `step-${step.step_id}:${name}`;
  const buttons = [];
  const add = (node) => {
    node.setAttribute("aria-describedby", titleId);
    buttons.push(node);
  };
  if (running && open) {
    if (step.kind === "manual" || step.kind === "notify") {
      add(button("steps.complete", { className: "button-act", focusKey: key("complete"), disabled: busy,
        onClick: () => stepAction(step, "complete", {}) }));
    } else if (step.kind === "decision") {
      for (const option of step.options ?? []) {
        add(button("steps.option", { params: { label: pick(option, "label") }, className: "button-act", focusKey: key(`option-${option.id}`), disabled: busy,
          onClick: () => (option.then === "close" ? openDecisionCloseDialog(step, option) : stepAction(step, "complete", { option: option.id })) }));
      }
    } else if (step.kind === "command" && (step.status === "awaiting_confirmation" || step.status === "failed")) {
      add(button(step.status === "failed" ? "steps.retrySend" : "steps.confirmSend", { className: "button-danger",
        focusKey: key("send"), disabled: busy, onClick: () => openSendDialog(incident, step) }));
    }
    add(button("steps.skip", { focusKey: key("skip"), disabled: busy, onClick: () => openSkipDialog(step) }));
    add(button("steps.assign", { focusKey: key("assign"), disabled: busy, onClick: () => openAssignDialog(step) }));
  }
  add(button("steps.comment", { focusKey: key("comment"), disabled: busy, onClick: () => openCommentDialog(step) }));
  return el("div", { className: "step-actions", attrs: { role: "group", "aria-labelledby": titleId } }, ...buttons);
}

// ---------------------------------------------------------------------------- step actions

/** POST a step action; the answer's step replaces ours, and the incident is read again. */
async function postStep(step, action, body) {
  const incidentId = live.detail.id;
  live.busy.add(step.step_id);
  scheduleRender();
  try {
    // The version shown now: after a 409 the page was refreshed, and a retry must not repeat it.
    const current = live.detail?.run?.steps?.find((s) => s.step_id === step.step_id) ?? step;
    const versioned = action === "comment" ? body : { ...body, version: current.version };
    const answer = await apiPost(`/incidents/${incidentId}/steps/${encodeURIComponent(step.step_id)}/${action}`, versioned);
    if (live.detail?.id === incidentId) {
      if (answer.step) applyStep(answer.step);
      if (answer.incident) mergeSummary(answer.incident);
    }
    return answer;
  } finally {
    live.busy.delete(step.step_id);
    if (live.detail?.id === incidentId) scheduleRefetch(); // decisions may have skipped or closed more
    scheduleRender();
  }
}

async function stepAction(step, action, body) {
  try {
    await postStep(step, action, body);
    toast({ key: `steps.done.${action}`, params: { step: pick(step, "title") } });
  } catch (error) {
    if (error instanceof AuthError) return;
    toast(errorMessage(error, "steps.conflict"), "error");
  }
}

function stepTitleIntro(step) {
  return [el("p", { className: "dialog-subject", textContent: pick(step, "title") })];
}

function returnTo(step, name) {
  return () => document.querySelector(`[data-focus-key="step-${CSS.escape(step.step_id)}:${name}"]`) ?? byId("incident-title");
}

function conflictInDialog(error, dialog) {
  if (isConflict(error)) dialog.showError(errorMessage(error, "steps.conflict"));
}

function openDecisionCloseDialog(step, option) {
  formDialog({
    title: { key: "steps.decisionCloses", params: { label: pick(option, "label") } },
    intro: stepTitleIntro(step),
    fields: [{ name: "reason", kind: "textarea", label: "field.reason", required: true, hint: "steps.decisionClosesHint" }],
    submit: { key: "steps.option", params: { label: pick(option, "label") } },
    returnFocus: () => byId("incident-title"),
    onSubmit: async ({ reason }) => {
      await postStep(step, "complete", { option: option.id, reason });
      toast({ key: "steps.done.complete", params: { step: pick(step, "title") } });
    },
    onError: conflictInDialog,
  });
}

function openSendDialog(incident, step) {
  const command = step.command ?? {};
  const params = Object.keys(command.params ?? {}).length ? plain(command.params) : t("steps.noParams");
  confirmDialog({
    title: { key: step.status === "failed" ? "steps.retrySendTitle" : "steps.confirmSendTitle" },
    intro: [
      ...stepTitleIntro(step),
      el("dl", { className: "fields" },
        ...fieldRow("steps.command", el("code", { textContent: command.name ?? "" })),
        ...fieldRow("steps.params", params),
        ...fieldRow("steps.target", t(command.target === "zone" ? "steps.targetZone" : "steps.targetSource", { family: command.family ?? "" })),
        ...fieldRow("steps.expectLabel", plain(command.expect))),
      el("p", { className: "warning", textContent: t("steps.sendWarning", { grade: incident.grade }) }),
    ],
    submit: { key: step.status === "failed" ? "steps.retrySend" : "steps.confirmSend", danger: true },
    returnFocus: returnTo(step, "comment"),
    onSubmit: async () => {
      await postStep(step, "complete", { confirm: true });
      toast({ key: "steps.done.send", params: { step: pick(step, "title") } });
    },
  });
}

function openSkipDialog(step) {
  formDialog({
    title: { key: "steps.skipTitle" },
    intro: stepTitleIntro(step),
    fields: [{ name: "reason", kind: "textarea", label: "field.reason", required: true }],
    submit: { key: "steps.skip" },
    returnFocus: returnTo(step, "comment"),
    onSubmit: async ({ reason }) => {
      await postStep(step, "skip", { reason });
      toast({ key: "steps.done.skip", params: { step: pick(step, "title") } });
    },
    onError: conflictInDialog,
  });
}

function openAssignDialog(step) {
  formDialog({
    title: { key: "steps.assignTitle" },
    intro: stepTitleIntro(step),
    fields: [{ name: "assignee", kind: "text", label: "steps.assignee", required: true, maxLength: 64, value: step.assignee ?? "",
      hint: "steps.assignHint", hintParams: { role: pick(step, "role") || step.role } }],
    submit: { key: "steps.assign" },
    returnFocus: returnTo(step, "assign"),
    onSubmit: async ({ assignee }) => {
      await postStep(step, "assign", { assignee });
      toast({ key: "steps.done.assign", params: { step: pick(step, "title"), assignee } });
    },
    onError: conflictInDialog,
  });
}

function openCommentDialog(step) {
  formDialog({
    title: { key: "steps.commentTitle" },
    intro: stepTitleIntro(step),
    fields: [
      { name: "text", kind: "textarea", label: "steps.commentText", required: true },
      { name: "photo", kind: "url", label: "steps.photoUrl", hint: "steps.photoHint", maxLength: 2000 },
    ],
    submit: { key: "steps.comment" },
    returnFocus: returnTo(step, "comment"),
    onSubmit: async ({ text, photo }) => {
      await postStep(step, "comment", photo ? { text, photo_url: photo } : { text });
      toast({ key: "steps.done.comment", params: { step: pick(step, "title") } });
    },
  });
}

function openCloseDialog(incident) {
  formDialog({
    title: { key: "incidents.closeTitle" },
    intro: [el("p", { className: "dialog-subject", textContent: pick(incident, "title") })],
    fields: [{ name: "reason", kind: "textarea", label: "field.reason", required: true }],
    submit: { key: "incidents.close", danger: true },
    returnFocus: () => byId("incident-title"),
    onSubmit: async ({ reason }) => {
      live.busy.add("close");
      try {
        await apiPost(`/incidents/${incident.id}/close`, { reason, version: live.detail?.version });
      } finally {
        live.busy.delete("close");
        scheduleRefetch();
      }
      toast({ key: "incidents.closed" });
    },
    onError: async (error, dialog) => {
      if (!isConflict(error)) return;
      await loadDetail(); // the incident as it is now: its version and the steps still open
      const blocking = live.detail?.run?.blocking_close ?? [];
      if (!blocking.length) {
        dialog.showError(errorMessage(error, "incidents.conflict"));
        dialog.setExtra([]);
        return;
      }
      dialog.showError({ key: "incidents.closeBlocked", params: { count: blocking.length } });
      const steps = live.detail.run.steps;
      dialog.setExtra([el("ul", { className: "blocking-steps" }, ...blocking.map((stepId) => {
        const step = steps.find((s) => s.step_id === stepId);
        return el("li", {}, step ? pick(step, "title") : stepId,
          step ? el("span", { className: "muted", textContent: ` · ${t(`steps.status.${step.status}`)}` }) : null);
      }))]);
    },
  });
}

// ---------------------------------------------------------------------------- alarms, history

function alarmsSection(incident) {
  const section = el("section", { className: "detail-section" }, el("h3", { textContent: t("incidents.alarms") }));
  const alarms = incident.alarms ?? [];
  if (!alarms.length) {
    section.append(el("p", { className: "muted", textContent: t("incidents.noAlarms") }));
    return section;
  }
  section.append(el("ul", { className: "linked-list" }, ...alarms.map((alarm) => el("li", { className: "linked-alarm" },
    gradeBadge(alarm),
    el("a", { href: `#/alarms/${alarm.id}`, textContent: messageOf(alarm) }),
    stateLabel(alarm.state),
    alarm.suppressed ? el("span", { className: "chip", textContent: t("incidents.suppressed") }) : null,
    timeEl(alarm.raised_at, "short")))));
  return section;
}

function historySection(incident) {
  const section = el("section", { className: "detail-section" }, el("h3", { textContent: t("incidents.history") }));
  section.append(el("ol", { className: "history" }, ...(incident.history ?? []).map(historyItem)));
  return section;
}

// ---------------------------------------------------------------------------- countdowns

function tick() {
  const now = serverNow();
  for (const node of ui.detail.querySelectorAll(".countdown[data-deadline]")) {
    const left = timeOf(node.dataset.deadline) - now;
    const late = left <= 0;
    node.textContent = late ? t("steps.overdueBy", { time: formatDuration(-left) }) : t("steps.remaining", { time: formatDuration(left) });
    node.classList.toggle("is-late", late);
    node.closest(".step")?.classList.toggle("is-overdue", late);
  }
}

// ---------------------------------------------------------------------------- reports

// The report needs the bearer token, so it is fetched here and handed to the browser as a blob:
// HTML opens in a new tab, Markdown downloads.
const REPORT_FORMATS = {
  html: { type: "text/html", link: () => ({ target: "_blank", rel: "noopener" }) },
  md: { type: "text/markdown", link: (id) => ({ download: `incident-${id}-report.md` }) },
};

async function fetchReport(id, format) {
  const { type, link } = REPORT_FORMATS[format];
  try {
    const { text } = await apiText(`/incidents/${id}/report?format=${format}`, type);
    const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
    const anchor = el("a", { href: url, ...link(id) });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), BLOB_LIFETIME_MS);
  } catch (error) {
    if (!(error instanceof AuthError)) toast(errorMessage(error), "error");
  }
}

const openReport = (id) => fetchReport(id, "html");
const downloadReport = (id) => fetchReport(id, "md");
