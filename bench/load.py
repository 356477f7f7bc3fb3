"""The load generators: wrk (from Debian) with a generated Lua script, or,
where wrk is missing, an asyncio aiohttp client in a process of its own.

Both run a fixed time against one base URL and report requests/s, p50, p99
and errors (a transport error or any status the request did not expect).
Two shapes:

- `Fixed`: a list of prepared requests sent round-robin (each connection
  sends the next one), closed loop with `connections` in flight, or paced at
  `rate` requests/s (then `connections` only bounds what is in flight);
- `CreateCancel`: per rider, create a trip and cancel it, in a loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WRK = shutil.which("wrk")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect: tuple[int, ...] = (200,)


@dataclass(slots=True)
class Fixed:
    requests: list[Request]


@dataclass(slots=True)
class Rider:
    token: str
    rider_id: str


@dataclass(slots=True)
class CreateCancel:
    riders: list[Rider]
    trip_body: bytes


@dataclass(slots=True)
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def tool_name() -> str:
    return "wrk" if WRK else "aiohttp (asyncio client)"


# --- wrk -------------------------------------------------------------------

def _lua_str(value: str | bytes) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _lua_headers(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items()) + "}"


# Pacing: a global schedule of send times per wrk thread, so the rate holds
# whatever the latency (as long as enough connections are free). LuaJIT's ffi
# gives the monotonic clock; `delay()` is wrk's hook before each request.
_PACING = """
local ffi = require("ffi")
ffi.cdef[[ struct bench_ts { long tv_sec; long tv_nsec; };
           int clock_gettime(int clk_id, struct bench_ts *tp); ]]
local ts = ffi.new("struct bench_ts")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = INTERVAL_MS
local next_t = nil
function delay()
  local n = now_ms()
  if next_t == nil then next_t = n end
  local d = next_t - n
  next_t = next_t + interval
  if d <= 0 then
    -- Behind schedule (every connection was busy): do not burst to catch up.
    if d < -50 then next_t = n + interval end
    return 0
  end
  return math.floor(d)
end
"""

_DONE = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local bad = 0
  local starved = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("bad") or 0)
    starved = starved + (t:get("starved") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"bad": %d, "starved": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, bad, starved))
end
"""


def _fixed_script(spec: Fixed) -> str:
    rows = []
    for r in spec.requests:
        body = _lua_str(r.body) if r.body is not None else "nil"
        rows.append(f"  {{{_lua_str(r.method)}, {_lua_str(r.path)}, {_lua_headers(r.headers)}, {body}}}")
    expects = sorted({s for r in spec.requests for s in r.expect})
    expect_lua = "{" + ", ".join(f"[{s}] = true" for s in expects) + "}"
    # wrk counts statuses > 399 as errors; `bad` also counts unexpected 2xx/3xx.
    return (
        "local specs = {\n" + ",\n".join(rows) + "\n}\n"
        "local prepared = {}\n"
        "local n = 0\n"
        f"local expect = {expect_lua}\n"
        "bad = 0\nstarved = 0\n"
        "function init(args)\n"
        "  for i, s in ipairs(specs) do prepared[i] = wrk.format(s[1], s[2], s[3], s[4]) end\n"
        "  n = math.random(#prepared) - 1\n"
        "end\n"
        "function request()\n"
        "  n = n + 1\n"
        "  return prepared[(n % #prepared) + 1]\n"
        "end\n"
        "function response(status, headers, body)\n"
        "  if status < 400 and not expect[status] then bad = bad + 1 end\n"
        "end\n"
    )


def _create_cancel_script(spec: CreateCancel) -> str:
    rows = ",\n".join(f"  {{{_lua_str(r.token)}, {_lua_str(r.rider_id)}}}" for r in spec.riders)
    return (
        "local riders = {\n" + rows + "\n}\n"
        f"local trip_body = {_lua_str(spec.trip_body)}\n"
        "local free = {}\nlocal by_rider = {}\nlocal cancels = {}\n"
        "bad = 0\nstarved = 0\n"
        "function init(args)\n"
        "  for i, r in ipairs(riders) do free[#free + 1] = i; by_rider[r[2]] = i end\n"
        "end\n"
        "local function headers(i)\n"
        "  return {['Authorization'] = 'Bearer ' .. riders[i][1],"
        " ['Content-Type'] = 'application/json'}\n"
        "end\n"
        "function request()\n"
        "  if #cancels > 0 then\n"
        "    local c = table.remove(cancels, 1)\n"
        "    return wrk.format('POST', '/v1/trips/' .. c[2] .. '/cancel', headers(c[1]),"
        " '{\"reason\": \"benchmark\"}')\n"
        "  end\n"
        "  local i = table.remove(free)\n"
        "  if i == nil then\n"
        "    starved = starved + 1\n"
        "    return wrk.format('GET', '/healthz')\n"
        "  end\n"
        "  return wrk.format('POST', '/v1/trips', headers(i), trip_body)\n"
        "end\n"
        "function response(status, hdrs, body)\n"
        "  local rider = string.match(body, '\"rider_id\": *\"([^\"]+)\"')\n"
        "  if status == 201 and rider then\n"
        "    local trip = string.match(body, '\"id\": *\"(trp_[^\"]+)\"')\n"
        "    cancels[#cancels + 1] = {by_rider[rider], trip}\n"
        "  elseif status == 200 and rider then\n"
        "    free[#free + 1] = by_rider[rider]\n"
        "  elseif status < 400 and not rider then\n"
        "    -- a starved connection's health check: not a request of the loop\n"
        "  else\n"
        "    bad = bad + 1\n"
        "  end\n"
        "end\n"
    )


