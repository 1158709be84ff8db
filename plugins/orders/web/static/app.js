// The customers' ordering WebApp: stores, catalog, cart, pickup or delivery, checkout, my orders.
// Calls the orders API with the WebApp's init data; order statuses refresh every 2 s while open.
import { allowedMoves, api, el, haptic, initData, loadTelegram, money, pageData, statusLabel, t, telegram, toast } from "tenantry/ui.js";

const data = pageData();
const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const state = { catalog: [], store: null, cart: new Map(), type: "pickup", mine: [], init: "", reasons: new Map() };
let pollTimer = null;

const call = (url, options = {}) => api(url, { ...options, initData: state.init });

function itemsOf(store) {
  return store.categories.flatMap((category) => category.items);
}

function showTab(name) {
  $("tab-shop").setAttribute("aria-selected", String(name === "shop"));
  $("tab-mine").setAttribute("aria-selected", String(name === "mine"));
  $("shop").hidden = name !== "shop";
  $("mine").hidden = name !== "mine";
  if (name === "mine") loadMine();
}

function renderStores() {
  $("stores").hidden = Boolean(state.store);
  $("catalog").hidden = !state.store;
  $("stores").replaceChildren(
    ...state.catalog.map((store) =>
      el("button", { type: "button", class: "item", dataset: { store: store.id }, onclick: () => openStore(store) }, el("b", {}, store.name), el("div", { class: "muted" }, store.address || "")),
    ),
  );
}

function openStore(store) {
  if (!state.store || state.store.id !== store.id) state.cart.clear();
  state.store = store;
  state.type = store.pickup ? "pickup" : "delivery";
  renderStores();
  const categories = store.categories.map((category) =>
    el(
      "section",
      { class: "card" },
      el("h2", {}, category.name),
      el(
        "div",
        { class: "list" },
        category.items.map((item) =>
          el(
            "div",
            { class: "item row", dataset: { item: item.id } },
            el("div", { class: "grow" }, el("b", {}, item.name), el("div", { class: "muted" }, item.description || ""), el("div", {}, money(item.price, store.currency))),
            el("button", { type: "button", class: "primary", onclick: () => add(item.id, 1) }, t("orders.web.add")),
          ),
        ),
      ),
    ),
  );
  $("catalog").replaceChildren(el("button", { type: "button", class: "link", onclick: back }, `← ${t("orders.web.back")}`), el("h2", {}, store.name), ...categories);
  renderCart();
}

function back() {
  state.store = null;
  state.cart.clear();
  renderStores();
  renderCart();
}

function add(itemId, delta) {
  const quantity = Math.min(data.max_quantity, (state.cart.get(itemId) || 0) + delta);
  if (quantity <= 0) state.cart.delete(itemId);
  else state.cart.set(itemId, quantity);
  haptic("success");
  renderCart();
}

function totals() {
  const items = new Map(itemsOf(state.store).map((item) => [item.id, item]));
  const subtotal = [...state.cart].reduce((sum, [id, quantity]) => sum + items.get(id).price * quantity, 0);
  const fee = state.type === "delivery" ? state.store.delivery_fee : 0;
  return { items, subtotal, fee, total: subtotal + fee };
}

function renderCart() {
  const count = [...state.cart.values()].reduce((a, b) => a + b, 0);
  $("cart").hidden = !state.store || count === 0;
  $("cart-button").hidden = count === 0;
  $("cart-count").textContent = count ? `(${count})` : "";
  if (!state.store || count === 0) return mainButton(false);
  const { items, subtotal, fee, total } = totals();
  const currency = state.store.currency;
  $("cart-lines").replaceChildren(
    ...[...state.cart].map(([id, quantity]) =>
      el("div", { class: "item row", dataset: { line: id } }, el("span", { class: "grow" }, `${items.get(id).name} × ${quantity}`), el("button", { type: "button", onclick: () => add(id, -1) }, "−"), el("button", { type: "button", onclick: () => add(id, 1) }, "+")),
    ),
  );
  const types = [];
  if (state.store.pickup) types.push("pickup");
  if (state.store.delivery) types.push("delivery");
  $("types").replaceChildren(...types.map((type) => el("button", { type: "button", "aria-pressed": String(state.type === type), dataset: { type }, onclick: () => { state.type = type; renderCart(); } }, t(`orders.web.${type}`))));
  $("address-label").hidden = state.type !== "delivery";
  const lines = [`${t("orders.web.subtotal")}: ${money(subtotal, currency)}`];
  if (fee) lines.push(`${t("orders.web.delivery_fee")}: ${money(fee, currency)}`);
  lines.push(`${t("orders.web.total")}: ${money(total, currency)}`);
  if (state.store.min_order) lines.push(t("orders.web.min_order", { amount: money(state.store.min_order, currency) }));
  $("totals").replaceChildren(...lines.map((line) => el("div", {}, line)));
  mainButton(true);
}

