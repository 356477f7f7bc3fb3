// The trip drawer: GET /v1/trips/{id} and its timeline, on click.

import { api } from "./auth.js";
import { map } from "./map.js";
import { whyWaiting } from "./panels.js";
import { state } from "./state.js";
import { $, el, fmtDuration, fmtTime, num, pointOf } from "./util.js";
import { vocab } from "./vocabulary.js";

export async function openTrip(tripId) {
  const drawer = $("drawer");
  drawer.hidden = false;
  drawer.dataset.trip = tripId;
  $("drawer-title").textContent = tripId;
  const body = $("drawer-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading the timeline..." }));
  const known = state.trips.get(tripId);
  select(tripId, known && known.pickup ? { pickup: known.pickup, dropoff: known.dropoff } : null);
  try {
    const id = encodeURIComponent(tripId);
    const [resp, tripResp] = await Promise.all([api(`/v1/trips/${id}/timeline`), api(`/v1/trips/${id}`)]);
    if (drawer.dataset.trip !== tripId) return;
    if (!resp.ok) {
      const problem = await resp.json().catch(() => ({}));
      body.replaceChildren(el("p", { class: "error",
        text: `Timeline unavailable (${resp.status}${problem.title ? ` ${problem.title}` : ""}).` }),
      el("p", { class: "muted", text: problem.detail || "" }));
      return;
    }
    const trip = tripResp.ok ? await tripResp.json() : null;
    if (trip) select(tripId, { pickup: pointOf(trip.pickup), dropoff: pointOf(trip.dropoff) });
    renderTimeline(await resp.json(), known, trip);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error", text: `Timeline unavailable: ${err.message}` }));
  }
}

function select(tripId, where) {
  state.selected = where ? { id: tripId, ...where } : { id: tripId };
  map.canvas.dataset.selected = tripId;
}

function place(p) {
  const at = pointOf(p);
  return at ? `${at.lat.toFixed(5)}, ${at.lon.toFixed(5)}` : "";
}

function money(m) {
  return m && m.amount ? `${m.amount} ${m.currency || ""}`.trim() : "";
}

function renderTimeline(tl, known, trip) {
  const events = Array.isArray(tl.events) ? tl.events : [];
  const t0 = events.length ? Date.parse(events[0].occurred_at) : NaN;
  const kv = el("dl", { class: "kv" });
  const add = (k, v, cls) => {
    if (v !== undefined && v !== null && v !== "") kv.append(el("dt", { text: k }), el("dd", { text: v, class: cls || "" }));
  };
  const last = events[events.length - 1];
  add("status", trip ? trip.status : known ? known.status : (last && vocab.statusOf.get(last.type)) || "");
  add("product", (trip && trip.product) || (known && known.product));
  if (trip) {
    add("rider", trip.rider_id);
    const d = trip.driver;
    add("driver", d ? `${d.first_name} (${d.id})${d.car ? `, ${d.car.color} ${d.car.make} ${d.car.model} ${d.car.plate}` : ""}`
      : trip.driver_id || "none yet");
    add("fare", trip.fare ? `${money(trip.fare)} (estimate ${money(trip.fare_estimate)})`
      : `${money(trip.fare_estimate)} estimated${trip.surge > 1 ? `, surge ${trip.surge}x` : ""}`);
    add("pickup", place(trip.pickup), "place");
    add("drop-off", place(trip.dropoff), "place");
    if (trip.distance_m) add("distance", `${(trip.distance_m / 1000).toFixed(1)} km`);
    add("rating", trip.rating ? `${"★".repeat(trip.rating.stars)}${trip.rating.comment ? ` "${trip.rating.comment}"` : ""}` : "not rated");
    if (trip.status === vocab.initial && state.overview) {
      const p = state.overview.pending.find((x) => x.id === trip.id);
      add("waiting", p ? whyWaiting(p, state.overview) : "");
    }
  }
  add("events", String(events.length));
  if (events.length > 1) add("span", fmtDuration((Date.parse(last.occurred_at) - t0) / 1000));
  const list = el("ol", { class: "timeline" });
  for (const ev of events) {
    const rel = Number.isNaN(t0) ? "" : `+${((Date.parse(ev.occurred_at) - t0) / 1000).toFixed(2)}s`;
    const deliveries = Array.isArray(ev.deliveries) ? ev.deliveries : [];
    const dl = el("ul", { class: "deliveries" });
    for (const d of deliveries) {
      const delivered = Date.parse(d.delivered_at);
      const acked = Date.parse(d.acked_at);
      const lat = Number.isNaN(delivered) || Number.isNaN(ev.occurred_at && Date.parse(ev.occurred_at))
        ? "" : ` after ${Math.max(0, delivered - Date.parse(ev.occurred_at))} ms`;
      const took = !Number.isNaN(acked) && !Number.isNaN(delivered) ? `, acked in ${Math.max(0, acked - delivered)} ms` : ", not acked";
      const cls = Number.isNaN(acked) ? "unacked" : (num(d.attempts) || 1) > 1 ? "retry" : "";
      dl.append(el("li", { class: cls,
        text: `${d.group} → ${d.consumer || "?"}: delivered${lat}${took}${(num(d.attempts) || 1) > 1 ? `, ${d.attempts} attempts` : ""}` }));
    }
    if (!deliveries.length) dl.append(el("li", { text: "no consumer group delivery recorded" }));
    list.append(el("li", {},
      el("div", {}, el("strong", { class: `type t-${(ev.type || "").replace(/^trip\./, "")}`, text: ev.type || "?" }),
        " ", el("span", { class: "when", text: `${fmtTime(ev.occurred_at)} ${rel}` })),
      el("div", { class: "meta", text: `${ev.producer || "?"} · trace ${ev.trace_id || "-"}${ev.stream_id ? ` · ${ev.stream_id}` : ""}` }),
      dl));
  }
  $("drawer-body").replaceChildren(kv, events.length ? list : el("p", { class: "muted", text: "No events." }));
}
