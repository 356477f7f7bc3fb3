// Hot, warm, cold: Redis memory against its limit and the archive's lag (from
// the overview's `storage`), and the cold store's analytics
// (GET /v1/ops/analytics, polled slowly: SQL aggregates over days).

import { api } from "./auth.js";
import { $, el, fmtBytes, fmtDuration } from "./util.js";

export const ANALYTICS_EVERY_MS = 30000;

export function renderStorage(storage) {
  const panel = $("storage-panel");
  if (!panel) return;
  if (!storage) { panel.hidden = true; return; }
  panel.hidden = false;
  const mem = storage.redis_memory || {};
  const ratio = mem.max_bytes ? Math.min(1, mem.used_bytes / mem.max_bytes) : null;
  $("redis-memory").textContent = mem.max_bytes
    ? `${fmtBytes(mem.used_bytes)} of ${fmtBytes(mem.max_bytes)} (${(ratio * 100).toFixed(0)}%)`
    : `${fmtBytes(mem.used_bytes)} (no limit)`;
  const bar = $("redis-memory-bar");
  bar.style.width = `${((ratio ?? 0) * 100).toFixed(0)}%`;
  bar.classList.toggle("bad", ratio !== null && ratio > 0.9);
  const archive = storage.archive || {};
  $("archive-lag").textContent = archive.due
    ? `${archive.due} due, oldest ${fmtDuration(archive.lag_s)} late`
    : "up to date";
  $("archive-lag").classList.toggle("bad", (archive.lag_s || 0) > 60);
  const cold = storage.cold_store;
  $("cold-count").textContent = !cold ? "no cold store"
    : cold.reachable === false ? "unreachable" : `${cold.trips} trips, ${cold.events} events`;
  $("cold-count").classList.toggle("bad", !!cold && cold.reachable === false);
}

export async function pollAnalytics() {
  const body = $("analytics-table") && $("analytics-table").tBodies[0];
  if (!body) return;
  try {
    const resp = await api("/v1/ops/analytics?days=7");
    if (!resp.ok) throw new Error(`analytics ${resp.status}`);
    const a = await resp.json();
    const rows = (a.per_product || []).map((p) => {
      const out = p.by_outcome || {};
      const who = Object.entries(p.cancelled_by || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      const wait = p.request_to_assigned_s || {};
      return el("tr", {},
        el("td", { text: p.product }),
        el("td", { class: "num", text: p.trips, title: `completed ${out.completed || 0}, ` +
          `cancelled ${out.cancelled || 0}${who ? ` (${who})` : ""}, expired ${out.expired || 0}` }),
        el("td", { class: "num", text: p.revenue ? p.revenue.amount : "-" }),
        el("td", { class: "num", text: wait.p50 ?? "-", title: `p90 ${wait.p90 ?? "-"} s, p99 ${wait.p99 ?? "-"} s` }));
    });
    body.replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no trip has gone cold yet" }))]));
  } catch (err) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted", text: `unavailable: ${err.message}` })));
  }
}
