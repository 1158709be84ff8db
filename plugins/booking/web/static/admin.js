// The admins' live bookings panel: map, timeline, list with status buttons, blocks, figures.
import { Live } from "tenantry/live.js";
import { allowedMoves, api, clock, el, haptic, loadTelegram, pageData, statusLabel, t, toast } from "tenantry/ui.js";

const data = pageData();
const tz = data.timezone;
const urlDay = new URLSearchParams(location.search).get("date");
const state = { day: /^\d{4}-\d\d-\d\d$/.test(urlDay || "") ? urlDay : data.today, bookings: new Map(), blocks: [], opens: 0, closes: 1440, loaded: null };
const $ = (id) => document.getElementById(id);
const finalStates = new Set(data.final);

/** {date: "YYYY-MM-DD", minutes} of an ISO instant in the tenant's zone. */
function local(iso) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(iso));
  const get = (type) => parts.find((p) => p.type === type).value;
  return { date: `${get("year")}-${get("month")}-${get("day")}`, minutes: Number(get("hour")) * 60 + Number(get("minute")) };
}

function holds(booking) {
  return !data.released.includes(booking.status) && !finalStates.has(booking.status);
}

function sorted() {
  return [...state.bookings.values()].sort((a, b) => a.starts_at.localeCompare(b.starts_at) || a.id - b.id);
}

function label(booking) {
  if (data.kind === "services") return data.services[booking.service] || booking.service || "";
  return t("booking.web.guests", { count: booking.party_size });
}

async function load() {
  const day = state.day;
  history.replaceState(null, "", `${location.pathname}?date=${day}`);
  try {
    const board = await api(`${data.urls.board}?date=${day}`);
    if (day !== state.day) return;
    state.bookings = new Map(board.bookings.map((b) => [b.id, b]));
    state.blocks = board.blocks;
    state.opens = board.opens;
    state.closes = board.closes;
    state.loaded = day;
    render();
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

function render() {
  renderFigures();
  renderMap();
  renderTimeline();
  renderList();
  renderBlocks();
}

function renderFigures() {
  const all = sorted();
  $("fig-bookings").textContent = all.length;
  $("fig-covers").textContent = all.filter((b) => !data.released.includes(b.status)).reduce((n, b) => n + b.party_size, 0);
  $("fig-no-shows").textContent = all.filter((b) => b.status === data.no_show).length;
}

function renderMap() {
  const zones = new Map();
  for (const resource of data.resources) {
    if (!zones.has(resource.zone)) zones.set(resource.zone, []);
    zones.get(resource.zone).push(resource);
  }
  const now = new Date().toISOString();
  const cards = [];
  for (const [zone, resources] of zones) {
    const tables = resources.map((resource) => {
      const mine = sorted().filter((b) => b.resources.includes(resource.id) && holds(b));
      const seated = mine.find((b) => b.status === data.seated);
      const next = mine.find((b) => b.status !== data.seated && (state.day !== data.today || b.ends_at > now));
      let who = t("booking.web.free");
      let kind = "";
      if (seated) [who, kind] = [t("booking.web.seated_now", { name: seated.customer_name }), "busy"];
      else if (next) [who, kind] = [t("booking.web.next", { time: next.local_start.slice(11), name: next.customer_name }), "booked"];
      const detail = resource.seats ? t("booking.web.seats", { seats: resource.seats }) : "";
      return el("div", { class: `table ${kind}`, dataset: { resource: resource.id } }, el("b", {}, resource.name || resource.id), el("span", { class: "muted" }, detail), el("div", { class: "who" }, who));
    });
    cards.push(el("div", { class: "zone" }, zone ? el("h3", {}, zone) : null, el("div", { class: "tables" }, tables)));
  }
  $("map").replaceChildren(...cards);
}

function renderTimeline() {
  const span = Math.max(60, state.closes - state.opens);
  const place = (start, end, text, cls) => {
    const left = Math.max(0, (start - state.opens) / span) * 100;
    const width = Math.max(1.5, (Math.min(end, state.closes) - Math.max(start, state.opens)) / span * 100);
    return el("div", { class: `span ${cls}`, style: `left:${left}%;width:${width}%`, title: text }, text);
  };
  const dayMinutes = (iso) => {
    const at = local(iso);
    return at.date < state.day ? 0 : at.date > state.day ? 1440 + at.minutes : at.minutes;
  };
  const lanes = data.resources.map((resource) => {
    const spans = sorted().filter((b) => b.resources.includes(resource.id)).map((b) => place(dayMinutes(b.starts_at), dayMinutes(b.ends_at), `${b.local_start.slice(11)} ${b.customer_name}`, holds(b) ? "" : "released"));
    const blocks = state.blocks.filter((x) => !x.resource || x.resource === resource.id).map((x) => place(dayMinutes(x.starts_at), dayMinutes(x.ends_at), x.reason || "×", "blocked"));
    return el("div", { class: "lane" }, el("span", {}, resource.name || resource.id), el("div", { class: "track" }, spans, blocks));
  });
  const hour = (m) => `${String(Math.floor(m / 60) % 24).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  $("timeline").replaceChildren(el("div", { class: "hours" }, el("span", {}, hour(state.opens)), el("span", {}, hour(state.closes))), ...lanes);
}

function renderList() {
  const items = sorted().map((booking) => {
    const moves = allowedMoves(data.machine, booking.status, { kind: data.kind, source: booking.source });
    return el(
      "article",
      { class: "item", id: `booking-${booking.id}`, dataset: { status: booking.status } },
      el("header", {}, el("b", {}, `${booking.local_start.slice(11)} · ${booking.customer_name}`), el("span", { class: "status" }, statusLabel("booking", booking.status))),
      el("div", { class: "muted" }, `#${booking.id} · ${label(booking)} · ${booking.resources.join(", ")} · ${booking.phone}`),
      booking.comment ? el("div", {}, booking.comment) : null,
      el("div", { class: "actions" }, moves.map((to) => el("button", { type: "button", dataset: { to }, onclick: () => move(booking, to) }, statusLabel("booking", to)))),
    );
  });
  $("bookings").replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, t("booking.web.none"))]));
}

