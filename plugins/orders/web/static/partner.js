// A store's live order panel: newest first, toast + badge for new orders, the machine's moves.
import { Live } from "tenantry/live.js";
import { allowedMoves, api, clock, el, haptic, loadTelegram, money, pageData, statusLabel, t, toast } from "tenantry/ui.js";

const data = pageData();
const store = data.store;
const orders = new Map();
const fresh = new Set();
const $ = (id) => document.getElementById(id);
const title = document.title;
let reloadTimer = null;

async function load() {
  try {
    const list = await api(data.urls.orders);
    orders.clear();
    for (const order of list) orders.set(order.id, order);
    render();
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 300);
}

function actionLabel(to, id) {
  const key = `orders.action.${to}`;
  return data.texts[key] ? t(key, { id }) : statusLabel("orders", to);
}

function card(order) {
  const moves = allowedMoves(data.machine, order.status, { type: order.type });
  const lines = (order.items || []).map((line) => `${line.quantity}× ${line.name}`).join(", ");
  return el(
    "article",
    { class: `item ${fresh.has(order.id) ? "fresh" : ""}`, id: `order-${order.id}`, dataset: { status: order.status }, onclick: () => seen(order.id) },
    el("header", {}, el("b", {}, `#${order.id} · ${order.customer_name || ""}`), el("span", { class: "status" }, statusLabel("orders", order.status))),
    el("div", { class: "muted" }, [order.created_at ? clock(order.created_at, data.timezone) : "", t(`orders.type.${order.type}`), money(order.total, order.currency || store.currency)].filter(Boolean).join(" · ")),
    el("div", {}, lines),
    order.address ? el("div", { class: "muted" }, order.address) : null,
    order.phone ? el("div", { class: "muted" }, el("a", { href: `tel:${order.phone}` }, order.phone)) : null,
    order.comment ? el("div", {}, order.comment) : null,
    order.reason ? el("div", { class: "muted" }, t("orders.web.reason", { reason: order.reason })) : null,
    el("div", { class: "actions" }, moves.map((to) => el("button", { type: "button", class: to === data.rejected ? "danger" : to === moves[0] ? "primary" : "", dataset: { to }, onclick: () => move(order, to) }, actionLabel(to, order.id)))),
  );
}

function render() {
  const list = [...orders.values()].sort((a, b) => b.id - a.id);
  $("orders").replaceChildren(...(list.length ? list.map(card) : [el("p", { class: "muted" }, t("orders.web.none"))]));
  const count = list.filter((o) => o.status === data.initial).length;
  $("badge").textContent = count;
  $("badge").hidden = count === 0;
  document.title = count ? `(${count}) ${title}` : title;
}

function seen(id) {
  if (fresh.delete(id)) document.getElementById(`order-${id}`)?.classList.remove("fresh");
}

function askReason() {
  const dialog = $("reject-dialog");
  const form = $("reject-form");
  const error = $("reject-error");
  form.reason.value = "";
  error.hidden = true;
  dialog.showModal();
  return new Promise((resolve) => {
    $("reject-cancel").onclick = () => {
      dialog.close();
      resolve(null);
    };
    form.onsubmit = (submitted) => {
      submitted.preventDefault();
      const reason = form.reason.value.trim();
      if (!reason) {
        error.textContent = t("orders.web.reason_required");
        error.hidden = false;
        return;
      }
      dialog.close();
      resolve(reason);
    };
  });
}

async function move(order, to) {
  let reason = "";
  if (to === data.rejected) {
    reason = await askReason();
    if (reason === null) return;
  }
  try {
    const view = await api(`${data.urls.status}/${order.id}/status`, { method: "POST", body: { status: to, reason, expected_status: order.status } });
    orders.set(view.id, view);
    seen(view.id);
    render();
  } catch (problem) {
    toast(problem.text, "bad");
    if (problem.status === 409) reloadSoon();
  }
}

function onEvent(frame) {
  const event = frame.data;
  if (!frame.event.startsWith("orders.") || event.store_id !== store.id) return;
  const known = orders.get(event.order_id) || {};
  const view = { ...known, id: event.order_id, store_id: event.store_id, customer_name: event.customer_name, type: event.type, status: event.status, total: event.total, currency: event.currency, items: known.items || event.items, reason: event.reason || known.reason };
  orders.set(view.id, view);
  if (frame.event === "orders.created") {
    fresh.add(view.id);
    toast(t("orders.web.new_order", { id: view.id, name: view.customer_name, total: money(view.total, view.currency) }));
    haptic("success");
    reloadSoon(); // the address, phone and time are read over HTTP
  } else if (frame.event === "orders.status_changed") {
    toast(t("orders.web.changed", { id: view.id, status: statusLabel("orders", view.status) }));
  }
  render();
}

// Opened as a WebApp (sign-in by init data keeps Telegram's fragment): its script gives the
// haptics of new orders and the theme. Not awaited: the list and the socket do not wait for it.
loadTelegram();
load();
const live = new Live({ ticketUrl: data.urls.ticket, socketUrl: data.urls.socket, topics: [`orders:${store.id}`], onEvent, onReload: load, stateElement: $("live-state") });
if (data.live) live.start();
else live.poll();
