// The current run over time (GET /v1/ops/history): trips per minute by
// outcome, request-to-assigned latency, fares and surge, and this gateway's
// routes. Charts are plain canvas, drawn for the device's pixel ratio; each
// canvas says in data-points how many minutes it drew (the browser test reads
// it).

const COLORS = {
  completed: "#3ddc84", cancelled: "#8796a5", expired: "#ff5d6c", requested: "#4fb3ff",
  p50: "#4fb3ff", p95: "#ffb347", fare: "#3ddc84", surge: "#ffb347",
  grid: "#2a3542", text: "#8796a5",
};

function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 280;
  const h = canvas.clientHeight || 110;
  if (canvas.width !== Math.round(w * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "10px system-ui";
  return { g, w, h, pad: { l: 30, r: 6, t: 8, b: 14 } };
}

function axes(c, max, unit, minutes) {
  const { g, w, h, pad } = c;
  g.strokeStyle = COLORS.grid;
  g.fillStyle = COLORS.text;
  g.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + (1 - f) * (h - pad.t - pad.b);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(`${fmt(max * f)}${f === 1 ? unit : ""}`, 2, y + 3);
  }
  if (minutes.length) {
    g.fillText(clock(minutes[0].at), pad.l, h - 2);
    const last = clock(minutes[minutes.length - 1].at);
    g.fillText(last, w - pad.r - g.measureText(last).width, h - 2);
  }
}

function fmt(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toTimeString().slice(0, 5);
}

function xOf(c, i, n) {
  const { w, pad } = c;
  return pad.l + (n <= 1 ? 0 : (i / (n - 1)) * (w - pad.l - pad.r));
}

function yOf(c, v, max) {
  const { h, pad } = c;
  return pad.t + (1 - Math.min(1, v / max)) * (h - pad.t - pad.b);
}

function line(c, values, max, color) {
  const { g } = c;
  g.strokeStyle = color;
  g.lineWidth = 1.5;
  g.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) { drawing = false; return; }
    const x = xOf(c, i, values.length);
    const y = yOf(c, v, max);
    if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
    drawing = true;
  });
  g.stroke();
}

// Stacked bars: completed, cancelled, expired; requested as a line over them.
export function drawOutcomes(canvas, minutes) {
  const c = prepare(canvas);
  const stacks = ["completed", "cancelled", "expired"];
  const max = Math.max(1, ...minutes.map((m) => Math.max(
    stacks.reduce((a, k) => a + m[k], 0), m.requested)));
  axes(c, max, "/min", minutes);
  const { g, w, pad } = c;
  const slot = (w - pad.l - pad.r) / Math.max(1, minutes.length);
  minutes.forEach((m, i) => {
    let base = 0;
    for (const k of stacks) {
      if (!m[k]) continue;
      const y0 = yOf(c, base, max);
      const y1 = yOf(c, base + m[k], max);
      g.fillStyle = COLORS[k];
      g.fillRect(pad.l + i * slot + 1, y1, Math.max(1, slot - 2), y0 - y1);
      base += m[k];
    }
  });
  line(c, minutes.map((m) => m.requested), max, COLORS.requested);
  canvas.dataset.points = String(minutes.length);
}

export function drawAssigned(canvas, minutes) {
  const c = prepare(canvas);
  const p95 = minutes.map((m) => m.to_assigned_p95_ms);
  const max = Math.max(100, ...p95.filter((v) => v !== null));
  axes(c, max / 1000, " s", minutes);
  line(c, minutes.map((m) => m.to_assigned_p50_ms), max, COLORS.p50);
  line(c, p95, max, COLORS.p95);
  canvas.dataset.points = String(minutes.filter((m) => m.to_assigned_p50_ms !== null).length);
}

export function drawFares(canvas, minutes) {
  const c = prepare(canvas);
  const fares = minutes.map((m) => (m.fare_avg === null ? null : Number(m.fare_avg)));
  const maxFare = Math.max(1, ...fares.filter((v) => v !== null));
  axes(c, maxFare, "$", minutes);
  line(c, fares, maxFare, COLORS.fare);
  // Surge on its own scale, 1x to the highest seen (at least 2x).
  const surges = minutes.map((m) => m.surge_avg);
  const maxSurge = Math.max(2, ...surges.filter((v) => v !== null));
  line(c, surges.map((v) => (v === null ? null : (v / maxSurge) * maxFare)), maxFare, COLORS.surge);
  c.g.fillStyle = COLORS.surge;
  c.g.fillText(`surge to ${maxSurge.toFixed(1)}x`, c.w - 80, 10);
  canvas.dataset.points = String(fares.filter((v) => v !== null).length);
}
