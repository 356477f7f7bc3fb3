"""Scenario 10: overload sheds, it does not queue.

`PUT /v1/driver/location` closed-loop at 32 to 1,024 connections, against
the system's gateway (in-flight limit on, MAX_IN_FLIGHT's default) and a
second gateway process on the same services and Redis with the limit off,
alternating per level in the same run. For each level: admitted requests/s,
p50/p99 of the admitted requests only, the share answered 503 overloaded and
the p99 of those answers (time to the answer). Any other answer than the
route's own or 503 `/problems/overloaded` counts as an error.

The clients behave as the API asks (docs/api.md): after a 503 a connection
waits its `Retry-After` (with up to half again of jitter) before its next
request. One more run at the top level has clients that retry at once,
which shows what the limit can and cannot do against a client that ignores
it (each refusal still costs the gateway a parsed request).

wrk's own latency counts every answer, so the script times each request
itself: it tags the request with an X-Request-ID, which the gateway echoes,
and matches the answer to its start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.processes import ServiceProcess

from . import load
from .load import Fixed, _lua_headers, _lua_str
from .results import Row

LEVELS = (32, 64, 128, 256, 512, 1024)
QUICK_LEVELS = (8, 64)
TARGET = "at 1,024 connections: admitted p99 < 100 ms, >= 0.9 of the rate at 32, no errors"


@dataclass(slots=True)
class Point:
    connections: int
    duration_s: float
    admitted: int
    shed: int
    errors: int
    p50_ms: float
    p99_ms: float
    shed_p99_ms: float
    # The admitted requests' time inside the gateway (its own latency
    # histogram, interpolated within its buckets): what the process queued,
    # apart from the time the request waited to be read.
    inside_p50_ms: float | None = None
    inside_p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.admitted / self.duration_s if self.duration_s else 0.0

    @property
    def shed_share(self) -> float:
        total = self.admitted + self.shed
        return self.shed / total if total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rps": round(self.rps, 1), "shed_share": round(self.shed_share, 4)}


_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[ struct ov_ts { long tv_sec; long tv_nsec; };
           int clock_gettime(int clk_id, struct ov_ts *tp); ]]
local ts = ffi.new("struct ov_ts")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local specs = {
SPECS
}
local honor = HONOR
local heads, rests = {}, {}
local n, seq = 0, 0
local prefix = ""
local started = {}
local waits, whead, wtail = {}, 1, 0
lat = {}
shed_lat = {}
bad = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for i, s in ipairs(specs) do
    local raw = wrk.format(s[1], s[2], s[3], s[4])
    local cut = string.find(raw, "\\r\\n", 1, true)
    heads[i] = string.sub(raw, 1, cut - 1)
    rests[i] = string.sub(raw, cut)
  end
  n = math.random(#specs) - 1
  prefix = "ov" .. math.random(1000000000) .. "-"
end
function request()
  n = n + 1
  seq = seq + 1
  local i = (n % #specs) + 1
  local id = prefix .. seq
  started[id] = now_us()
  return heads[i] .. "\\r\\nX-Request-ID: " .. id .. rests[i]
end
function delay()
  if whead > wtail then return 0 end
  local w = waits[whead]
  waits[whead] = nil
  whead = whead + 1
  return w
end
function response(status, headers, body)
  local id = headers["X-Request-ID"]
  local t0 = id and started[id]
  local us = 0
  if t0 then
    started[id] = nil
    us = now_us() - t0
  end
  if status == 503 and string.find(body, "/problems/overloaded", 1, true) then
    shed_lat[#shed_lat + 1] = us
    if honor then
      local s = tonumber(headers["Retry-After"]) or 1
      wtail = wtail + 1
      waits[wtail] = math.floor(s * 1000 * (1 + 0.5 * math.random()))
    end
  elseif status == EXPECT then
    lat[#lat + 1] = us
  else
    bad = bad + 1
  end
end
local function pct(values, q)
  if #values == 0 then return 0 end
  table.sort(values)
  local k = math.max(1, math.ceil(q / 100 * #values))
  return values[k]
end
function done(summary, latency, requests)
  local all, sheds, nbad = {}, {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
    for _, v in ipairs(t:get("shed_lat")) do sheds[#sheds + 1] = v end
    nbad = nbad + (t:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'OVJSON {"admitted": %d, "shed": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"shed_p99_us": %d, "errors": %d}\\n',
    #all, #sheds, summary.duration, pct(all, 50), pct(all, 99), pct(sheds, 99),
    e.connect + e.read + e.write + e.timeout + nbad))
end
"""


