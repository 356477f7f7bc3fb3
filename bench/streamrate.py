"""Scenario 7: the event runner of common alone.

Events consumed and acknowledged per second by one process running
`common.streams.StreamConsumer` with an empty handler, beside the raw rate
of XREADGROUP + XACK on the same server from a bare client (an asyncio
socket and the hiredis parser, nothing else), in alternating rounds. Each
round reads the whole stream through a consumer group of its own.

    python -m bench.streamrate fill   REDIS_URL STREAM N
    python -m bench.streamrate raw    REDIS_URL STREAM GROUP N
    python -m bench.streamrate runner REDIS_URL STREAM GROUP N [--record] [--batch B]
    python -m bench.streamrate compare [--events N] [--rounds R] [--servers durable,memory]
                                       [--before OTHER_SOURCE_TREE]

Each measuring command prints one JSON line: {"events", "seconds", "rate"}.
`compare` starts its own embedded servers (durable: AOF with fsync always;
in-memory: no AOF), fills each once and runs R alternating rounds of the
bare client and the runner on it, each in a process of its own; it prints
every round and the ratio of the sums (the machine is noisy: read every
round, not the best).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import hiredis

from common.events import entry_fields, envelope

ROOT = Path(__file__).resolve().parent.parent
STREAM = "rh:{bench}:events"
RAW_BATCH = 1000
RUNNER_BATCH = 1000


def _pack(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Bare:
    """A bare RESP2 client: one socket, hiredis parsing, no retries, no pool."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.parser = hiredis.Reader()

    async def open(self) -> "Bare":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def call(self, payload: bytes, replies: int = 1) -> list:
        self.writer.write(payload)
        out = []
        while len(out) < replies:
            reply = self.parser.gets()
            if reply is False:
                data = await self.reader.read(1 << 20)
                if not data:
                    raise ConnectionError("server closed the connection")
                self.parser.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise reply
            out.append(reply)
        return out

    def close(self) -> None:
        self.writer.close()


async def fill(url: str, stream: str, n: int) -> None:
    client = await Bare(url).open()
    await client.call(_pack("DEL", stream))
    chunk = 5000
    done = 0
    while done < n:
        k = min(chunk, n - done)
        payload = []
        for i in range(k):
            env = envelope("trip.requested", "bench", trip_id=f"trp_bench_{done + i:08d}",
                           data={"product": "standard", "i": done + i})
            fields = entry_fields(env)
            args = ["XADD", stream, "*"]
            for key, value in fields.items():
                args += [key, value]
            payload.append(_pack(*args))
        await client.call(b"".join(payload), replies=k)
        done += k
    client.close()


async def raw(url: str, stream: str, group: str, n: int) -> dict:
    client = await Bare(url).open()
    await client.call(_pack("XGROUP", "CREATE", stream, group, "0"))
    read = _pack("XREADGROUP", "GROUP", group, "bare", "COUNT", RAW_BATCH, "STREAMS", stream, ">")
    gc.freeze()  # as the runner's side does, like a service process (common.service)
    handled = 0
    cpu0 = time.process_time()
    started = time.perf_counter()
    while handled < n:
        (reply,) = await client.call(read)
        if not reply:
            break
        ids = [entry[0] for entry in reply[0][1]]
        # Packed by hiredis (C), as the runner packs its acks.
        await client.call(hiredis.pack_command((b"XACK", stream, group, *ids)))
        handled += len(ids)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    client.close()
    return {"events": handled, "seconds": seconds, "rate": handled / seconds,
            "cpu_us_per_event": cpu / max(handled, 1) * 1e6}


async def runner(url: str, stream: str, group: str, n: int, record: bool, batch: int) -> dict:
    from common.redisconn import create_redis
    from common.streams import StreamConsumer

    redis = create_redis(url)
    count = 0
    consumer: StreamConsumer

    async def handler(entry) -> None:
        nonlocal count
        count += 1
        if count >= n:
            consumer.stop()

    consumer = StreamConsumer(redis, stream, group, "runner", handler, batch=batch,
                              block_ms=100, claim_idle_ms=60_000, record_deliveries=record)
    await redis.xgroup_create(stream, group, id="0")
    # As a service process settles its heap once started (common.service.serve).
    try:
        from common.service import settle_heap
    except ImportError:  # an older tree (--before) that only froze it
        settle_heap = gc.freeze
    settle_heap()
    cpu0 = time.process_time()
    started = time.perf_counter()
    await consumer.run()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    pending = (await redis.xpending(stream, group))["pending"]
    await redis.aclose()
    return {"events": consumer.stats.handled, "seconds": seconds,
            "rate": consumer.stats.handled / seconds, "pending": pending,
            "cpu_us_per_event": cpu / max(consumer.stats.handled, 1) * 1e6}


