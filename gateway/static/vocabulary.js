// What the server means by each trip status, trip event and product, read
// from GET /v1/vocabulary (common's one definition): the page carries no copy.

import { hideBanner, showBanner } from "./health.js";

export const vocab = {
  statuses: [], // trip statuses, in lifecycle order
  initial: null, // a new trip's status
  terminal: new Set(),
  withDriver: new Set(), // a driver holds the trip
  tripEvents: new Set(),
  statusOf: new Map(), // event type -> the trip's status after it (absent: unchanged)
  dispatchOnly: new Set(), // offers, their declines and expiries
  created: null, // the event that begins a trip's story
  products: [], // product names, in the order the API lists them
};

function apply(v) {
  vocab.statuses = v.trip_statuses.map((s) => s.name);
  vocab.terminal = new Set(v.trip_statuses.filter((s) => s.terminal).map((s) => s.name));
  vocab.withDriver = new Set(v.trip_statuses.filter((s) => s.with_driver).map((s) => s.name));
  vocab.tripEvents = new Set(v.trip_events.map((e) => e.type));
  vocab.statusOf = new Map(v.trip_events.filter((e) => e.status).map((e) => [e.type, e.status]));
  vocab.dispatchOnly = new Set(v.trip_events.filter((e) => !e.public).map((e) => e.type));
  // Events come in the order of a trip's story: the first is its request.
  vocab.created = v.trip_events[0].type;
  vocab.initial = vocab.statusOf.get(vocab.created);
  vocab.products = v.products.map((p) => p.name);
}

// Until it answers, nothing else of the page can be drawn: retried with a
// backoff, under a banner.
export async function loadVocabulary() {
  for (let failures = 0; ; failures += 1) {
    try {
      const resp = await fetch("/v1/vocabulary");
      if (!resp.ok) throw new Error(`vocabulary ${resp.status}`);
      apply(await resp.json());
      hideBanner("vocabulary");
      return;
    } catch (err) {
      showBanner("vocabulary", `The vocabulary is unavailable (${err.message}); retrying.`);
      await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** Math.min(failures, 5))));
    }
  }
}
