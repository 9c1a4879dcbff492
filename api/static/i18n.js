// Bilingual text for the console (zh-CN first: it is the operators' language).
// Alarm messages and grade labels come from the API in both languages; this file only
// holds the console's own words.

const STORAGE_KEY = "fmon.lang";
const DEFAULT_LANG = "zh-CN";

const MESSAGES = {
  "zh-CN": {
    "app.title": "实时告警",
    "app.product": "fmon 设施监控",
    "app.logout": "退出登录",
    "lang.switch": "English",
    "lang.switchLabel": "切换到英文",
    "login.title": "值班员登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.busy": "正在登录…",
    "login.badCredentials": "用户名或密码错误，请重试。",
    "login.failed": "登录失败（{status}），请稍后重试。",
    "login.network": "无法连接服务器，请检查网络后重试。",
    "login.expired": "登录已失效，请重新登录。",
    "login.missing": "请输入用户名和密码。",
    "conn.connecting": "连接中",
    "conn.connected": "已连接",
    "conn.disconnected": "已断开",
    "counts.total": "未关闭告警",
    "counts.label": "各等级告警数量",
    "alarms.caption": "未关闭告警，按等级和发生时间排序",
    "alarms.empty": "当前没有未关闭的告警。",
    "alarms.loadFailedHttp": "告警列表加载失败（HTTP {status}），稍后自动重试。",
    "alarms.loadFailedNetwork": "无法连接服务器，告警列表可能不是最新的，稍后自动重试。",
    "alarms.partial": "仅显示最严重的 {shown} 条，共 {total} 条未关闭告警。",
    "col.grade": "等级",
    "col.state": "状态",
    "col.message": "告警内容",
    "col.device": "设备",
    "col.value": "数值",
    "col.raisedAt": "发生时间",
    "col.repeats": "重复次数",
    "grade.1": "一级 特别重大",
    "grade.2": "二级 重大",
    "grade.3": "三级 较大",
    "grade.4": "四级 一般",
    "state.unack": "未确认",
    "state.acked": "已确认",
    "state.rtn_unack": "已恢复未确认",
    "state.normal": "正常",
    "role.viewer": "查看者",
    "role.operator": "值班员",
    "role.engineer": "工程师",
    "role.admin": "管理员",
  },
  en: {
    "app.title": "Live alarms",
    "app.product": "fmon facility monitoring",
    "app.logout": "Sign out",
    "lang.switch": "中文",
    "lang.switchLabel": "Switch to Chinese",
    "login.title": "Operator sign-in",
    "login.username": "Username",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.busy": "Signing in…",
    "login.badCredentials": "Wrong username or password. Please try again.",
    "login.failed": "Sign-in failed ({status}). Please try again later.",
    "login.network": "Cannot reach the server. Check the network and try again.",
    "login.expired": "Your session has ended. Please sign in again.",
    "login.missing": "Enter your username and password.",
    "conn.connecting": "Connecting",
    "conn.connected": "Connected",
    "conn.disconnected": "Disconnected",
    "counts.total": "Open alarms",
    "counts.label": "Open alarms per grade",
    "alarms.caption": "Open alarms, by grade and time raised",
    "alarms.empty": "No open alarms.",
    "alarms.loadFailedHttp": "Could not load the alarm list (HTTP {status}); retrying automatically.",
    "alarms.loadFailedNetwork": "Cannot reach the server; the alarm list may be out of date. Retrying automatically.",
    "alarms.partial": "Showing the {shown} most severe of {total} open alarms.",
    "col.grade": "Grade",
    "col.state": "State",
    "col.message": "Alarm",
    "col.device": "Device",
    "col.value": "Value",
    "col.raisedAt": "Raised at",
    "col.repeats": "Repeats",
    "grade.1": "Grade 1 (critical)",
    "grade.2": "Grade 2 (major)",
    "grade.3": "Grade 3 (significant)",
    "grade.4": "Grade 4 (general)",
    "state.unack": "Unacknowledged",
    "state.acked": "Acknowledged",
    "state.rtn_unack": "Returned, unacknowledged",
    "state.normal": "Normal",
    "role.viewer": "Viewer",
    "role.operator": "Operator",
    "role.engineer": "Engineer",
    "role.admin": "Administrator",
  },
};

let current = loadLang();

function loadLang() {
  // localStorage can throw (privacy modes, disabled storage); the default must still work.
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    return saved in MESSAGES ? saved : DEFAULT_LANG;
  } catch {
    return DEFAULT_LANG;
  }
}

export function getLang() {
  return current;
}

export function isChinese() {
  return current === "zh-CN";
}

export function setLang(lang) {
  current = lang in MESSAGES ? lang : DEFAULT_LANG;
  try {
    localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // Not remembered across reloads, but the switch itself still works.
  }
}

export function otherLang() {
  return isChinese() ? "en" : "zh-CN";
}

/** Text for `key` in the current language; `{name}` placeholders are filled from `params`. */
export function t(key, params = {}) {
  const text = MESSAGES[current][key] ?? MESSAGES[DEFAULT_LANG][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

/**
 * Fill the page's fixed text: elements carry `data-i18n` (text content) or
 * `data-i18n-aria-label` (accessible name) with a message key.
 */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  document.title = `${t("app.title")} · fmon`;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}