def run_fill(url: str, stream: str, n: int) -> None:
    out = subprocess.run([sys.executable, "-m", "bench.streamrate", "fill", url, stream, str(n)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"streamrate fill failed: {out.stderr[-3000:]}")


def run_side(kind: str, url: str, stream: str, group: str, n: int, *extra: str,
             root: Path = ROOT) -> dict:
    """One measurement in a process of its own (the runner alone in it);
    `root`: the source tree to run it from (another version of the runner)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.streamrate", kind, url, stream, group, str(n), *extra],
        capture_output=True, text=True, timeout=120 + n / 10_000, cwd=root,
    )
    if out.returncode != 0:
        raise RuntimeError(f"streamrate {kind} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _side(kind: str, server, group: str, events: int, root: Path = ROOT) -> dict:
    """run_side(), with the server's CPU per event beside the client's."""
    cpu0 = _cpu_s(server.process.pid)
    result = run_side(kind, server.url, STREAM, group, events, root=root)
    result["server_us_per_event"] = (_cpu_s(server.process.pid) - cpu0) / events * 1e6
    return result


def _line(name: str, x: dict) -> str:
    return (f"{name} {x['rate']:>9,.0f}/s (cpu us/event {x['cpu_us_per_event']:.2f}, "
            f"server {x['server_us_per_event']:.2f})")


def compare(events: int, rounds: int, servers: list[str], before: Path | None = None) -> list[dict]:
    import tempfile

    from common.embedded import EmbeddedRedis, free_port

    out = []
    with tempfile.TemporaryDirectory(prefix="streamrate-") as tmp:
        for kind in servers:
            extra = ["--appendonly", "no"] if kind == "memory" else []
            server = EmbeddedRedis(Path(tmp) / kind, port=free_port(), extra_args=extra).start()
            try:
                run_fill(server.url, STREAM, events)
                raw_rounds, runner_rounds, before_rounds = [], [], []
                for r in range(rounds):
                    a = _side("raw", server, f"raw{r}", events)
                    b = _side("runner", server, f"runner{r}", events)
                    raw_rounds.append(a)
                    runner_rounds.append(b)
                    line = (f"{kind:7} round {r + 1}: {_line('bare', a)}  {_line('runner', b)}  "
                            f"ratio {b['rate'] / a['rate']:.3f}  pending {b.get('pending', 0)}")
                    if before is not None:
                        c = _side("runner", server, f"before{r}", events, root=before)
                        before_rounds.append(c)
                        line += f"  {_line('before', c)} ratio {c['rate'] / a['rate']:.3f}"
                    print(line, flush=True)
                bare = sum(x["events"] for x in raw_rounds) / sum(x["seconds"] for x in raw_rounds)
                run = (sum(x["events"] for x in runner_rounds)
                       / sum(x["seconds"] for x in runner_rounds))
                summary = {"server": kind, "bare": round(bare), "runner": round(run),
                           "ratio": round(run / bare, 3),
                           "bare_rounds": [round(x["rate"]) for x in raw_rounds],
                           "runner_rounds": [round(x["rate"]) for x in runner_rounds]}
                if before_rounds:
                    prior = (sum(x["events"] for x in before_rounds)
                             / sum(x["seconds"] for x in before_rounds))
                    summary.update(before=round(prior), before_ratio=round(prior / bare, 3),
                                   before_rounds=[round(x["rate"]) for x in before_rounds])
                print(json.dumps(summary), flush=True)
                out.append(summary)
            finally:
                server.stop()
    return out


def _loop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        c = argparse.ArgumentParser(prog="python -m bench.streamrate compare")
        c.add_argument("--events", type=int, default=300_000)
        c.add_argument("--rounds", type=int, default=3)
        c.add_argument("--servers", default="durable,memory")
        c.add_argument("--before", type=Path, default=None,
                       help="another source tree whose runner runs beside in each round")
        ca = c.parse_args(argv[1:])
        compare(ca.events, ca.rounds, ca.servers.split(","), ca.before)
        return
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("fill", "raw", "runner"))
    p.add_argument("url")
    p.add_argument("stream")
    p.add_argument("rest", nargs="+")
    p.add_argument("--record", action="store_true")
    p.add_argument("--batch", type=int, default=RUNNER_BATCH)
    a = p.parse_args(argv)
    _loop()
    if a.kind == "fill":
        asyncio.run(fill(a.url, a.stream, int(a.rest[0])))
        print(json.dumps({"filled": int(a.rest[0])}))
        return
    group, n = a.rest[0], int(a.rest[1])
    if a.kind == "raw":
        result = asyncio.run(raw(a.url, a.stream, group, n))
    else:
        result = asyncio.run(runner(a.url, a.stream, group, n, a.record, a.batch))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
