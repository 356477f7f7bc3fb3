// The live operations dashboard. No framework, no build step, no network but the gateway.
//
// Data: GET /v1/ops/overview (polled: counters, the queue, consumer groups, the
// active trips, where the online drivers are, the regions, the timers, events
// per second), GET /v1/ops/events (SSE read with fetch() so the Authorization
// header can be sent: the live feed, and status changes on the map between two
// polls), GET /v1/trips/{id}/timeline (on click).
// The ops token comes from the URL fragment `#token=...` (kept in sessionStorage,
// then removed from the address bar) or from the sign-in form.

const TOKEN_KEY = "ops_token";
const OVERVIEW_EVERY_MS = 1500;
const FEED_MAX = 250;
const SPARK_POINTS = 120;
const STATUSES = ["requested", "assigned", "arrived", "in_progress", "completed", "cancelled", "expired"];
const STATUS_OF_EVENT = {
  "trip.requested": "requested",
  "trip.assigned": "assigned",
  "trip.driver_cancelled": "requested",
  "trip.driver_arrived": "arrived",
  "trip.started": "in_progress",
  "trip.completed": "completed",
  "trip.cancelled": "cancelled",
  "trip.expired": "expired",
};
const TERMINAL = new Set(["completed", "cancelled", "expired"]);

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    // Styles through the CSSOM: the CSP refuses style attributes.
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function num(v) {
  const n = typeof v === "string" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

function shortId(id) {
  if (!id) return "";
  const parts = String(id).split("_");
  const tail = parts[parts.length - 1];
  return parts.length > 1 ? `${parts[0]}_${tail.slice(-6)}` : String(id).slice(-8);
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(s % 60).padStart(2, "0")}s`;
}

function fmtTime(iso) {
  const d = iso ? new Date(iso) : new Date();
  if (Number.isNaN(d.getTime())) return String(iso || "");
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function pointOf(v) {
  if (!v || typeof v !== "object") return null;
  const lat = num(v.lat ?? v.latitude);
  const lon = num(v.lon ?? v.lng ?? v.longitude);
  return lat === null || lon === null ? null : { lat, lon };
}

// ---------------------------------------------------------------- auth

const auth = {
  token: null,
  init() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const fromLink = hash.get("token");
    if (fromLink) {
      sessionStorage.setItem(TOKEN_KEY, fromLink);
      // Keep the token out of the address bar, history and screenshots.
      history.replaceState(null, "", location.pathname + location.search);
    }
    this.token = sessionStorage.getItem(TOKEN_KEY);
  },
  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  },
  signOut(reason) {
    const token = this.token;
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    stream.stop();
    if (token && reason === "user") {
      fetch("/v1/sessions/current", { method: "DELETE", headers: { Authorization: `Bearer ${token}` } })
        .catch(() => {});
    }
    showLogin(reason === "expired" ? "The session has expired; sign in again."
      : reason === "forbidden" ? "That account is not an ops account." : null);
  },
};

function showLogin(reason) {
  $("login").hidden = false;
  $("sign-out").hidden = true;
  if (reason) $("login-reason").textContent = reason;
  $("login-form").elements.user_name.focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  $("login-error").textContent = "";
  try {
    const resp = await fetch("/v1/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_name: form.elements.user_name.value, password: form.elements.password.value }),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status !== 201) {
      $("login-error").textContent = body.detail || body.title || `Sign-in failed (${resp.status})`;
      return;
    }
    if (body.role !== "ops") {
      $("login-error").textContent = "That account is not an ops account.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, body.token);
    auth.token = body.token;
    form.reset();
    $("login").hidden = true;
    start();
  } catch (err) {
    $("login-error").textContent = `The gateway did not answer: ${err.message}`;
  }
}

// API calls that know about 401/403.
async function api(path, opts = {}) {
  if (!auth.token) throw new Error("signed out");
  const resp = await fetch(path, { ...opts, headers: auth.headers(opts.headers || {}) });
  if (resp.status === 401) {
    auth.signOut("expired");
    throw new Error("session expired");
  }
  if (resp.status === 403 && path.startsWith("/v1/ops/")) {
    auth.signOut("forbidden");
    throw new Error("forbidden");
  }
  return resp;
}

// ---------------------------------------------------------------- state

const state = {
  overview: null,
  overviewAt: 0,
  trips: new Map(), // trip_id -> {id, status, product, pickup, dropoff, driverId, offeredTo, until, liveAt}
  drivers: new Map(), // driver_id -> {key, from, to, t0, dur, status, product, tripId}
  positionsTotal: 0,
  spark: [],
  eventTimes: [],
  version: 0,
  feedPaused: false,
  feedFilter: "",
  feedCount: 0,
  basemap: null,
  regions: [],
  region: null, // {name, bounds} of the region on the map
  chosenRegion: null, // the operator's choice, when there are several
  expiryS: 120,
};

function touch() {
  state.version += 1;
  $("map").dataset.version = String(state.version);
}

function tripOf(id) {
  let t = state.trips.get(id);
  if (!t) {
    t = { id, status: "requested", product: null, pickup: null, dropoff: null, driverId: null, until: 0 };
    state.trips.set(id, t);
  }
  return t;
}

function regionOfId(id) {
  // Every id carries its region: trp_<region>_<ULID>, drv_<region>_<ULID>.
  const parts = String(id || "").split("_");
  return parts.length === 3 ? parts[1] : null;
}

// ---------------------------------------------------------------- overview

// GET /v1/ops/overview (docs/api.md, /openapi.json) carries everything the
// page shows but the live feed: counters, the queue, consumer groups, the
// active trips, where the online drivers are, the regions and the timers.
function normalizeOverview(o) {
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
    for (const [product, v] of Object.entries(d)) {
      if (v && typeof v === "object" && !Array.isArray(v) && "online" in v) {
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
  return out;
}

async function pollOverview() {
  const sentAt = Date.now();
  try {
    const resp = await api("/v1/ops/overview");
    if (!resp.ok) throw new Error(`overview ${resp.status}`);
    const o = normalizeOverview(await resp.json());
    state.overview = o;
    state.overviewAt = Date.now();
    setHealth("overview", "ok", "overview");
    if (o.expiryS) state.expiryS = o.expiryS;
    if (o.regions.length) setRegions(o.regions);
    if (o.activeTrips) applyActiveTrips(o.activeTrips, sentAt);
    if (o.locations) applyDriverPositions(o.locations, o.locationsTotal);
    renderOverview(o);
    hideBanner("overview");
    if (o.missing.length) showBanner("partial", `Overview is partial: no answer from ${o.missing.join(" and ")}.`);
    else hideBanner("partial");
  } catch (err) {
    if (!auth.token) return;
    setHealth("overview", "bad", "overview");
    showBanner("overview", `Overview unavailable: ${err.message}. Retrying.`);
  }
}

function setRegions(regions) {
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

function showRegion(region) {
  const changed = !state.region || state.region.name !== region.name
    || JSON.stringify(state.region.bounds) !== JSON.stringify(region.bounds);
  if (!changed) return;
  state.region = region;
  $("region-name").textContent = region.name;
  $("map").dataset.region = region.name;
  if (!state.basemap || state.basemap.region !== region.name) loadBasemap(region.name);
  resizeMap();
}

function chooseRegion(name) {
  state.chosenRegion = name;
  const region = state.regions.find((r) => r.name === name);
  if (region) showRegion(region);
  touch();
}

function onMap(region) {
  return !state.region || !region || region === state.region.name;
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
    if (listed.has(id) || TERMINAL.has(t.status) || (t.liveAt || 0) > sentAt) continue;
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

function currentPos(d, now) {
  const t = Math.min(1, (now - d.t0) / (d.dur || OVERVIEW_EVERY_MS));
  return { lat: d.from.lat + (d.to.lat - d.from.lat) * t, lon: d.from.lon + (d.to.lon - d.from.lon) * t };
}

// ---------------------------------------------------------------- events stream

const stream = {
  controller: null,
  lastId: null,
  running: false,
  failures: 0,
  async run() {
    if (this.running) return;
    this.running = true;
    while (this.running && auth.token) {
      this.controller = new AbortController();
      try {
        const headers = auth.headers({ Accept: "text/event-stream" });
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        else headers["Last-Event-ID"] = replayFrom();
        const resp = await fetch("/v1/ops/events", { headers, signal: this.controller.signal, cache: "no-store" });
        if (resp.status === 401) { auth.signOut("expired"); break; }
        if (resp.status === 403) { auth.signOut("forbidden"); break; }
        if (!resp.ok || !resp.body) throw new Error(`events ${resp.status}`);
        setHealth("stream", "ok", "events");
        hideBanner("stream");
        this.failures = 0;
        await readSse(resp.body, (msg) => {
          if (msg.id) this.lastId = msg.id;
          onEvent(msg);
        });
        throw new Error("stream closed");
      } catch (err) {
        if (!this.running) break;
        this.failures += 1;
        setHealth("stream", this.failures > 2 ? "bad" : "warn", "events");
        if (this.failures > 2) showBanner("stream", `Event stream interrupted (${err.message}); reconnecting.`);
        await sleep(Math.min(10000, 500 * 2 ** Math.min(this.failures, 5)));
      }
    }
    this.running = false;
  },
  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  },
};

// The first connection asks for the recent past too (stream ids are
// milliseconds), so that the feed is not empty; the map comes from the
// overview, never from replayed events. The gateway replays at most 1000
// events per region: the window shrinks when the system is busy so that the
// replay reaches the present.
const PAGE_STARTED = Date.now();
function replayFrom() {
  const eps = state.overview && state.overview.eps ? state.overview.eps : 1;
  const windowS = Math.max(30, Math.min(600, 800 / Math.max(eps, 0.1)));
  return `${Math.floor(Date.now() - windowS * 1000)}-0`;
}

async function readSse(body, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let msg = { id: null, event: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1));
      if (line === "") {
        if (msg.data.length) onMessage({ id: msg.id, event: msg.event, data: msg.data.join("\n") });
        msg = { id: null, event: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? "" : line.slice(i + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "id") msg.id = v;
      else if (field === "event") msg.event = v;
      else if (field === "data") msg.data.push(v);
    }
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function onEvent(msg) {
  let env;
  try { env = JSON.parse(msg.data); } catch (_) { return; }
  if (!env || typeof env !== "object") return;
  const type = env.type || msg.event;
  const replayed = (Date.parse(env.occurred_at) || Date.now()) < PAGE_STARTED - 1000;
  if (!replayed) {
    state.eventTimes.push(Date.now());
    applyEventToMap(type, env);
  }
  addFeedRow(type, env, msg.id, replayed);
}

// A live event moves what the map shows at once; the next overview confirms
// it. A trip the map does not know yet (other than a new request) waits for
// the next overview.
const DRIVER_AFTER_EVENT = {
  "trip.offered": "offered",
  "trip.assigned": "on_trip",
  "trip.offer_declined": "available",
  "trip.offer_expired": "available",
  "trip.driver_cancelled": "available",
  "trip.completed": "available",
  "trip.cancelled": "available",
  "trip.expired": "available",
};

function applyEventToMap(type, env) {
  if (!type || !type.startsWith("trip.") || !env.trip_id) return;
  const data = env.data || {};
  let t = state.trips.get(env.trip_id);
  if (type === "trip.requested") {
    t = tripOf(env.trip_id);
    t.pickup = pointOf(data.pickup) || t.pickup;
    t.dropoff = pointOf(data.dropoff) || t.dropoff;
    t.product = data.product || t.product;
    t.region = regionOfId(env.trip_id);
    t.requestedAt = Date.parse(data.requested_at || env.occurred_at) || Date.now();
  }
  if (!t) return;
  t.liveAt = Date.now();
  if (type === "trip.offered") t.offeredTo = env.driver_id || data.driver_id || null;
  if (type === "trip.offer_declined" || type === "trip.offer_expired") t.offeredTo = null;
  const status = STATUS_OF_EVENT[type];
  if (status) {
    t.status = status;
    t.offeredTo = null;
    if (type === "trip.assigned") t.driverId = env.driver_id || data.driver_id || t.driverId;
    if (type === "trip.driver_cancelled") t.driverId = null;
    if (TERMINAL.has(status)) t.until = Date.now() + 4000;
  }
  const driver = env.driver_id && state.drivers.get(env.driver_id);
  if (driver && DRIVER_AFTER_EVENT[type]) {
    driver.status = DRIVER_AFTER_EVENT[type];
    driver.tripId = driver.status === "available" ? null : env.trip_id;
  }
  touch();
}

// ---------------------------------------------------------------- feed

function addFeedRow(type, env, streamId, replayed = false) {
  state.feedCount += 1;
  $("feed-count").textContent = `${state.feedCount} received`;
  if (state.feedPaused) return;
  const short = (type || "").replace(/^trip\./, "").replace(/^driver\./, "driver ");
  const cls = type && type.startsWith("driver.") ? "t-driver" : `t-${short}`;
  const tripCell = env.trip_id
    ? el("a", { class: "trip", href: "#", "data-trip": env.trip_id, title: env.trip_id, text: shortId(env.trip_id),
      onclick: (e) => { e.preventDefault(); openTrip(env.trip_id); } })
    : el("span", { text: "" });
  const li = el("li", { class: replayed ? "replayed" : "fresh", "data-type": type || "", "data-search": [type, env.trip_id, env.driver_id].join(" ") },
    el("span", { class: "muted", text: fmtTime(env.occurred_at), title: env.occurred_at || "" }),
    el("span", { class: `type ${cls}`, text: type || "?" }),
    el("span", {}, tripCell),
    el("span", { class: "muted", text: env.driver_id ? shortId(env.driver_id) : "", title: env.driver_id || "" }),
    el("span", { class: "muted", text: env.producer || "", title: `trace ${env.trace_id || "-"} · ${streamId || ""}` }),
  );
  if (state.feedFilter && !matchesFilter(li)) li.hidden = true;
  const feed = $("feed");
  feed.prepend(li);
  while (feed.childElementCount > FEED_MAX) feed.lastElementChild.remove();
}

function matchesFilter(li) {
  return li.dataset.search.toLowerCase().includes(state.feedFilter);
}

// ---------------------------------------------------------------- panels

function renderOverview(o) {
  const counters = $("counters");
  counters.replaceChildren(...STATUSES.map((s) => el("div", { class: `counter ${s}`, "data-status": s },
    el("div", { class: "n", text: String(num(o.byStatus[s]) ?? 0) }),
    el("div", { class: "k", text: s.replace("_", " ") }))));

  const eps = o.eps ?? localEps();
  $("eps").textContent = eps === null ? "-" : eps.toFixed(1);
  state.spark.push(eps ?? 0);
  if (state.spark.length > SPARK_POINTS) state.spark.shift();
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
        el("span", { class: "bar", style: { width: `${(ratio * 100).toFixed(0)}%` } })));
  }) : [el("tr", {}, el("td", { colspan: "4", class: "muted", text: "nobody is waiting" }))]));
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
  const data = state.spark;
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

const banners = new Map();
function showBanner(key, text) {
  banners.set(key, text);
  const b = $("banner");
  b.textContent = [...banners.values()].join("  ·  ");
  b.hidden = false;
}
function hideBanner(key) {
  banners.delete(key);
  const b = $("banner");
  if (banners.size) b.textContent = [...banners.values()].join("  ·  ");
  else b.hidden = true;
}

function setHealth(which, level, label) {
  $(`${which}-dot`).className = `dot ${level}`;
  $(`${which}-state`).textContent = label;
}

// ---------------------------------------------------------------- trip drawer

async function openTrip(tripId) {
  const drawer = $("drawer");
  drawer.hidden = false;
  drawer.dataset.trip = tripId;
  $("drawer-title").textContent = tripId;
  const body = $("drawer-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading the timeline..." }));
  const known = state.trips.get(tripId);
  try {
    const resp = await api(`/v1/trips/${encodeURIComponent(tripId)}/timeline`);
    if (drawer.dataset.trip !== tripId) return;
    if (!resp.ok) {
      const problem = await resp.json().catch(() => ({}));
      body.replaceChildren(el("p", { class: "error",
        text: `Timeline unavailable (${resp.status}${problem.title ? ` ${problem.title}` : ""}).` }),
      el("p", { class: "muted", text: problem.detail || "" }));
      return;
    }
    renderTimeline(await resp.json(), known);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error", text: `Timeline unavailable: ${err.message}` }));
  }
}

function renderTimeline(tl, known) {
  const events = Array.isArray(tl.events) ? tl.events : [];
  const t0 = events.length ? Date.parse(events[0].occurred_at) : NaN;
  const kv = el("dl", { class: "kv" });
  const add = (k, v) => { if (v !== undefined && v !== null && v !== "") kv.append(el("dt", { text: k }), el("dd", { text: v })); };
  const last = events[events.length - 1];
  add("status", known ? known.status : (last && STATUS_OF_EVENT[last.type]) || "");
  add("product", known && known.product);
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

// ---------------------------------------------------------------- the map

const map = {
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

function resizeMap() {
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
  if (map.base) g.drawImage(map.base, 0, 0);
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
    } else if (t.status === "assigned" || t.status === "arrived") {
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
    } else if (TERMINAL.has(t.status)) {
      const fade = Math.max(0, (t.until - wall) / 4000);
      g.fillStyle = t.status === "completed" ? `rgba(61,220,132,${fade})` : `rgba(135,150,165,${fade})`;
      const done = t.status === "completed";
      g.beginPath(); g.arc(done ? x2 : x1, done ? y2 : y1, 4 + (1 - fade) * 10, 0, Math.PI * 2); g.fill();
    }
  }
  // Waiting pickups: a pulsing ring that grows with the waiting time; a thin
  // line to the driver who holds an offer of it.
  for (const t of trips) {
    if (t.status !== "requested" || !t.pickup) continue;
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

function setupMap() {
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

async function loadBasemap(region) {
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

// ---------------------------------------------------------------- start

let timers = [];
function start() {
  $("sign-out").hidden = false;
  for (const t of timers) clearInterval(t);
  timers = [setInterval(pollOverview, OVERVIEW_EVERY_MS),
    setInterval(() => {
      const age = state.overviewAt ? (Date.now() - state.overviewAt) / 1000 : null;
      $("updated").textContent = age === null ? "-" : `updated ${age < 2 ? "just now" : `${age.toFixed(0)}s ago`}`;
    }, 1000)];
  // The first overview sizes the replay window of the event stream.
  pollOverview().finally(() => stream.run());
}

function init() {
  auth.init();
  setupMap();
  $("region-select").addEventListener("change", (e) => chooseRegion(e.target.value));
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => auth.signOut("user"));
  $("drawer-close").addEventListener("click", () => { $("drawer").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("drawer").hidden = true; });
  $("feed-pause").addEventListener("click", (e) => {
    state.feedPaused = !state.feedPaused;
    e.target.textContent = state.feedPaused ? "Resume" : "Pause";
  });
  $("feed-filter").addEventListener("input", (e) => {
    state.feedFilter = e.target.value.trim().toLowerCase();
    for (const li of $("feed").children) li.hidden = state.feedFilter ? !matchesFilter(li) : false;
  });
  if (auth.token) start(); else showLogin();
}

init();
