// The live operations dashboard. No framework, no build step, no network but the gateway.
//
// Data: GET /v1/ops/overview (polled: counters, the queue, consumer groups, the
// active trips, where the online drivers are, the regions, the timers, events
// per second), GET /v1/ops/events (SSE read with fetch() so the Authorization
// header can be sent: the live feed, and status changes on the map between two
// polls), GET /v1/ops/history (polled: the current run minute by minute, and the
// events/s chart), GET /v1/ops/topology (polled: Redis shards, nodes,
// replication lag, failovers), GET /v1/trips/{id} and its timeline (on click).
// The ops token comes from the URL fragment `#token=...` (kept in sessionStorage,
// then removed from the address bar) or from the sign-in form.
//
// The modules, one concern each: vocabulary.js (what the server means by each
// status, event type and product), auth.js, overview.js, live.js (the event
// stream and the feed), map.js, panels.js, story.js (the run's charts),
// topology.js, storage.js, drawer.js; this one starts them.

import { auth, hooks, showLogin, signIn } from "./auth.js";
import { stream, matchesFilter } from "./live.js";
import { map, setupMap } from "./map.js";
import { chooseRegion, pollOverview } from "./overview.js";
import { pollHistory } from "./panels.js";
import { state, OVERVIEW_EVERY_MS } from "./state.js";
import { ANALYTICS_EVERY_MS, pollAnalytics } from "./storage.js";
import { pollTopology } from "./topology.js";
import { $ } from "./util.js";
import { loadVocabulary } from "./vocabulary.js";

const TOPOLOGY_EVERY_MS = 1000;
const HISTORY_EVERY_MS = 5000;

let timers = [];
let vocabulary = null;
async function start() {
  $("sign-out").hidden = false;
  // Counters, the map and the feed speak the server's vocabulary: it comes first.
  await vocabulary;
  if (!auth.token) return;
  for (const t of timers) clearInterval(t);
  timers = [setInterval(pollOverview, OVERVIEW_EVERY_MS),
    setInterval(pollHistory, HISTORY_EVERY_MS),
    setInterval(pollTopology, TOPOLOGY_EVERY_MS),
    setInterval(() => {
      const age = state.overviewAt ? (Date.now() - state.overviewAt) / 1000 : null;
      $("updated").textContent = age === null ? "-" : `updated ${age < 2 ? "just now" : `${age.toFixed(0)}s ago`}`;
    }, 1000)];
  timers.push(setInterval(pollAnalytics, ANALYTICS_EVERY_MS));
  pollAnalytics();
  // The first overview sizes the replay window of the event stream.
  pollOverview().finally(() => stream.run());
  pollHistory();
  pollTopology();
}

function init() {
  vocabulary = loadVocabulary();
  hooks.started = start;
  hooks.stopped = () => stream.stop();
  auth.init();
  setupMap();
  $("region-select").addEventListener("change", (e) => chooseRegion(e.target.value));
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => auth.signOut("user"));
  const closeDrawer = () => { $("drawer").hidden = true; state.selected = null; delete map.canvas.dataset.selected; };
  $("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDrawer(); });
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
