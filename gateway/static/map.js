// The live map: a basemap drawn once per size, then trips, pickups and
// drivers every animation frame; hover for details, click for a timeline.

import { openTrip } from "./drawer.js";
import { currentPos, onMap, state } from "./state.js";
import { $, fmtDuration } from "./util.js";
import { vocab } from "./vocabulary.js";

export const map = {
  canvas: null,
  base: null, // offscreen canvas with the basemap
  w: 0, h: 0, dpr: 1,
  proj: null,
  hover: null,
  hits: [],
};

function bounds() {
  if (state.region && state.region.bounds) return state.region.bounds;
  if (state.basemap) return state.basemap.bounds;
  return null;
}

function makeProjection() {
  const b = bounds();
  if (!b) return null;
  const k = Math.cos(((b.min_lat + b.max_lat) / 2) * Math.PI / 180);
  const spanX = (b.max_lon - b.min_lon) * k;
  const spanY = b.max_lat - b.min_lat;
  const pad = 14;
  const scale = Math.min((map.w - 2 * pad) / spanX, (map.h - 2 * pad) / spanY);
  const ox = (map.w - spanX * scale) / 2;
  const oy = (map.h - spanY * scale) / 2;
  return {
    x: (lon) => ox + (lon - b.min_lon) * k * scale,
    y: (lat) => oy + (b.max_lat - lat) * scale,
    metersPerPx: 111320 / scale,
  };
}

function insidePoly(lat, lon, poly) {
  let result = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [latI, lonI] = poly[i];
    const [latJ, lonJ] = poly[j];
    if ((latI > lat) !== (latJ > lat)) {
      const cross = (lonJ - lonI) * (lat - latI) / (latJ - latI) + lonI;
      if (lon < cross) result = !result;
    }
  }
  return result;
}

function onLand(bm, lat, lon) {
  const b = bm.bounds;
  if (lat < b.min_lat || lat > b.max_lat || lon < b.min_lon || lon > b.max_lon) return false;
  if (bm.land && bm.land.length && !insidePoly(lat, lon, bm.land)) return false;
  return !(bm.water || []).some((w) => insidePoly(lat, lon, w.polygon));
}

export function resizeMap() {
  const wrap = $("map-wrap");
  map.dpr = window.devicePixelRatio || 1;
  map.w = wrap.clientWidth;
  map.h = wrap.clientHeight;
  map.canvas.width = Math.round(map.w * map.dpr);
  map.canvas.height = Math.round(map.h * map.dpr);
  map.proj = makeProjection();
  drawBase();
}

