// What the page knows between two polls: trips, drivers, the region on the
// map. Every change bumps the map's data-version (the browser tests read it).

import { $ } from "./util.js";
import { vocab } from "./vocabulary.js";

export const OVERVIEW_EVERY_MS = 1500;

export const state = {
  overview: null,
  overviewAt: 0,
  trips: new Map(), // trip_id -> {id, status, product, pickup, dropoff, driverId, offeredTo, until, liveAt}
  drivers: new Map(), // driver_id -> {key, from, to, t0, dur, status, product, tripId}
  positionsTotal: 0,
  spark: [], // events/s every 10 s from the server's history, oldest first
  epsNow: null, // the overview's latest figure, drawn as the last point
  history: null,
  selected: null, // the trip open in the drawer: {id, pickup, dropoff}
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
  failoversSeen: new Set(), // "at shard" of each failover already in the feed
};

export function touch() {
  state.version += 1;
  $("map").dataset.version = String(state.version);
}

export function tripOf(id) {
  let t = state.trips.get(id);
  if (!t) {
    t = { id, status: vocab.initial, product: null, pickup: null, dropoff: null, driverId: null, until: 0 };
    state.trips.set(id, t);
  }
  return t;
}

export function regionOfId(id) {
  // Every id carries its region: trp_<region>_<ULID>, drv_<region>_<ULID>.
  const parts = String(id || "").split("_");
  return parts.length === 3 ? parts[1] : null;
}

export function onMap(region) {
  return !state.region || !region || region === state.region.name;
}

export function currentPos(d, now) {
  const t = Math.min(1, (now - d.t0) / (d.dur || OVERVIEW_EVERY_MS));
  return { lat: d.from.lat + (d.to.lat - d.from.lat) * t, lon: d.from.lon + (d.to.lon - d.from.lon) * t };
}
