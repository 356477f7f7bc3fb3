// GET /v1/ops/topology, polled: Redis shards, nodes, replication lag and
// failovers. The gateway polls the nodes itself; the page only reads what it
// found. A failover goes into the live feed once.

import { api } from "./auth.js";
import { addFeedRow } from "./live.js";
import { state } from "./state.js";
import { $, el, fmtTime } from "./util.js";

export async function pollTopology() {
  try {
    const resp = await api("/v1/ops/topology");
    if (!resp.ok) throw new Error(`topology ${resp.status}`);
    renderTopology(await resp.json());
  } catch (err) {
    $("topology-summary").textContent = `unavailable: ${err.message}`;
  }
}

function renderTopology(t) {
  const card = $("topology");
  card.dataset.mode = t.mode;
  card.dataset.shards = String(t.shards.length);
  card.dataset.failovers = String(t.failovers.length);
  const table = $("topology-table");
  if (t.mode !== "cluster") {
    $("topology-summary").textContent = "one server (no shards, no replicas)";
    table.hidden = true;
    $("failovers").replaceChildren();
    return;
  }
  if (!t.shards.length) {
    $("topology-summary").textContent = `cluster: ${t.problem || "no shards found"}`;
    table.hidden = true;
    return;
  }
  const down = t.shards.filter((s) => !s.primary);
  const nodes = t.shards.reduce((a, s) => a + s.nodes.length, 0);
  $("topology-summary").textContent = `cluster: ${t.shards.length} shards, ${nodes} nodes` +
    (down.length ? `, ${down.length} without a primary` : "");
  table.hidden = false;
  const rows = [];
  for (const [i, s] of t.shards.entries()) {
    const slots = s.slots.map((r) => `${r[0]}-${r[1]}`).join(", ");
    const head = `shard ${i} · slots ${slots}` + (s.regions.length ? ` · ${s.regions.join(", ")}` : "") +
      (s.primary ? "" : ` · no primary${s.no_primary_for_s !== null ? ` for ${s.no_primary_for_s.toFixed(1)} s` : ""}`);
    rows.push(el("tr", { class: `shard${s.primary ? "" : " hot"}`, "data-shard": String(i) },
      el("th", { colspan: "5", text: head })));
    for (const n of s.nodes) {
      const bad = !n.reachable || n.link === "down" || n.role === "stale primary";
      rows.push(el("tr", { class: `node ${bad ? "hot" : ""}`, "data-role": n.role, "data-address": n.address },
        el("td", { text: n.address, title: `${n.id} · health ${n.health ?? "?"}` }),
        el("td", { class: `role r-${n.role.replace(" ", "-")}`, text: n.reachable ? n.role : `${n.role} (no answer)` }),
        el("td", { class: "muted", text: n.follows ?? "" }),
        el("td", { class: "num", text: n.lag_bytes ?? "" }),
        el("td", { text: n.link ?? "" })));
    }
  }
  table.tBodies[0].replaceChildren(...rows);
  $("failovers").replaceChildren(...t.failovers.slice(0, 5).map((f) => el("li", {},
    el("span", { class: "muted", text: fmtTime(f.at), title: f.at }),
    el("span", { text: ` ${f.regions.join(", ") || "shard"}: ${f.failed ?? "?"} → ${f.promoted}, ` +
      `no primary for ${f.no_primary_s.toFixed(1)} s` }))));
  for (const f of [...t.failovers].reverse()) {
    const key = `${f.at} ${f.shard}`;
    if (state.failoversSeen.has(key)) continue;
    state.failoversSeen.add(key);
    addFeedRow("redis.failover", {
      occurred_at: f.at, producer: "gateway",
      summary: `${f.failed ?? "?"} → ${f.promoted} (no primary ${f.no_primary_s.toFixed(1)} s)`,
    }, `${f.regions.join(",")}`);
  }
}
