// Modal form dialogs on the native <dialog> element: the browser keeps the focus inside and
// makes the page behind it inert; Esc closes it. On close the focus goes back to the control that
// opened the dialog (or to `returnFocus()` when that control is gone).

import { errorMessage } from "./api.js";
import { el, setMessage } from "./dom.js";
import { t } from "./i18n.js";

let serial = 0;

/**
 * Open a dialog with a form.
 *
 *   title      {key, params}
 *   intro      optional nodes shown above the fields
 *   fields     [{name, kind: "text"|"textarea"|"select"|"number"|"url", label: key, hint: key,
 *               required, value, options: [{value, label (text)}], maxLength, min, max, step}]
 *   submit     {key, danger}
 *   onSubmit   async (values) => void; throws to keep the dialog open with the error shown
 *   onError    optional (error, api) => void, e.g. to show extra detail after a 409
 *   returnFocus optional () => Element, when the opener may be gone by then
 *
 * Returns {dialog, close, showError(message), setExtra(nodes)}.
 */
export function formDialog({ title, intro = [], fields = [], submit, onSubmit, onError, returnFocus }) {
  const opener = document.activeElement;
  const id = `dialog-${++serial}`;
  const heading = el("h2", { id: `${id}-title`, textContent: t(title.key, title.params) });
  i18nize(heading, title.key, title.params);
  const error = el("div", { className: "dialog-error", attrs: { role: "alert" }, hidden: true });
  const extra = el("div", { className: "dialog-extra" });
  const controls = new Map();
  const fieldNodes = fields.map((field) => {
    const control = makeControl(field, `${id}-${field.name}`);
    controls.set(field.name, { field, control });
    const labelText = i18nize(el("span", { textContent: t(field.label) }), field.label);
    const label = el("label", { className: "field-label", htmlFor: control.id }, labelText,
      field.required ? el("span", { className: "required", textContent: " *", attrs: { "aria-hidden": "true" } }) : null);
    const hint = field.hint
      ? i18nize(el("span", { className: "field-hint", id: `${control.id}-hint`, textContent: t(field.hint, field.hintParams) }), field.hint, field.hintParams)
      : null;
    if (hint) control.setAttribute("aria-describedby", hint.id);
    return el("div", { className: "field" }, label, control, hint);
  });
  const cancel = i18nize(el("button", { type: "button", className: "button-quiet", textContent: t("dialog.cancel") }), "dialog.cancel");
  const ok = i18nize(el("button", { type: "submit", className: submit.danger ? "button-danger" : "button-primary", textContent: t(submit.key, submit.params) }), submit.key, submit.params);
  const form = el("form", { className: "dialog-form", noValidate: true },
    heading, ...intro, ...fieldNodes, extra, error, el("div", { className: "dialog-actions" }, cancel, ok));
  const dialog = el("dialog", { className: "modal", attrs: { "aria-labelledby": heading.id } }, form);

  let closed = false;
  function close() {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    const target = opener?.isConnected && !opener.disabled && !opener.closest("[hidden]") ? opener : returnFocus?.();
    target?.focus?.({ preventScroll: true });
  }

  function showError(message) {
    setMessage(error, message); // kept as a key: re-translated on a language switch
  }

  function setExtra(nodes) {
    extra.replaceChildren(...nodes);
  }

  const api = { dialog, close, showError, setExtra };

  cancel.addEventListener("click", close);
  dialog.addEventListener("close", close); // Esc, or the form's own close
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {};
    for (const [name, { field, control }] of controls) {
      const value = field.kind === "number" ? control.value.trim() : control.value;
      control.removeAttribute("aria-invalid");
      if (field.required && !String(value).trim()) {
        control.setAttribute("aria-invalid", "true");
        showError({ key: "dialog.required", params: { field: t(field.label) } });
        control.focus();
        return;
      }
      if (field.kind === "url" && value.trim() && !/^https?:\/\/\S+$/i.test(value.trim())) {
        control.setAttribute("aria-invalid", "true");
        showError({ key: "dialog.badUrl" });
        control.focus();
        return;
      }
      values[name] = typeof value === "string" ? value.trim() : value;
    }
    showError(null);
    ok.disabled = cancel.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await onSubmit(values, api);
      close();
    } catch (failure) {
      if (closed) return;
      showError(errorMessage(failure));
      onError?.(failure, api);
    } finally {
      ok.disabled = cancel.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  document.body.append(dialog);
  dialog.showModal();
  const first = fieldNodes.length ? controls.values().next().value.control : ok;
  first.focus();
  return api;
}

/** A dialog that only asks "are you sure" (with optional text to show). */
export function confirmDialog({ title, intro = [], submit, onSubmit, returnFocus }) {
  return formDialog({ title, intro, fields: [], submit, onSubmit, returnFocus });
}

/** Mark fixed text so that a language switch while the dialog is open re-translates it. */
function i18nize(node, key, params) {
  node.dataset.i18n = key;
  if (params) node.dataset.i18nParams = JSON.stringify(params);
  return node;
}

function makeControl(field, id) {
  let control;
  if (field.kind === "textarea") {
    control = el("textarea", { id, rows: 3, maxLength: field.maxLength ?? 2000 });
  } else if (field.kind === "select") {
    control = el("select", { id }, ...(field.options ?? []).map((option) =>
      el("option", { value: option.value, textContent: option.label, disabled: Boolean(option.disabled) })));
  } else {
    control = el("input", { id, type: field.kind === "url" ? "url" : field.kind === "number" ? "number" : "text" });
    if (field.maxLength) control.maxLength = field.maxLength;
    for (const name of ["min", "max", "step"]) if (field[name] !== undefined) control[name] = field[name];
    if (field.kind === "url") control.placeholder = "https://";
  }
  control.name = field.name;
  if (field.required) control.required = true;
  if (field.value !== undefined && field.value !== null) control.value = String(field.value);
  return control;
}