function drawBase() {
  const p = map.proj;
  const base = document.createElement("canvas");
  base.width = map.canvas.width;
  base.height = map.canvas.height;
  const g = base.getContext("2d");
  g.setTransform(map.dpr, 0, 0, map.dpr, 0, 0);
  g.fillStyle = "#0b2233";
  g.fillRect(0, 0, map.w, map.h);
  map.base = base;
  if (!p) return;
  const b = bounds();
  const bm = state.basemap && (!state.region || state.region.name === state.basemap.region) ? state.basemap : null;
  const poly = (pts) => {
    g.beginPath();
    pts.forEach(([lat, lon], i) => (i ? g.lineTo(p.x(lon), p.y(lat)) : g.moveTo(p.x(lon), p.y(lat))));
    g.closePath();
  };
  // Land.
  g.fillStyle = "#1a222b";
  if (bm && bm.land) { poly(bm.land); g.fill(); }
  else { g.fillRect(p.x(b.min_lon), p.y(b.max_lat), p.x(b.max_lon) - p.x(b.min_lon), p.y(b.min_lat) - p.y(b.max_lat)); }
  if (bm) {
    g.fillStyle = "#1d3325";
    for (const park of bm.parks || []) { poly(park.polygon); g.fill(); }
    g.fillStyle = "#0b2233";
    for (const w of bm.water || []) { poly(w.polygon); g.fill(); }
  }
  // Streets: the same lattice the city drives on.
  const grid = (bm && bm.grid) || { lat_step: 0.0027, lon_step: 0.0034 };
  const ok = bm ? (lat, lon) => onLand(bm, lat, lon) : () => true;
  const rows = Math.round((b.max_lat - b.min_lat) / grid.lat_step);
  const cols = Math.round((b.max_lon - b.min_lon) / grid.lon_step);
  const lat = (i) => b.min_lat + i * grid.lat_step;
  const lon = (j) => b.min_lon + j * grid.lon_step;
  g.strokeStyle = "rgba(160,180,200,.13)";
  g.lineWidth = 1;
  g.beginPath();
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      if (!ok(lat(i), lon(j))) continue;
      if (j + 1 < cols && ok(lat(i), lon(j + 1)) && ok(lat(i), (lon(j) + lon(j + 1)) / 2)) {
        g.moveTo(p.x(lon(j)), p.y(lat(i))); g.lineTo(p.x(lon(j + 1)), p.y(lat(i)));
      }
      if (i + 1 < rows && ok(lat(i + 1), lon(j)) && ok((lat(i) + lat(i + 1)) / 2, lon(j))) {
        g.moveTo(p.x(lon(j)), p.y(lat(i))); g.lineTo(p.x(lon(j)), p.y(lat(i + 1)));
      }
    }
  }
  g.stroke();
  if (bm) {
    g.strokeStyle = "rgba(230,200,120,.28)";
    g.lineWidth = 2;
    for (const a of bm.arterials || []) {
      g.beginPath();
      a.points.forEach(([la, lo], i) => (i ? g.lineTo(p.x(lo), p.y(la)) : g.moveTo(p.x(lo), p.y(la))));
      g.stroke();
    }
    g.fillStyle = "rgba(200,215,230,.35)";
    g.font = "11px system-ui";
    g.textAlign = "center";
    for (const l of bm.labels || []) g.fillText(l.name, p.x(l.lon), p.y(l.lat));
  }
  // Region bounds and a scale bar.
  g.strokeStyle = "rgba(79,179,255,.45)";
  g.setLineDash([6, 4]);
  g.strokeRect(p.x(b.min_lon), p.y(b.max_lat), p.x(b.max_lon) - p.x(b.min_lon), p.y(b.min_lat) - p.y(b.max_lat));
  g.setLineDash([]);
  const px = 1000 / p.metersPerPx;
  g.strokeStyle = "rgba(220,230,240,.6)";
  g.beginPath();
  g.moveTo(16, map.h - 16); g.lineTo(16 + px, map.h - 16);
  g.moveTo(16, map.h - 20); g.lineTo(16, map.h - 12);
  g.moveTo(16 + px, map.h - 20); g.lineTo(16 + px, map.h - 12);
  g.stroke();
  g.fillStyle = "rgba(220,230,240,.7)";
  g.textAlign = "left";
  g.fillText("1 km", 20 + px, map.h - 12);
}