def script(spec: Fixed, honor_retry_after: bool) -> str:
    rows = []
    for r in spec.requests:
        body = _lua_str(r.body) if r.body is not None else "nil"
        rows.append(f"  {{{_lua_str(r.method)}, {_lua_str(r.path)}, {_lua_headers(r.headers)}, {body}}}")
    expect = spec.requests[0].expect[0]
    return (_SCRIPT.replace("SPECS", ",\n".join(rows))
            .replace("HONOR", "true" if honor_retry_after else "false")
            .replace("EXPECT", str(expect)))


def run(url: str, spec: Fixed, connections: int, duration_s: float, *,
        honor_retry_after: bool = True, inside: Inside | None = None) -> Point:
    if not load.WRK:
        raise RuntimeError("the overload scenario needs wrk (apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script(spec, honor_retry_after))
        path = f.name
    before = inside.buckets() if inside is not None else {}
    try:
        # A long timeout: without shedding a request waits seconds, and a
        # timed-out one would drop out of the latency it should count in.
        cmd = [load.WRK, "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration_s))}s",
               "--timeout", "30s", "-s", path, url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 90)
    finally:
        os.unlink(path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("OVJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(line[len("OVJSON "):])
    point = Point(connections, d["duration_us"] / 1e6, d["admitted"], d["shed"], d["errors"],
                  d["p50_us"] / 1000, d["p99_us"] / 1000, d["shed_p99_us"] / 1000)
    if inside is not None:
        after = inside.buckets()
        point.inside_p50_ms = _quantile(before, after, 0.50)
        point.inside_p99_ms = _quantile(before, after, 0.99)
    return point


_BUCKET = re.compile(r'^http_request_duration_seconds_bucket\{([^}]*)\} ([0-9.e+]+)$')
ROUTE = "/v1/driver/location"


class Inside:
    """The gateway's own latency histogram of the route, read from /metrics
    with an ops session."""

    def __init__(self, url: str, ops_password: str) -> None:
        self.url = url
        req = urllib.request.Request(
            f"{url}/v1/sessions", method="POST",
            data=json.dumps({"user_name": "ops", "password": ops_password}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = json.loads(resp.read())["token"]

    def buckets(self) -> dict[float, float]:
        req = urllib.request.Request(f"{self.url}/metrics",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        out: dict[float, float] = {}
        for line in text.splitlines():
            m = _BUCKET.match(line)
            if m and f'route="{ROUTE}"' in m.group(1):
                le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
                out[float("inf") if le == "+Inf" else float(le)] = float(m.group(2))
        return out


def _quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    want = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= want:
            if bound == float("inf"):
                return lower * 1000
            share = (want - below) / (cumulative - below) if cumulative > below else 1.0
            return (lower + share * (bound - lower)) * 1000
        lower, below = bound, cumulative
    return None


def unlimited_gateway(system, logs: Path) -> ServiceProcess:
    """A second gateway on the same services and Redis, with no in-flight limit."""
    env = {
        "REDIS_URL": system.redis_url,
        "OPS_USER_NAME": "ops",
        "OPS_PASSWORD": system.ops_password,
        "SIGNUPS_PER_ADDR": "0",
        **system.env,
        "TRIP_SERVICE_URL": system.trips.url,
        "DRIVER_SERVICE_URL": system.drivers.url,
        "MAX_IN_FLIGHT": "0",
    }
    return ServiceProcess("gateway", env, log_path=logs / "gateway_unlimited.log").start(timeout=30)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def measure(on_url: str, off_url: str, spec: Fixed, levels: tuple[int, ...],
            duration_s: float, log, ops_password: str) -> dict[str, list[Point]]:
    """Each level against both gateways, alternating; then the top level with
    clients that ignore Retry-After."""
    curves: dict[str, list[Point]] = {"off": [], "on": [], "on_no_backoff": []}
    insides = {"off": Inside(off_url, ops_password), "on": Inside(on_url, ops_password)}
    for c in levels:
        for side, url in (("off", off_url), ("on", on_url)):
            p = run(url, spec, c, duration_s, inside=insides[side])
            curves[side].append(p)
            log(f"overload, shedding {side}, {c} connections: {p.rps:,.0f} admitted/s, "
                f"p50 {p.p50_ms:.1f} ms, p99 {p.p99_ms:.1f} ms (inside the gateway "
                f"{_ms(p.inside_p50_ms)} / {_ms(p.inside_p99_ms)} ms), {p.shed_share:.0%} shed "
                f"(p99 {p.shed_p99_ms:.1f} ms), {p.errors} errors")
    p = run(on_url, spec, levels[-1], duration_s, honor_retry_after=False)
    curves["on_no_backoff"].append(p)
    log(f"overload, shedding on, {levels[-1]} connections, clients retry at once: "
        f"{p.rps:,.0f} admitted/s, p99 {p.p99_ms:.1f} ms, {p.shed_share:.0%} shed")
    return curves


def rows(curves: dict[str, list[Point]]) -> list[Row]:
    out = []
    names = {"off": "shedding off", "on": "shedding on",
             "on_no_backoff": "shedding on, clients retry at once"}
    for side in ("off", "on", "on_no_backoff"):
        points = curves[side]
        base = (curves[side] or curves["on"])[0] if side != "on_no_backoff" else curves["on"][0]
        for p in points:
            ratio = p.rps / base.rps if base.rps else None
            met = None
            if side == "on" and p is points[-1] and len(points) > 1:
                met = bool(p.p99_ms < 100 and ratio is not None and ratio >= 0.9
                           and p.errors == 0)
            out.append(Row(
                f"overload PUT /v1/driver/location, {names[side]}, {p.connections:,} conns: "
                f"{p.shed_share:.0%} shed",
                round(p.rps, 1), round(ratio, 3) if ratio else None, round(p.p50_ms, 3),
                round(p.p99_ms, 3), p.errors, number=10,
                baseline=f"{names[side]} at {base.connections} connections",
                unit="admitted requests/s", target=TARGET if side == "on" else None, met=met,
                extra=p.as_dict(),
            ))
    return out


def main() -> int:
    """`python -m bench.overload`: this scenario alone, on a system of its own."""
    import asyncio
    import random
    import shutil
    import sys

    from common.redisconn import create_redis

    from .results import table
    from .routes import location_pair
    from .seed import seed
    from .system import BenchSystem, env_flag

    quick = env_flag("BENCH_QUICK")
    work = Path(tempfile.mkdtemp(prefix="ridehail-overload-"))
    system = BenchSystem(work)
    off = None
    rng = random.Random(7)
    try:
        system.start()
        off = unlimited_gateway(system, work / "logs")

        async def do_seed():
            redis = create_redis(system.redis_url)
            try:
                return await seed(system.gateway.url, redis, view=1,
                                  location=8 if quick else 64, loop_riders=1, rng=rng)
            finally:
                await redis.aclose()

        seeded = asyncio.run(do_seed())
        spec = location_pair(seeded, system.gateway.url, system.front.url, rng).system
        curves = measure(system.gateway.url, off.url, spec, QUICK_LEVELS if quick else LEVELS,
                         1.0 if quick else 5.0, lambda m: print(f"[overload] {m}", flush=True),
                         system.ops_password)
        print(table(rows(curves)))
    finally:
        if off is not None:
            off.stop()
        system.stop()
        if not env_flag("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return 0 if sys.exc_info()[0] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
