// DOM and formatting helpers shared by the console's views.
//
// Rule of the house: server data reaches the page only through textContent, properties and
// attributes. Nothing here parses markup.

import { getLang, isChinese, t } from "./i18n.js";

export function byId(id) {
  return document.getElementById(id);
}

/**
 * Make an element. `props` are element properties (className, textContent, type, …) plus:
 * `attrs` (attributes), `dataset`, `on` (event listeners). Children may be nodes, strings
 * (text nodes), or null/false (skipped).
 */
export function el(tag, props = {}, ...children) {
  const { attrs, dataset, on, ...rest } = props;
  const node = Object.assign(document.createElement(tag), rest);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  Object.assign(node.dataset, dataset ?? {});
  for (const [type, handler] of Object.entries(on ?? {})) node.addEventListener(type, handler);
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child); // strings become text nodes
  }
  return node;
}

/** A button; `key` is its i18n text, `focusKey` lets a re-render give focus back to it. */
export function button(key, { params, className = "button-quiet", onClick, label, focusKey, disabled, title } = {}) {
  const node = el("button", { type: "button", className, textContent: t(key, params), disabled: Boolean(disabled) });
  if (label) node.setAttribute("aria-label", label);
  if (title) node.title = title;
  if (focusKey) node.dataset.focusKey = focusKey;
  if (onClick) node.addEventListener("click", onClick);
  return node;
}

/** Bilingual server fields: `base_zh` / `base_en` in the current language, falling back. */
export function pick(item, base) {
  if (!item) return "";
  const zh = item[`${base}_zh`];
  const en = item[`${base}_en`];
  return (isChinese() ? zh || en : en || zh) ?? "";
}

// ---------------------------------------------------------------------------- focus

/**
 * Re-render part of the page without losing the keyboard focus: elements that carry
 * `data-focus-key` get the focus back after `render()` replaced them. When the focused control
 * is gone (e.g. the Ack button of an alarm just acknowledged), `fallbacks(key)` may name others.
 */
export function keepFocus(root, render, fallbacks = () => []) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? active.dataset?.focusKey : undefined;
  render();
  if (!key || (document.activeElement && document.activeElement !== document.body && root.contains(document.activeElement))) return;
  for (const candidate of [key, ...fallbacks(key)]) {
    const target = root.querySelector(`[data-focus-key="${CSS.escape(candidate)}"]`);
    if (target && !target.disabled && !target.closest("[hidden]")) {
      target.focus({ preventScroll: true });
      return;
    }
  }
}

// ---------------------------------------------------------------------------- messages

// Messages are kept as keys so that switching language re-translates what is on screen.
const shownMessages = new Map(); // element → {key, params} or {text}

export function setMessage(target, message) {
  if (message) shownMessages.set(target, message);
  else shownMessages.delete(target);
  renderMessage(target);
}

function renderMessage(target) {
  const message = shownMessages.get(target);
  target.hidden = !message;
  target.textContent = message ? messageText(message) : "";
}

function messageText(message) {
  if (!message) return "";
  if (message.text !== undefined) return message.text;
  return t(message.key, message.params);
}

export function renderMessages() {
  for (const target of [...shownMessages.keys()]) {
    if (!target.isConnected) shownMessages.delete(target);
    else renderMessage(target);
  }
}

// ---------------------------------------------------------------------------- toasts

const TOAST_OK_MS = 6_000;
const TOAST_ERROR_MS = 20_000;

/**
 * A short notice at the bottom of the screen: outside the page flow (no layout shift), in a
 * live region so that screen readers announce it. `kind` "error" is assertive.
 */
export function toast(message, kind = "ok") {
  const region = byId(kind === "error" ? "toasts-alert" : "toasts");
  if (!region) return;
  const body = el("span", { className: "toast-text" });
  const item = el("div", { className: `toast toast-${kind}` }, body);
  const close = button("toast.dismiss", { className: "toast-close", onClick: () => item.remove() });
  close.dataset.i18n = "toast.dismiss";
  item.append(close);
  item.dataset.message = JSON.stringify(message);
  body.textContent = messageText(message);
  region.append(item);
  while (region.children.length > 4) region.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? TOAST_ERROR_MS : TOAST_OK_MS);
}