function drawMap(now) {
  const c = map.canvas;
  const g = c.getContext("2d");
  g.setTransform(1, 0, 0, 1, 0, 0);
  if (map.base && map.base.width && map.base.height) g.drawImage(map.base, 0, 0);
  const p = map.proj;
  if (!p) { requestAnimationFrame(drawMap); return; }
  g.setTransform(map.dpr, 0, 0, map.dpr, 0, 0);
  const hits = [];
  const wall = Date.now();
  let pickups = 0;
  let tripsDrawn = 0;

  for (const [id, t] of state.trips) {
    if (t.until && wall > t.until) { state.trips.delete(id); continue; }
  }
  const trips = [...state.trips.values()].filter((t) => onMap(t.region));
  const drivers = [...state.drivers.values()].filter((d) => onMap(d.region));
  // Trips in progress: pickup -> dropoff.
  for (const t of trips) {
    if (!t.pickup || !t.dropoff) continue;
    const x1 = p.x(t.pickup.lon); const y1 = p.y(t.pickup.lat);
    const x2 = p.x(t.dropoff.lon); const y2 = p.y(t.dropoff.lat);
    if (t.status === "in_progress") {
      tripsDrawn += 1;
      const d = t.driverId && state.drivers.get(t.driverId);
      g.setLineDash([]);
      if (d) {
        // Done part faint, the rest from the car to the dropoff.
        const pos = currentPos(d, now);
        g.strokeStyle = "rgba(111,157,255,.25)"; g.lineWidth = 2;
        g.beginPath(); g.moveTo(x1, y1); g.lineTo(p.x(pos.lon), p.y(pos.lat)); g.stroke();
        g.strokeStyle = "rgba(111,157,255,.85)";
        g.beginPath(); g.moveTo(p.x(pos.lon), p.y(pos.lat)); g.lineTo(x2, y2); g.stroke();
      } else {
        g.strokeStyle = "rgba(111,157,255,.8)"; g.lineWidth = 2;
        g.beginPath(); g.moveTo(x1, y1); g.lineTo(x2, y2); g.stroke();
      }
      g.fillStyle = "#6f9dff"; g.beginPath(); g.arc(x2, y2, 3, 0, Math.PI * 2); g.fill();
      hits.push({ x: (x1 + x2) / 2, y: (y1 + y2) / 2, r: 10, kind: "trip", t });
    } else if (vocab.withDriver.has(t.status)) {
      tripsDrawn += 1;
      const d = t.driverId && state.drivers.get(t.driverId);
      g.strokeStyle = "rgba(255,179,71,.85)"; g.lineWidth = 1.5; g.setLineDash([4, 3]);
      if (d) {
        const pos = currentPos(d, now);
        g.beginPath(); g.moveTo(p.x(pos.lon), p.y(pos.lat)); g.lineTo(x1, y1); g.stroke();
      }
      g.setLineDash([]);
      g.beginPath(); g.arc(x1, y1, t.status === "arrived" ? 6 : 4, 0, Math.PI * 2); g.stroke();
      hits.push({ x: x1, y: y1, r: 8, kind: "trip", t });
    } else if (vocab.terminal.has(t.status)) {
      const fade = Math.max(0, (t.until - wall) / 4000);
      g.fillStyle = t.status === "completed" ? `rgba(61,220,132,${fade})` : `rgba(135,150,165,${fade})`;
      const done = t.status === "completed";
      g.beginPath(); g.arc(done ? x2 : x1, done ? y2 : y1, 4 + (1 - fade) * 10, 0, Math.PI * 2); g.fill();
    }
  }
  // Waiting pickups: a pulsing ring that grows with the waiting time; a thin
  // line to the driver who holds an offer of it.
  for (const t of trips) {
    if (t.status !== vocab.initial || !t.pickup) continue;
    pickups += 1;
    const x = p.x(t.pickup.lon); const y = p.y(t.pickup.lat);
    const offered = t.offeredTo && state.drivers.get(t.offeredTo);
    if (offered) {
      const pos = currentPos(offered, now);
      g.strokeStyle = "rgba(255,179,71,.45)"; g.lineWidth = 1; g.setLineDash([2, 3]);
      g.beginPath(); g.moveTo(p.x(pos.lon), p.y(pos.lat)); g.lineTo(x, y); g.stroke();
      g.setLineDash([]);
    }
    const waited = t.requestedAt ? Math.max(0, (wall - t.requestedAt) / 1000) : 0;
    const ratio = Math.min(1, waited / state.expiryS);
    const pulse = (Math.sin(now / 250) + 1) / 2;
    g.strokeStyle = `rgba(255,93,108,${0.5 + 0.5 * pulse})`;
    g.lineWidth = 2;
    g.beginPath(); g.arc(x, y, 5 + ratio * 9 + pulse * 2, 0, Math.PI * 2); g.stroke();
    g.fillStyle = "#ff5d6c";
    g.beginPath(); g.arc(x, y, 3, 0, Math.PI * 2); g.fill();
    hits.push({ x, y, r: 10, kind: "pickup", t, waited });
  }
  // The trip open in the drawer: white rings at its pickup and drop-off.
  const sel = state.selected;
  if (sel && sel.pickup && !$("drawer").hidden) {
    const x1 = p.x(sel.pickup.lon); const y1 = p.y(sel.pickup.lat);
    g.strokeStyle = "#ffffff"; g.lineWidth = 2; g.setLineDash([]);
    g.beginPath(); g.arc(x1, y1, 10, 0, Math.PI * 2); g.stroke();
    if (sel.dropoff) {
      const x2 = p.x(sel.dropoff.lon); const y2 = p.y(sel.dropoff.lat);
      g.beginPath(); g.arc(x2, y2, 7, 0, Math.PI * 2); g.stroke();
      g.strokeStyle = "rgba(255,255,255,.5)"; g.setLineDash([3, 4]);
      g.beginPath(); g.moveTo(x1, y1); g.lineTo(x2, y2); g.stroke();
      g.setLineDash([]);
    }
  }
  // Drivers: available, holding an offer, on a trip.
  const byStatus = { available: 0, offered: 0, on_trip: 0 };
  for (const d of drivers) {
    const pos = currentPos(d, now);
    const x = p.x(pos.lon); const y = p.y(pos.lat);
    const status = d.status in DRIVER_COLORS ? d.status : "available";
    byStatus[status] += 1;
    g.fillStyle = DRIVER_COLORS[status];
    g.strokeStyle = "rgba(0,0,0,.6)";
    g.lineWidth = 1;
    g.beginPath(); g.arc(x, y, 4, 0, Math.PI * 2); g.fill(); g.stroke();
    hits.push({ x, y, r: 7, kind: "driver", d });
  }
  map.hits = hits;
  const ds = map.canvas.dataset;
  ds.drivers = String(drivers.length);
  ds.available = String(byStatus.available);
  ds.offered = String(byStatus.offered);
  ds.busy = String(byStatus.on_trip);
  ds.pickups = String(pickups);
  ds.trips = String(tripsDrawn);
  const shown = state.overview && state.overview.locations ? state.overview.locations.length : 0;
  $("driver-source").textContent = state.positionsTotal > shown
    ? `positions of ${shown} of ${state.positionsTotal} online drivers` : "";
  requestAnimationFrame(drawMap);
}