function mainButton(show) {
  const app = telegram();
  if (!app) return;
  if (show) {
    app.MainButton.setText(t("orders.web.checkout"));
    app.MainButton.show();
  } else app.MainButton.hide();
}

function refuse(text) {
  const error = $("checkout-error");
  error.textContent = text;
  error.hidden = false;
  haptic("error");
}

async function checkout() {
  $("checkout-error").hidden = true;
  const form = $("checkout");
  const address = form.address.value.trim();
  const phone = form.phone.value.trim();
  if (state.type === "delivery" && !address) return refuse(t("orders.error.address_required"));
  if (data.require_phone && !phone) return refuse(t("orders.error.phone_required"));
  const body = { store_id: state.store.id, type: state.type, items: [...state.cart].map(([item_id, quantity]) => ({ item_id, quantity })), address, phone, comment: form.comment.value.trim() };
  $("place").disabled = true;
  try {
    const order = await call(data.urls.orders, { method: "POST", body, headers: { "Idempotency-Key": crypto.randomUUID() } });
    toast(t("orders.web.placed", { id: order.id }));
    haptic("success");
    state.cart.clear();
    form.comment.value = ""; // the phone and address stay for the next order
    renderCart();
    showTab("mine");
  } catch (problem) {
    refuse(problem.text);
  } finally {
    $("place").disabled = false;
  }
}

/**
 * Why an order ended (a store's rejection, the expiry job): the reason of the history entry
 * that moved it to its final state, read once per order.
 */
async function readReasons() {
  const ended = state.mine.filter((order) => data.final.includes(order.status) && !state.reasons.has(order.id));
  await Promise.all(ended.map(async (order) => {
    const history = await call(`${data.urls.orders}/${order.id}/history`).catch(() => []);
    const last = history.filter((entry) => entry.to_status === order.status).pop();
    let reason = last ? last.reason : "";
    // The system's reasons are words of ours ("expired"): said in the tenant's language.
    if (reason && last.role === "system" && data.texts[`orders.reason.${reason}`]) reason = t(`orders.reason.${reason}`);
    state.reasons.set(order.id, reason);
  }));
}

async function loadMine() {
  clearTimeout(pollTimer);
  try {
    state.mine = await call(data.urls.mine);
    await readReasons();
    renderMine();
  } catch (problem) {
    toast(problem.text, "bad");
  }
  if (state.mine.some((order) => !data.final.includes(order.status))) pollTimer = setTimeout(pollMine, POLL_MS);
}

function pollMine() {
  if (document.visibilityState === "visible" && !$("mine").hidden) loadMine();
  else pollTimer = setTimeout(pollMine, POLL_MS);
}

function renderMine() {
  const cards = state.mine.map((order) => {
    const cancel = allowedMoves(data.machine, order.status, { type: order.type }).filter((to) => data.final.includes(to));
    return el(
      "article",
      { class: "item", id: `my-order-${order.id}`, dataset: { status: order.status } },
      el("header", {}, el("b", {}, `#${order.id}`), el("span", { class: "status" }, statusLabel("orders", order.status))),
      el("div", {}, order.items.map((line) => `${line.quantity}× ${line.name}`).join(", ")),
      el("div", { class: "muted" }, `${t(`orders.type.${order.type}`)} · ${money(order.total, order.currency)}`),
      state.reasons.get(order.id) ? el("div", { class: "reason" }, t("orders.web.reason", { reason: state.reasons.get(order.id) })) : null,
      el("div", { class: "actions" }, cancel.map((to) => el("button", { type: "button", class: "danger", onclick: () => move(order, to) }, statusLabel("orders", to)))),
    );
  });
  $("mine-list").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, t("orders.web.mine_none"))]));
}

async function move(order, to) {
  try {
    await call(`${data.urls.orders}/${order.id}/status`, { method: "POST", body: { status: to, expected_status: order.status } });
    await loadMine();
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

async function main() {
  await loadTelegram();
  state.init = initData();
  $("tab-shop").onclick = () => showTab("shop");
  $("tab-mine").onclick = () => showTab("mine");
  $("cart-button").onclick = () => $("cart").scrollIntoView({ behavior: "smooth" });
  $("checkout").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    checkout();
  });
  telegram()?.MainButton.onClick(checkout);
  if (!state.init) {
    $("no-init").hidden = false;
    return;
  }
  try {
    state.catalog = await call(data.urls.catalog);
  } catch (problem) {
    toast(problem.text, "bad");
    return;
  }
  renderStores();
  if (state.catalog.length === 1) openStore(state.catalog[0]);
}

main();