function renderBlocks() {
  const items = state.blocks.map((block) =>
    el("div", { class: "item row" }, el("span", { class: "grow" }, `${clock(block.starts_at, tz)}–${clock(block.ends_at, tz)} · ${block.resource || t("booking.web.whole_place")} ${block.reason ? `· ${block.reason}` : ""}`), el("button", { type: "button", class: "danger", onclick: () => unblock(block.id) }, t("booking.web.unblock"))),
  );
  $("blocks").replaceChildren(...items);
}

async function move(booking, to) {
  try {
    const view = await api(`${data.urls.bookings}/${booking.id}/status`, { method: "POST", body: { status: to } });
    upsert(view);
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

async function unblock(id) {
  try {
    await api(`${data.urls.blocks}/${id}`, { method: "DELETE" });
    await load();
  } catch (problem) {
    toast(problem.text, "bad");
  }
}

function upsert(view) {
  if (view.local_start.slice(0, 10) === state.day) state.bookings.set(view.id, view);
  else state.bookings.delete(view.id);
  render();
}

function onEvent(frame) {
  if (!frame.event.startsWith("booking.")) return;
  const view = frame.data;
  upsert(view);
  const text = frame.event === "booking.created"
    ? t("booking.web.new_booking", { id: view.id, name: view.customer_name, time: view.local_start.slice(5).replace("-", ".") })
    : t("booking.web.changed", { id: view.id, status: statusLabel("booking", view.status) });
  toast(text);
  if (frame.event === "booking.created") haptic("success");
  document.getElementById(`booking-${view.id}`)?.classList.add("fresh");
}

$("block-form").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const form = submitted.target;
  const error = $("block-error");
  error.hidden = true;
  const starts = form.starts.value;
  const ends = form.ends.value;
  if (!/^\d\d:\d\d$/.test(starts) || !/^\d\d:\d\d$/.test(ends) || ends <= starts) {
    error.textContent = t("booking.web.block_times");
    error.hidden = false;
    return;
  }
  try {
    await api(data.urls.blocks, { method: "POST", body: { date: state.day, starts, ends, resource: form.resource.value || null, reason: form.reason.value } });
    toast(t("booking.web.blocked", { from: starts, to: ends }));
    form.reset();
    await load();
  } catch (problem) {
    error.textContent = problem.text;
    error.hidden = false;
  }
});

const dayInput = $("day");
dayInput.value = state.day;
dayInput.addEventListener("change", () => {
  if (!dayInput.value) return;
  state.day = dayInput.value;
  load();
});
$("today").addEventListener("click", () => {
  state.day = dayInput.value = data.today;
  load();
});

loadTelegram(); // opened as a WebApp: Telegram's theme and haptics; not awaited
load();
if (data.live) {
  new Live({ ticketUrl: data.urls.ticket, socketUrl: data.urls.socket, topics: ["bookings"], onEvent, onReload: load, stateElement: $("live-state") }).start();
} else {
  new Live({ ticketUrl: "", socketUrl: "", topics: [], onEvent, onReload: load, stateElement: $("live-state") }).poll();
}