export function retranslateToasts() {
  for (const item of document.querySelectorAll(".toast")) {
    try {
      item.querySelector(".toast-text").textContent = messageText(JSON.parse(item.dataset.message));
    } catch {
      // keep the text it has
    }
  }
}

export function clearToasts() {
  for (const item of document.querySelectorAll(".toast")) item.remove();
}

// ---------------------------------------------------------------------------- formatting

const formatters = new Map();

function cachedFormat(kind, make) {
  const key = `${kind}:${getLang()}`;
  if (!formatters.has(key)) formatters.set(key, make(getLang()));
  return formatters.get(key);
}

function parseTime(iso) {
  if (!iso) return null;
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? null : when;
}

export function timeOf(iso) {
  return parseTime(iso)?.getTime() ?? 0;
}

function dateTimeFormat() {
  // The browser's own time zone: operators read times against the wall clock.
  return cachedFormat("time", (lang) => new Intl.DateTimeFormat(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }));
}

function shortTimeFormat() {
  return cachedFormat("short", (lang) => new Intl.DateTimeFormat(lang, {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }));
}

function clockFormat() {
  return cachedFormat("clock", (lang) => new Intl.DateTimeFormat(lang, {
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }));
}

/** A <time> element in local time, UTC on hover; `style` "full" (default), "short" or "clock". */
export function timeEl(iso, style = "full") {
  const when = parseTime(iso);
  if (!when) return el("span", { className: "muted", textContent: iso ? String(iso) : "—" });
  const format = style === "clock" ? clockFormat() : style === "short" ? shortTimeFormat() : dateTimeFormat();
  const node = el("time", { textContent: format.format(when) });
  node.dateTime = when.toISOString();
  node.title = when.toISOString(); // UTC, for comparing with other systems' logs
  return node;
}

export function formatClock(iso) {
  const when = parseTime(iso);
  return when ? clockFormat().format(when) : "";
}

/** A calendar day (YYYY-MM-DD, a local date of the site) with its weekday. */
export function formatDay(day) {
  const [year, month, date] = String(day).split("-").map(Number);
  if (!year || !month || !date) return String(day ?? "");
  // Noon UTC of that date, formatted in UTC: the same calendar day everywhere.
  const when = new Date(Date.UTC(year, month - 1, date, 12));
  return cachedFormat("day", (lang) => new Intl.DateTimeFormat(lang, {
    month: "long", day: "numeric", weekday: "short", timeZone: "UTC",
  })).format(when);
}

export function formatValue(value) {
  if (typeof value === "number") {
    return cachedFormat("value", (lang) => new Intl.NumberFormat(lang, { maximumFractionDigits: 2 })).format(value);
  }
  if (value === null || value === undefined || value === "") return "—";
  return String(value);
}

export function formatCount(count) {
  return cachedFormat("count", (lang) => new Intl.NumberFormat(lang)).format(count);
}

export function formatPercent(fraction) {
  return cachedFormat("percent", (lang) => new Intl.NumberFormat(lang, {
    style: "percent", maximumFractionDigits: 0,
  })).format(fraction);
}

/** "3 分 05 秒" / "3 min 05 s" style text for a duration in milliseconds (≥ 0). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (days > 0) return t("duration.dh", { d: days, h: hours });
  if (hours > 0) return t("duration.hm", { h: hours, m: minutes });
  return t("duration.ms", { m: minutes, s: String(seconds).padStart(2, "0") });
}

export function cell(content, className = "") {
  const td = el("td", { className });
  append(td, [content]);
  return td;
}

/** The column's name on a cell, shown before the value when a table turns into cards. */
export function labelled(td, key) {
  td.dataset.label = t(key);
  return td;
}

/** A definition-list row: term (i18n key) and its description (node or text). */
export function fieldRow(key, value) {
  return [el("dt", { textContent: t(key) }), el("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
}
