// GET /v1/ops/overview, polled: counters, the queue, consumer groups, the
// active trips, where the online drivers are, the regions and the timers.

import { api, auth } from "./auth.js";
import { hideBanner, setHealth, showBanner } from "./health.js";
import { loadBasemap, resizeMap } from "./map.js";
import { renderOverview } from "./panels.js";
import { currentPos, state, touch, tripOf, regionOfId } from "./state.js";
import { renderStorage } from "./storage.js";
import { $, el, num, pointOf } from "./util.js";
import { vocab } from "./vocabulary.js";

// GET /v1/ops/overview (docs/api.md, /openapi.json) carries everything the
// page shows but the live feed: counters, the queue, consumer groups, the
// active trips, where the online drivers are, the regions and the timers.
export function normalizeOverview(o) {
  const out = {};
  out.byStatus = o.trips_by_status || {};
  out.pending = (o.pending || []).map((p, i) => ({
    id: p.trip_id,
    product: p.product || "",
    order: i + 1, // the server's order: oldest request first
    rank: num(p.queue_position) ?? i + 1, // place among its product's requests
    waitingS: num(p.waiting_s),
    offeredTo: p.offered_to || null,
  }));
  out.eps = num(o.events_per_s);
  out.openOffers = num(o.open_offers);
  out.pendingTotal = o.pending_total && typeof o.pending_total === "object"
    ? Object.values(o.pending_total).reduce((a, n) => a + (num(n) || 0), 0) : null;
  out.missing = Array.isArray(o.missing) ? o.missing : [];

  const d = o.drivers || null;
  out.driverRows = [];
  if (d) {
    for (const product of vocab.products) {
      const v = d[product];
      if (v && typeof v === "object") {
        out.driverRows.push({ product, online: num(v.online), available: num(v.available) });
      }
    }
  }
  // Null when driver_service did not answer: the map keeps what it has.
  out.locations = d && Array.isArray(d.locations) ? d.locations.map((x) => ({
    id: x.driver_id,
    region: x.region || regionOfId(x.driver_id),
    pos: pointOf(x.location),
    status: x.status,
    product: x.product || "",
    tripId: x.trip_id || null,
  })).filter((x) => x.pos) : null;
  out.locationsTotal = d ? num(d.locations_total) : null;
  out.activeTrips = Array.isArray(o.active_trips) ? o.active_trips.map((t) => ({
    id: t.trip_id,
    region: t.region || regionOfId(t.trip_id),
    status: t.status,
    product: t.product || "",
    pickup: pointOf(t.pickup),
    dropoff: pointOf(t.dropoff),
    driverId: t.driver_id || null,
    offeredTo: t.offered_to || null,
    requestedAt: Date.parse(t.requested_at) || null,
  })) : null;
  out.activeTotal = num(o.active_trips_total);

  out.groups = (o.consumer_groups || []).map((g) => ({
    name: [g.stream, g.group].filter(Boolean).join(" / ") || "?",
    consumers: num(g.consumers),
    lag: num(g.lag),
    pending: num(g.pending),
  }));
  out.dead = num(o.dead_letters) ?? 0;
  out.regions = Array.isArray(o.regions) ? o.regions.filter((r) => r && r.name && r.bounds) : [];
  out.expiryS = num(o.trip_expiry_s);
  out.radiusM = num(o.dispatch_radius_m);
  return out;
}

export async function pollOverview() {
  const sentAt = Date.now();
  try {
    const resp = await api("/v1/ops/overview");
    if (!resp.ok) throw new Error(`overview ${resp.status}`);
    const raw = await resp.json();
    const o = normalizeOverview(raw);
    state.overview = o;
    state.overviewAt = Date.now();
    setHealth("overview", "ok", "overview");
    if (o.expiryS) state.expiryS = o.expiryS;
    if (o.regions.length) setRegions(o.regions);
    if (o.activeTrips) applyActiveTrips(o.activeTrips, sentAt);
    if (o.locations) applyDriverPositions(o.locations, o.locationsTotal);
    renderOverview(o);
    renderStorage(raw.storage);
    hideBanner("overview");
    if (o.missing.length) showBanner("partial", `Overview is partial: no answer from ${o.missing.join(" and ")}.`);
    else hideBanner("partial");
  } catch (err) {
    if (!auth.token) return;
    setHealth("overview", "bad", "overview");
    showBanner("overview", `Overview unavailable: ${err.message}. Retrying.`);
  }
}

export function setRegions(regions) {
  const names = regions.map((r) => r.name).join(",");
  if (names !== state.regions.map((r) => r.name).join(",")) {
    state.regions = regions;
    const select = $("region-select");
    select.replaceChildren(...regions.map((r) => el("option", { value: r.name, text: r.name })));
    select.hidden = regions.length < 2;
    $("region-name").hidden = regions.length > 1;
  }
  const region = regions.find((r) => r.name === state.chosenRegion) || regions[0];
  $("region-select").value = region.name;
  showRegion(region);
}

export function showRegion(region) {
  const changed = !state.region || state.region.name !== region.name
    || JSON.stringify(state.region.bounds) !== JSON.stringify(region.bounds);
  if (!changed) return;
  state.region = region;
  $("region-name").textContent = region.name;
  $("map").dataset.region = region.name;
  if (!state.basemap || state.basemap.region !== region.name) loadBasemap(region.name);
  resizeMap();
}

export function chooseRegion(name) {
  state.chosenRegion = name;
  const region = state.regions.find((r) => r.name === name);
  if (region) showRegion(region);
  touch();
}

// The overview's active trips are the truth; a status change the feed has
// shown since the request was sent is newer than the answer, and stays.
function applyActiveTrips(list, sentAt) {
  const listed = new Set();
  for (const a of list) {
    if (!a.id) continue;
    listed.add(a.id);
    const t = tripOf(a.id);
    t.region = a.region;
    t.product = a.product || t.product;
    t.pickup = a.pickup || t.pickup;
    t.dropoff = a.dropoff || t.dropoff;
    t.requestedAt = a.requestedAt || t.requestedAt;
    if ((t.liveAt || 0) > sentAt) continue;
    t.status = a.status;
    t.until = 0;
    t.driverId = a.driverId;
    t.offeredTo = a.offeredTo;
  }
  for (const [id, t] of state.trips) {
    if (listed.has(id) || vocab.terminal.has(t.status) || (t.liveAt || 0) > sentAt) continue;
    state.trips.delete(id); // ended or beyond the list's cap
  }
  touch();
}

// ---------------------------------------------------------------- drivers

// Positions come with every overview: each car glides from where it was to
// where it is over one polling interval.
function applyDriverPositions(list, total) {
  const now = performance.now();
  const seen = new Set();
  for (const x of list) {
    seen.add(x.id);
    const prev = state.drivers.get(x.id);
    if (prev) {
      prev.from = currentPos(prev, now);
      prev.to = x.pos;
      prev.t0 = now;
      prev.status = x.status;
      prev.product = x.product || prev.product;
      prev.tripId = x.tripId;
      prev.region = x.region;
    } else {
      state.drivers.set(x.id, { key: x.id, from: x.pos, to: x.pos, t0: now, status: x.status,
        product: x.product, tripId: x.tripId, region: x.region });
    }
  }
  for (const key of state.drivers.keys()) if (!seen.has(key)) state.drivers.delete(key);
  state.positionsTotal = total ?? list.length;
  $("map").dataset.source = "overview";
  touch();
}