def _run_wrk(base_url: str, script: str, connections: int, duration_s: float,
             rate: float | None, threads: int) -> LoadResult:
    if rate:
        per_thread = rate / threads
        script = _PACING.replace("INTERVAL_MS", repr(1000.0 / per_thread)) + script
    script += _DONE
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        cmd = [
            WRK, "-t", str(threads), "-c", str(max(connections, threads)),
            "-d", f"{max(1, round(duration_s))}s", "--timeout", "5s", "-s", path, base_url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        os.unlink(path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(line[len("WRKJSON "):])
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"] + d["bad"]
    errors += d["starved"]
    requests = d["requests"] - d["starved"]
    return LoadResult(
        requests=requests,
        duration_s=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        errors=errors,
        tool="wrk",
    )


# --- the asyncio fallback ----------------------------------------------------

def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    k = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[k]


async def _aio_load(base_url: str, spec, connections: int, duration_s: float,
                    rate: float | None) -> dict:
    import aiohttp

    lat: list[float] = []
    errors = 0
    done = 0
    stop_at = time.perf_counter() + duration_s
    connector = aiohttp.TCPConnector(limit=connections)
    interval = 1.0 / rate if rate else 0.0
    next_slot = time.perf_counter()

    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def send(req: Request) -> tuple[int, bytes]:
            async with session.request(req.method, req.path, headers=req.headers,
                                       data=req.body) as resp:
                return resp.status, await resp.read()

        async def pace() -> None:
            nonlocal next_slot
            if not interval:
                return
            now = time.perf_counter()
            wait = next_slot - now
            next_slot = max(next_slot, now - 0.05) + interval
            if wait > 0:
                await asyncio.sleep(wait)

        async def fixed_worker(offset: int) -> None:
            nonlocal errors, done
            reqs = spec.requests
            i = offset
            while time.perf_counter() < stop_at:
                await pace()
                req = reqs[i % len(reqs)]
                i += connections
                t0 = time.perf_counter()
                try:
                    status, _ = await send(req)
                    if status not in req.expect:
                        errors += 1
                except Exception:
                    errors += 1
                lat.append(time.perf_counter() - t0)
                done += 1

        async def rider_worker(riders: list[Rider]) -> None:
            nonlocal errors, done
            i = 0
            while time.perf_counter() < stop_at and riders:
                rider = riders[i % len(riders)]
                i += 1
                headers = {"Authorization": f"Bearer {rider.token}",
                           "Content-Type": "application/json"}
                t0 = time.perf_counter()
                try:
                    status, body = await send(Request("POST", "/v1/trips", headers, spec.trip_body))
                except Exception:
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t0)
                done += 1
                if status != 201:
                    errors += 1
                    continue
                trip_id = json.loads(body)["id"]
                t0 = time.perf_counter()
                try:
                    status, _ = await send(Request(
                        "POST", f"/v1/trips/{trip_id}/cancel", headers, b'{"reason": "benchmark"}'))
                    if status != 200:
                        errors += 1
                except Exception:
                    errors += 1
                lat.append(time.perf_counter() - t0)
                done += 1

        started = time.perf_counter()
        if isinstance(spec, Fixed):
            await asyncio.gather(*(fixed_worker(i) for i in range(connections)))
        else:
            groups = [spec.riders[i::connections] for i in range(connections)]
            await asyncio.gather(*(rider_worker(g) for g in groups if g))
        elapsed = time.perf_counter() - started
    return {
        "requests": done,
        "duration_s": elapsed,
        "p50_ms": _percentile(lat, 50) * 1000,
        "p99_ms": _percentile(lat, 99) * 1000,
        "errors": errors,
    }


def _aio_main() -> None:
    """`python -m bench.load` reads a JSON job on stdin, prints the result."""
    job = json.loads(sys.stdin.read())
    if job["kind"] == "fixed":
        spec = Fixed([Request(r["method"], r["path"], r["headers"],
                              r["body"].encode() if r["body"] is not None else None,
                              tuple(r["expect"])) for r in job["requests"]])
    else:
        spec = CreateCancel([Rider(t, r) for t, r in job["riders"]], job["trip_body"].encode())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_aio_load(job["base_url"], spec, job["connections"],
                                   job["duration_s"], job["rate"]))
    print(json.dumps(result))


def _run_aio(base_url: str, spec, connections: int, duration_s: float,
             rate: float | None) -> LoadResult:
    if isinstance(spec, Fixed):
        job = {"kind": "fixed", "requests": [
            {"method": r.method, "path": r.path, "headers": r.headers,
             "body": r.body.decode() if r.body is not None else None, "expect": list(r.expect)}
            for r in spec.requests]}
    else:
        job = {"kind": "create_cancel", "riders": [[r.token, r.rider_id] for r in spec.riders],
               "trip_body": spec.trip_body.decode()}
    job.update(base_url=base_url, connections=connections, duration_s=duration_s, rate=rate)
    out = subprocess.run([sys.executable, "-m", "bench.load"], input=json.dumps(job),
                         capture_output=True, text=True, timeout=duration_s + 60,
                         cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return LoadResult(d["requests"], d["duration_s"], d["p50_ms"], d["p99_ms"], d["errors"],
                      "aiohttp")


def run(base_url: str, spec: Fixed | CreateCancel, *, connections: int, duration_s: float,
        rate: float | None = None, threads: int = 1) -> LoadResult:
    """Load `base_url` for `duration_s` seconds; see the module docstring."""
    if WRK:
        script = _fixed_script(spec) if isinstance(spec, Fixed) else _create_cancel_script(spec)
        return _run_wrk(base_url, script, connections, duration_s, rate, threads)
    return _run_aio(base_url, spec, connections, duration_s, rate)


if __name__ == "__main__":
    _aio_main()
