// GET /v1/ops/events: server-sent events read with fetch() (so that the
// Authorization header can be sent) into the live feed, and status changes
// onto the map between two polls.

import { auth } from "./auth.js";
import { openTrip } from "./drawer.js";
import { hideBanner, setHealth, showBanner } from "./health.js";
import { state, touch, tripOf, regionOfId } from "./state.js";
import { $, el, fmtTime, pointOf, shortId } from "./util.js";
import { vocab } from "./vocabulary.js";

const FEED_MAX = 250;

export const stream = {
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

// The map draws offers: the one dispatch event that hands a driver a trip to
// answer (the others, a decline or a lapse, take it back).
const OFFERED = "trip.offered";

// The driver an event names, after it: holding an offer, on the trip, or
// free again (the trip given back or over, the offer declined or lapsed).
function driverAfter(type, status) {
  if (type === OFFERED) return "offered";
  if (status && vocab.withDriver.has(status)) return "on_trip";
  if (status || vocab.dispatchOnly.has(type)) return "available";
  return null;
}

function applyEventToMap(type, env) {
  if (!vocab.tripEvents.has(type) || !env.trip_id) return;
  const data = env.data || {};
  let t = state.trips.get(env.trip_id);
  if (type === vocab.created) {
    t = tripOf(env.trip_id);
    t.pickup = pointOf(data.pickup) || t.pickup;
    t.dropoff = pointOf(data.dropoff) || t.dropoff;
    t.product = data.product || t.product;
    t.region = regionOfId(env.trip_id);
    t.requestedAt = Date.parse(data.requested_at || env.occurred_at) || Date.now();
  }
  if (!t) return;
  t.liveAt = Date.now();
  if (type === OFFERED) t.offeredTo = env.driver_id || data.driver_id || null;
  else if (vocab.dispatchOnly.has(type)) t.offeredTo = null;
  const status = vocab.statusOf.get(type);
  if (status) {
    t.status = status;
    t.offeredTo = null;
    if (vocab.withDriver.has(status)) t.driverId = env.driver_id || data.driver_id || t.driverId;
    else if (!vocab.terminal.has(status)) t.driverId = null; // given back: waiting again
    if (vocab.terminal.has(status)) t.until = Date.now() + 4000;
  }
  const driver = env.driver_id && state.drivers.get(env.driver_id);
  const after = driverAfter(type, status);
  if (driver && after) {
    driver.status = after;
    driver.tripId = after === "available" ? null : env.trip_id;
  }
  touch();
}

// ---------------------------------------------------------------- feed

export function addFeedRow(type, env, streamId, replayed = false) {
  state.feedCount += 1;
  $("feed-count").textContent = `${state.feedCount} received`;
  if (state.feedPaused) return;
  const short = (type || "").replace(/^trip\./, "").replace(/^driver\./, "driver ");
  const cls = type && type.startsWith("driver.") ? "t-driver"
    : type && type.startsWith("redis.") ? "t-redis" : `t-${short}`;
  const tripCell = env.trip_id
    ? el("a", { class: "trip", href: "#", "data-trip": env.trip_id, title: env.trip_id, text: shortId(env.trip_id),
      onclick: (e) => { e.preventDefault(); openTrip(env.trip_id); } })
    : el("span", { text: env.summary || "", title: env.summary || "" });
  const li = el("li", { class: replayed ? "replayed" : "fresh", "data-type": type || "", "data-search": [type, env.trip_id, env.driver_id, env.summary].join(" ") },
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

export function matchesFilter(li) {
  return li.dataset.search.toLowerCase().includes(state.feedFilter);
}
