// The side panels drawn from the overview (counters, drivers, consumer
// groups, the pending queue) and from GET /v1/ops/history (the run over time,
// the events/s chart, this gateway's routes).

import { api } from "./auth.js";
import { openTrip } from "./drawer.js";
import { state } from "./state.js";
import { drawAssigned, drawFares, drawOutcomes } from "./story.js";
import { $, el, fmtDuration, fmtTime, metres, num, shortId } from "./util.js";
import { vocab } from "./vocabulary.js";

const SPARK_POINTS = 120;

// ---------------------------------------------------------------- panels

export function renderOverview(o) {
  const counters = $("counters");
  // Classed by what the status is too, so a new one is coloured by its kind.
  const kind = (s) => (vocab.withDriver.has(s) ? " with-driver" : vocab.terminal.has(s) ? " terminal" : "");
  counters.replaceChildren(...vocab.statuses.map((s) => el("div", { class: `counter${kind(s)} ${s}`, "data-status": s },
    el("div", { class: "n", text: String(num(o.byStatus[s]) ?? 0) }),
    el("div", { class: "k", text: s.replace("_", " ") }))));

  const eps = o.eps ?? localEps();
  $("eps").textContent = eps === null ? "-" : eps.toFixed(1);
  state.epsNow = eps;
  drawSpark();

  const dBody = $("drivers-table").tBodies[0];
  const rows = o.driverRows.map((r) => el("tr", {},
    el("td", { text: r.product }), el("td", { class: "num", text: r.online ?? "-" }),
    el("td", { class: "num", text: r.available ?? "-" })));
  if (rows.length > 1) {
    const sum = (k) => o.driverRows.reduce((a, r) => a + (r[k] || 0), 0);
    rows.push(el("tr", {}, el("td", { text: "all" }),
      el("td", { class: "num", text: sum("online") }),
      el("td", { class: "num", text: sum("available") })));
  }
  dBody.replaceChildren(...rows);

  const gBody = $("groups-table").tBodies[0];
  gBody.replaceChildren(...(o.groups.length ? o.groups.map((g) => el("tr", { class: (g.lag || 0) > 100 ? "hot" : "" },
    el("td", { text: g.name }), el("td", { class: "num", text: g.consumers ?? "-" }),
    el("td", { class: "num", text: g.lag ?? "-" }), el("td", { class: "num", text: g.pending ?? "-" })))
    : [el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no consumer groups reported" }))]));
  const dead = $("dead-letters");
  dead.textContent = `${o.dead} dead letter${o.dead === 1 ? "" : "s"}`;
  dead.classList.toggle("bad", o.dead > 0);

  const qBody = $("queue-table").tBodies[0];
  const total = o.pendingTotal ?? o.pending.length;
  $("pending-count").textContent = `${total} waiting${o.openOffers ? `, ${o.openOffers} with an open offer` : ""}`;
  qBody.replaceChildren(...(o.pending.length ? o.pending.slice(0, 100).map((p) => {
    const ratio = p.waitingS === null ? 0 : Math.min(1, p.waitingS / state.expiryS);
    return el("tr", { class: ratio > 0.75 ? "hot" : "" },
      el("td", { class: "num", text: p.order }),
      el("td", {}, el("a", { class: "trip", href: "#", "data-trip": p.id, title: p.id, text: shortId(p.id),
        onclick: (e) => { e.preventDefault(); openTrip(p.id); } })),
      el("td", { text: `${p.product} #${p.rank}`, title: `${p.rank} in the ${p.product} queue` +
        (p.offeredTo ? `; offered to ${p.offeredTo}` : "") }),
      el("td", { class: "num wait" }, fmtDuration(p.waitingS),
        el("span", { class: "bar", style: { width: `${(ratio * 100).toFixed(0)}%` } }),
        el("span", { class: "wait-why", text: whyWaiting(p, o) })));
  }) : [el("tr", {}, el("td", { colspan: "4", class: "muted", text: "nobody is waiting" }))]));
}

// Why a requested trip still waits, from what the overview says about it and
// about the drivers of its product (the dispatcher's own rule: the nearest
// available driver within DISPATCH_RADIUS_M).
export function whyWaiting(p, o) {
  if (p.offeredTo) return `offered to ${shortId(p.offeredTo)}: waiting for an answer`;
  const trip = state.trips.get(p.id);
  const product = p.product || (trip && trip.product) || "";
  if (!trip || !trip.pickup || !o.locations) return "being dispatched";
  let nearest = null;
  for (const d of o.locations) {
    if (d.status !== "available" || (product && d.product !== product)) continue;
    const m = metres(trip.pickup, d.pos);
    if (nearest === null || m < nearest) nearest = m;
  }
  const radius = o.radiusM;
  if (nearest === null) return `no ${product} driver is available`;
  const km = (m) => `${(m / 1000).toFixed(1)} km`;
  if (radius && nearest > radius) {
    return `the nearest available ${product} driver is ${km(nearest)} away, past the ${km(radius)} radius`;
  }
  return `an available ${product} driver is ${km(nearest)} away: next offer on its way`;
}

// ---------------------------------------------------------------- the run over time

export async function pollHistory() {
  try {
    const resp = await api("/v1/ops/history");
    if (!resp.ok) return;
    renderHistory(await resp.json());
  } catch (_) {
    // The overview's banner speaks for the connection; the charts keep what they have.
  }
}

function renderHistory(h) {
  state.history = h;
  const minutes = Array.isArray(h.minutes) ? h.minutes : [];
  $("run-since").textContent = h.since ? `since ${fmtTime(h.since)}` : "";
  const run = h.run || {};
  $("run-counters").replaceChildren(...Object.keys(run)
    .map((k) => el("div", { class: `counter ${k}`, "data-status": k },
      el("div", { class: "n", text: String(num(run[k]) ?? 0) }), el("div", { class: "k", text: k }))));
  $("story-note").textContent = minutes.length ? `the last ${minutes.length} min` : "";
  drawOutcomes($("chart-outcomes"), minutes);
  drawAssigned($("chart-assigned"), minutes);
  drawFares($("chart-fares"), minutes);
  state.spark = (h.events_per_s || []).map((x) => num(x.value) ?? 0);
  drawSpark();
  const routes = Array.isArray(h.routes) ? h.routes : [];
  $("routes-table").tBodies[0].replaceChildren(...(routes.length ? routes.slice(0, 12).map((r) => {
    const rate = r.requests ? (r.errors / r.requests) : 0;
    return el("tr", { class: rate > 0.01 ? "hot" : "" },
      el("td", { text: r.route, title: `${r.rejected} answered 4xx` }),
      el("td", { class: "num", text: r.requests }),
      el("td", { class: "num", text: r.errors ? `${r.errors} (${(rate * 100).toFixed(1)}%)` : "0" }),
      el("td", { class: "num", text: r.p50_ms ?? "-" }),
      el("td", { class: "num", text: r.p95_ms ?? "-" }));
  }) : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "no requests sampled yet (every 10 s)" }))]));
}

function localEps() {
  const cutoff = Date.now() - 10000;
  while (state.eventTimes.length && state.eventTimes[0] < cutoff) state.eventTimes.shift();
  return state.eventTimes.length / 10;
}

function drawSpark() {
  const c = $("spark");
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 260;
  const h = c.clientHeight || 48;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const data = [...state.spark.slice(-(SPARK_POINTS - 1)), ...(state.epsNow === null ? [] : [state.epsNow])];
  c.dataset.points = String(data.length);
  if (data.length < 2) return;
  const max = Math.max(1, ...data);
  g.beginPath();
  data.forEach((v, i) => {
    const x = (i / (SPARK_POINTS - 1)) * w;
    const y = h - 2 - (v / max) * (h - 6);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.strokeStyle = "#4fb3ff";
  g.lineWidth = 1.5;
  g.stroke();
  g.lineTo(((data.length - 1) / (SPARK_POINTS - 1)) * w, h);
  g.lineTo(0, h);
  g.fillStyle = "rgba(79,179,255,.12)";
  g.fill();
  g.fillStyle = "#8796a5";
  g.font = "10px system-ui";
  g.fillText(`max ${max.toFixed(1)}`, 2, 10);
}
