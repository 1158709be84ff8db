// The customers' booking WebApp: day, party size (or service and staff), a free time, name and
// phone, book; my bookings with cancel. Calls the booking API with the WebApp's init data.
import { allowedMoves, api, el, haptic, initData, loadTelegram, pageData, t, telegram, toast } from "tenantry/ui.js";

const data = pageData();
const $ = (id) => document.getElementById(id);
const state = { init: "", slot: null };
const call = (url, options = {}) => api(url, { ...options, initData: state.init });
const services = data.kind === "services";

function dayLabel(iso) {
  return new Date(`${iso}T12:00:00Z`).toLocaleDateString(document.documentElement.lang, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
}

function fillChoices() {
  $("date").replaceChildren(...data.days.map((day) => el("option", { value: day }, dayLabel(day))));
  if (services) {
    $("service").replaceChildren(...data.services.map((s) => el("option", { value: s.id }, s.name)));
    fillStaff();
    $("service").addEventListener("change", () => { fillStaff(); clearTimes(); });
    $("staff").addEventListener("change", clearTimes);
  } else {
    const sizes = Array.from({ length: data.max_party }, (_, n) => n + 1);
    $("party").replaceChildren(...sizes.map((n) => el("option", { value: n, selected: n === 2 }, String(n))));
    $("party").addEventListener("change", clearTimes);
  }
  $("date").addEventListener("change", clearTimes);
}

function fillStaff() {
  const service = data.services.find((s) => s.id === $("service").value);
  const staff = service ? service.staff : [];
  $("staff").replaceChildren(el("option", { value: "" }, t("booking.web.any_staff")), ...staff.map((id) => el("option", { value: id }, data.staff[id] || id)));
}

function clearTimes() {
  state.slot = null;
  $("times-box").hidden = true;
  $("times").replaceChildren();
}

function query() {
  const params = new URLSearchParams({ date: $("date").value });
  if (services) {
    params.set("service", $("service").value);
    if ($("staff").value) params.set("staff", $("staff").value);
  } else params.set("party_size", $("party").value);
  return params;
}

function showError(text) {
  const error = $("form-error");
  error.textContent = text;
  error.hidden = !text;
  if (text) haptic("error");
}

async function findTimes() {
  showError("");
  clearTimes();
  try {
    const result = await call(`${data.urls.availability}?${query()}`);
    const chips = result.slots.map((slot) =>
      el("button", { type: "button", "aria-pressed": "false", dataset: { start: slot.starts_at }, onclick: (clicked) => pick(slot, clicked.currentTarget) }, slot.local_time),
    );
    $("times").replaceChildren(...(chips.length ? chips : [el("p", { class: "muted" }, t("booking.web.no_times"))]));
    $("times-box").hidden = false;
  } catch (problem) {
    showError(problem.text);
  }
}

function pick(slot, button) {
  state.slot = slot;
  for (const chip of $("times").querySelectorAll("button")) chip.setAttribute("aria-pressed", String(chip === button));
  const app = telegram();
  if (app) {
    app.MainButton.setText(`${t("booking.web.confirm")} · ${slot.local_time}`);
    app.MainButton.show();
  }
}

async function book() {
  showError("");
  $("form-ok").hidden = true;
  if (!state.slot) return showError(t("booking.web.pick_time"));
  const name = $("name").value.trim();
  const phone = $("phone").value.trim();
  if (!name || name.length > 100) return showError(t("booking.error.customer_name"));
  if (!phone) return showError(t("booking.error.phone"));
  const body = { starts_at: state.slot.starts_at, customer_name: name, phone };
  if (services) {
    body.service = $("service").value;
    if ($("staff").value) body.staff = $("staff").value;
  } else body.party_size = Number($("party").value);
  $("confirm").disabled = true;
  try {
    const booking = await call(data.urls.bookings, { method: "POST", body, headers: { "Idempotency-Key": crypto.randomUUID() } });
    const ok = $("form-ok");
    ok.textContent = t("booking.web.booked", { id: booking.id, when: booking.local_start });
    ok.hidden = false;
    haptic("success");
    clearTimes();
    telegram()?.MainButton.hide();
  } catch (problem) {
    showError(problem.text);
  } finally {
    $("confirm").disabled = false;
  }
}

async function loadMine() {
  try {
    const bookings = await call(data.urls.mine);
    const cards = bookings.map((booking) => {
      const canCancel = allowedMoves(data.machine, booking.status, { kind: data.kind, source: booking.source }).includes(data.cancelled);
      return el(
        "article",
        { class: "item", id: `my-booking-${booking.id}`, dataset: { status: booking.status } },
        el("header", {}, el("b", {}, booking.local_start), el("span", { class: "status" }, t(`booking.status.${booking.status}`))),
        el("div", { class: "muted" }, `#${booking.id} · ${services ? (data.services.find((s) => s.id === booking.service) || {}).name || "" : t("booking.web.guests", { count: booking.party_size })}`),
        canCancel ? el("div", { class: "actions" }, el("button", { type: "button", class: "danger", onclick: () => cancel(booking) }, t("booking.web.cancel"))) : null,
      );
    });
    $("mine-list").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, t("booking.web.mine_none"))]));
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

async function cancel(booking) {
  try {
    await call(`${data.urls.bookings}/${booking.id}/status`, { method: "POST", body: { status: data.cancelled } });
    toast(t("booking.web.cancelled", { id: booking.id }));
    await loadMine();
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

function showTab(name) {
  $("tab-book").setAttribute("aria-selected", String(name === "book"));
  $("tab-mine").setAttribute("aria-selected", String(name === "mine"));
  $("book").hidden = name !== "book";
  $("mine").hidden = name !== "mine";
  if (name === "mine") loadMine();
}

async function main() {
  await loadTelegram();
  state.init = initData();
  fillChoices();
  const user = telegram()?.initDataUnsafe?.user;
  if (user && !$("name").value) $("name").value = [user.first_name, user.last_name].filter(Boolean).join(" ");
  $("find").addEventListener("click", findTimes);
  $("book-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    book();
  });
  telegram()?.MainButton.onClick(book);
  $("tab-book").onclick = () => showTab("book");
  $("tab-mine").onclick = () => showTab("mine");
  if (!state.init) $("no-init").hidden = false;
}

main();