function hitAt(ev) {
  const rect = map.canvas.getBoundingClientRect();
  const x = ev.clientX - rect.left;
  const y = ev.clientY - rect.top;
  let best = null;
  let bestD = Infinity;
  for (const h of map.hits) {
    const d = Math.hypot(h.x - x, h.y - y);
    if (d <= h.r && d < bestD) { best = h; bestD = d; }
  }
  return { best, x, y };
}

const DRIVER_COLORS = { available: "#3ddc84", offered: "#ffb347", on_trip: "#4f8cff" };
const DRIVER_STATUS_TEXT = { available: "available", offered: "holds an offer", on_trip: "on a trip" };

function describeHit(h) {
  if (h.kind === "driver") {
    const d = h.d;
    return [d.key, `product  ${d.product || "?"}`, `status   ${DRIVER_STATUS_TEXT[d.status] || d.status}`,
      d.tripId ? `trip     ${d.tripId}` : ""].filter(Boolean).join("\n");
  }
  const t = h.t;
  return [t.id, `status   ${t.status}`, `product  ${t.product || "?"}`,
    h.kind === "pickup" ? `waiting  ${fmtDuration(h.waited)} of ${fmtDuration(state.expiryS)}` : "",
    t.offeredTo ? `offered  ${t.offeredTo}` : "",
    t.driverId ? `driver   ${t.driverId}` : "", "click for the timeline"].filter(Boolean).join("\n");
}

export function setupMap() {
  map.canvas = $("map");
  new ResizeObserver(() => resizeMap()).observe($("map-wrap"));
  map.canvas.addEventListener("mousemove", (ev) => {
    const { best, x, y } = hitAt(ev);
    const tip = $("tooltip");
    if (!best) { tip.hidden = true; map.canvas.style.cursor = "crosshair"; return; }
    tip.textContent = describeHit(best);
    tip.hidden = false;
    tip.style.left = `${Math.min(x + 12, map.w - 240)}px`;
    tip.style.top = `${Math.max(4, y - 10)}px`;
    map.canvas.style.cursor = best.t ? "pointer" : "default";
  });
  map.canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  map.canvas.addEventListener("click", (ev) => {
    const { best } = hitAt(ev);
    if (best && best.t) openTrip(best.t.id);
    else if (best && best.d && best.d.tripId) openTrip(best.d.tripId);
  });
  resizeMap();
  requestAnimationFrame(drawMap);
}

export async function loadBasemap(region) {
  try {
    const resp = await fetch(`/static/map-${encodeURIComponent(region)}.json`, { cache: "force-cache" });
    if (resp.ok) {
      state.basemap = await resp.json();
      if (map.canvas) resizeMap();
    }
  } catch (_) {
    // No basemap: the map draws the region's bounds and a plain grid.
  }
}
