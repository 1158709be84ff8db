// Shared helpers of the Tenantry pages: page data, texts, JSON calls with problem bodies,
// toasts, money and time formatting, Telegram WebApp glue (optional: pages work without it).

const DATA = JSON.parse(document.getElementById("page-data")?.textContent || "{}");
const LOCALE = document.documentElement.lang || "en";

/** The JSON the server rendered for this page's script. */
export function pageData() {
  return DATA;
}

/** The text `key` from the page's texts, with `{field}` filled from `fields`. */
export function t(key, fields = {}) {
  const template = (DATA.texts && DATA.texts[key]) || key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in fields ? String(fields[name]) : whole));
}

/** A refusal from the server: an RFC 9457 problem body, with a message for people. */
export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "";
    this.body = body;
  }

  /** The localized text of the code (`<plugin>.error.<what>`), else the server's detail. */
  get text() {
    const [plugin, ...rest] = this.code.split(".");
    const key = `${plugin}.error.${rest.join(".")}`;
    if (DATA.texts && DATA.texts[key]) return t(key, this.body);
    return this.body.detail || t("web.error_generic");
  }
}

/**
 * Call a JSON route. Staff pages send the session cookie and the X-Tenantry-Web header;
 * WebApp pages pass `initData` (sent as X-Telegram-Init-Data).
 * Throws Problem for an error answer, Problem(0) when the server cannot be reached.
 */
export async function api(url, { method = "GET", body, initData, headers = {} } = {}) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET") options.headers["X-Tenantry-Web"] = "1";
  if (initData) options.headers["X-Telegram-Init-Data"] = initData;
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new Problem(0, { detail: t("web.error_network") });
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && !initData) signInAgain();
    throw new Problem(response.status, payload);
  }
  return payload;
}

/**
 * Leave a staff page for the sign-in page (its session expired or was ended), which says so
 * and comes back here once signed in. Pages without a sign-in URL (the WebApps) stay.
 */
export function signInAgain() {
  if (!DATA.signin_url) return;
  const next = encodeURIComponent(location.pathname + location.search);
  location.replace(`${DATA.signin_url}?expired=1&next=${next}`);
}

/** Show a short message at the bottom of the screen. */
export function toast(text, kind = "") {
  const box = document.getElementById("toasts");
  const item = el("div", { class: `toast ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === "bad" ? 6000 : 4000);
  return item;
}

/** Build an element: el("button", {class: "primary", onclick}, "text", child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const moneyFormats = new Map();

/** Minor units of `currency` (ISO 4217) as the page's locale writes them: 24000 RUB -> "240,00 ₽". */
export function money(minor, currency) {
  let format = moneyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat(LOCALE, { style: "currency", currency });
    moneyFormats.set(currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

/** HH:MM of an ISO instant in the tenant's time zone. */
export function clock(iso, timeZone) {
  return new Date(iso).toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit", timeZone });
}

/** The label of a status (`<entity>.status.<state>` in the page's texts), or the state itself. */
export function statusLabel(entity, state) {
  const key = `${entity}.status.${state}`;
  return DATA.texts && DATA.texts[key] ? DATA.texts[key] : state;
}

/**
 * The moves a status machine allows from `state` (the page data holds the machine, already
 * limited to this page's role), honouring `when` conditions on the entity's fields.
 */
export function allowedMoves(machine, state, entity) {
  return (machine[state] || [])
    .filter((move) =>
      Object.entries(move.when || {}).every(([field, expected]) =>
        Array.isArray(expected) ? expected.includes(entity[field]) : entity[field] === expected,
      ),
    )
    .map((move) => move.to);
}

// ------------------------------------------------------------ Telegram WebApp

/** Telegram.WebApp when the page runs inside Telegram and its script loaded, else null. */
export function telegram() {
  return window.Telegram && window.Telegram.WebApp && window.Telegram.WebApp.initData ? window.Telegram.WebApp : null;
}

/** Signed init data: from Telegram.WebApp, else from the URL fragment (#tgWebAppData=...). */
export function initData() {
  const app = telegram();
  if (app) return app.initData;
  const fragment = new URLSearchParams(location.hash.slice(1));
  return fragment.get("tgWebAppData") || "";
}

/**
 * Load Telegram's telegram-web-app.js when Telegram opened the page (its URL fragment says so).
 * Fails soft: without network or outside Telegram the page works on its own.
 */
export function loadTelegram(timeoutMs = 3000) {
  if (!/tgWebAppVersion=/.test(location.hash)) return Promise.resolve(null);
  return new Promise((resolve) => {
    const script = document.createElement("script");
    const timer = setTimeout(() => resolve(null), timeoutMs);
    script.src = "https://telegram.org/js/telegram-web-app.js";
    script.onload = () => {
      clearTimeout(timer);
      const app = telegram();
      if (app) {
        app.ready();
        app.expand();
      }
      resolve(app);
    };
    script.onerror = () => {
      clearTimeout(timer);
      resolve(null);
    };
    document.head.append(script);
  });
}

/** Haptic feedback inside Telegram (`success`, `warning`, `error`); nothing elsewhere. */
export function haptic(kind = "success") {
  try {
    telegram()?.HapticFeedback?.notificationOccurred(kind);
  } catch {
    /* older clients */
  }
}
