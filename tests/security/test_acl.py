"""Least privilege, enforced by the server: each process's own ACL user
(common.acl) may touch its own keys and the shared ones it needs, nothing
else, and no dangerous command. Checked against a real server with the
users installed, and a running system whose every call goes through them."""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import re
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
import yaml
from redis.exceptions import NoPermissionError

from common import acl, keys
from deploy import acl as acl_export
from common.scripts import all_libraries
from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis, free_port
from tests.demo.deployfiles import compose, k8s_documents, service_env
from tests.client import PASSWORD, driver_body, read_sse, rider_body
from tests.client import ApiClient as Client
from tests.helpers.e2e import near, next_offer, request_trip, unique
from tests.harness import ROOT, System
from tests.waiting import eventually

SECURITY_ENV = {
    "OFFER_TIMEOUT_S": "1",
    "TRIP_EXPIRY_S": "5",
    "DISPATCH_RADIUS_M": "400",
    "SWEEP_INTERVAL_S": "0.05",
    "CLAIM_IDLE_MS": "1000",
    "RATE_LIMIT_PER_TOKEN": "0",
    "SSE_PING_S": "1",
    "STREAM_BLOCK_MS": "200",
}
TRIP = "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"
DRIVER = "drv_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"
RIDER = "rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = EmbeddedRedis(tmp_path_factory.mktemp("acl") / "redis", free_port()).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def urls(server) -> dict[str, str]:
    load_functions(server.url)
    return acl.install_users(server.url, acl.new_passwords())


@pytest.fixture
def admin(server):
    client = redis_sync.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def as_user(urls):
    clients = []

    def connect(service: str) -> redis_sync.Redis:
        client = redis_sync.Redis.from_url(urls[service], decode_responses=True)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def denied(call, *args) -> bool:
    try:
        call(*args)
    except NoPermissionError:
        return True
    return False


# --- isolation between the services -------------------------------------------
def test_trip_service_cannot_read_the_gateways_credentials_or_sessions(admin, as_user):
    admin.set(keys.account("alice"), '{"hash": "$argon2id$..."}')
    admin.hset(keys.session("f" * 64), mapping={"subject_id": RIDER, "role": "rider"})
    trips = as_user("trip_service")
    assert denied(trips.get, keys.account("alice"))
    assert denied(trips.hgetall, keys.session("f" * 64))
    assert denied(trips.set, keys.account("alice"), "{}")
    # Nor does driver_service.
    assert denied(as_user("driver_service").get, keys.account("alice"))
    # Its own keys, it can.
    assert trips.execute_command("JSON.SET", keys.trip(TRIP), "$", '{"status": "requested"}')
    # The denial is in the server's log, named by user and key.
    log = admin.execute_command("ACL", "LOG")
    assert any(e["username"] == "ridehail-trip-service" and e["object"] == keys.account("alice")
               for e in log)


def test_the_gateway_cannot_write_a_trip_but_reads_the_events_it_streams(admin, as_user):
    admin.execute_command("JSON.SET", keys.trip(TRIP), "$", '{"status": "requested"}')
    admin.xadd(keys.events("sf"), {"type": "trip.requested", "trip_id": TRIP})
    admin.rpush(keys.trip_events(TRIP), '{"stream_id": "1-0"}')
    gw = as_user("gateway")
    assert denied(gw.execute_command, "JSON.SET", keys.trip(TRIP), "$.status", '"completed"')
    assert denied(gw.execute_command, "JSON.GET", keys.trip(TRIP))
    assert denied(gw.delete, keys.trip(TRIP))
    assert denied(gw.xadd, keys.events("sf"), {"type": "trip.completed"})
    assert denied(gw.rpush, keys.trip_events(TRIP), "x")
    assert denied(gw.zadd, keys.pending("sf", "standard"), {TRIP: 1})
    # Read-only where it only reads: the stream and a trip's past events.
    assert gw.xrange(keys.events("sf"))
    assert gw.lrange(keys.trip_events(TRIP), 0, -1)
    assert gw.set(keys.subject(RIDER), "{}")


def test_driver_service_cannot_touch_rider_history_and_trip_service_no_driver(admin, as_user):
    drivers, trips = as_user("driver_service"), as_user("trip_service")
    assert denied(drivers.zadd, keys.rider_trips(RIDER), {TRIP: 1})
    assert denied(trips.execute_command, "JSON.SET", keys.driver(DRIVER), "$", "{}")
    assert denied(trips.geoadd, keys.geo("sf", "xl"), (-122.4, 37.7, DRIVER))
    assert denied(trips.hset, keys.supply("sf", "xl"), "cell", 1)
    assert trips.hget(keys.supply("sf", "xl"), "cell") is None  # read-only: surge


@pytest.mark.parametrize("service", acl.SERVICES)
def test_no_service_may_run_a_dangerous_command(admin, as_user, service):
    client = as_user(service)
    admin.set("canary", "1")
    for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"),
                    ("CONFIG", "SET", "appendonly", "no"), ("KEYS", "*"), ("SCAN", "0"),
                    ("SCRIPT", "FLUSH"), ("ACL", "LIST"), ("SHUTDOWN", "NOSAVE"),
                    ("MODULE", "LIST")):
        assert denied(client.execute_command, *command), command
    # DEBUG is refused by the server's own setting before the ACL is asked:
    # ask the ACL alone, for it and every other command no service may run.
    user = acl.USERS[service].name
    for command in acl.DANGEROUS:
        answer = admin.execute_command("ACL", "DRYRUN", user, *command)
        assert "no permissions" in str(answer).lower(), (user, command, answer)
    assert admin.get("canary") == "1"  # the server is whole
    assert admin.config_get("appendonly")["appendonly"] == "yes"


PROBE_LIBRARY = f"""#!lua name=acl_probe
redis.register_function('probe_set', function(KEYS, ARGV) return redis.call('SET', KEYS[1], '1') end)
redis.register_function('probe_smuggle', function(KEYS, ARGV)
  return redis.call('DEL', '{keys.trip(TRIP)}')
end)
"""


def test_functions_run_with_the_callers_key_permissions(admin, as_user):
    admin.function_load(PROBE_LIBRARY, replace=True)
    try:
        gw = as_user("gateway")
        assert gw.fcall("probe_set", 1, "gw:probe") == "OK"
        with pytest.raises(NoPermissionError):
            gw.fcall("probe_set", 1, keys.trip(TRIP))
        with pytest.raises(redis_sync.ResponseError, match="permission|No permissions"):
            gw.fcall("probe_smuggle", 1, "gw:probe")
    finally:
        admin.function_delete("acl_probe")


@pytest.mark.parametrize("service", acl.SERVICES)
def test_no_service_may_run_lua_of_its_own(admin, as_user, service):
    """A stolen service password runs no Lua of its own: no SCRIPT LOAD, EVAL,
    EVALSHA or FUNCTION; only the functions the admin loaded (FCALL)."""
    client = as_user(service)
    loop = "local i = 0 while true do i = i + 1 end"
    sha = admin.script_load("return 1")
    for command in (("SCRIPT", "LOAD", loop), ("EVAL", loop, "0"), ("EVAL_RO", loop, "0"),
                    ("EVALSHA", sha, "0"), ("FUNCTION", "LOAD", "#!lua name=x\n" + loop),
                    ("FUNCTION", "DELETE", "ridehail_gateway"), ("FUNCTION", "FLUSH"),
                    ("FUNCTION", "DUMP"), ("SCRIPT", "FLUSH")):
        assert denied(client.execute_command, *command), (service, command[:2])
    # What it may do: call the loaded functions.
    assert client.fcall("gw__version", 0) == next(
        lib.version for lib in all_libraries() if lib.name == "ridehail_gateway")
    loaded = {dict(zip(entry[::2], entry[1::2]))["library_name"]
              for entry in admin.function_list()}
    assert loaded >= {lib.name for lib in all_libraries()}


def test_each_service_connects_as_its_own_user_and_no_other(admin, as_user, urls):
    for service in acl.SERVICES:
        assert as_user(service).ping()
    connected = {c["user"] for c in admin.client_list()}
    assert connected >= {u.name for u in acl.USERS.values()}
    wrong = acl.service_url(urls["gateway"], acl.USERS["gateway"].name, "not-the-password")
    with pytest.raises(redis_sync.AuthenticationError):
        redis_sync.Redis.from_url(wrong).ping()


# --- the definitions against the code ----------------------------------------------
def _sample_keys() -> dict[str, str]:
    """One key from every key builder of common.keys, by builder name."""
    samples = {}
    values = {"region": "sf", "product": "xl", "trip_id": TRIP, "driver_id": DRIVER,
              "rider_id": RIDER, "stream_id": "1-0", "group": keys.GROUP_DISPATCH,
              "event_id": "01JDQ3V8M7X1Y2Z3A4B5C6D7E8", "user_name": "alice",
              "subject_id": RIDER, "token_hash": "f" * 64, "key_hash": "e" * 64,
              "addr": "127.0.0.1"}
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        if fn.__module__ != keys.__name__ or name in ("tag", "stream_region"):
            continue
        params = list(inspect.signature(fn).parameters)
        samples[name] = fn(*(values[p] for p in params))
    return samples


def _granted(key: str) -> list[tuple[str, str]]:
    return [(u.service, g.access) for u in acl.USERS.values() for g in u.grants
            if fnmatch.fnmatchcase(key, g.pattern)]


def test_every_key_of_the_system_is_granted_to_some_service():
    missing = {name: key for name, key in _sample_keys().items() if not _granted(key)}
    assert not missing, f"no ACL user may touch these keys (common/acl.py): {missing}"


def test_the_gateways_keys_are_the_gateways_alone():
    for name, key in _sample_keys().items():
        owners = _granted(key)
        if key.startswith(keys.GW + ":"):
            assert owners == [("gateway", "rw")], (name, owners)
        else:
            assert ("gateway", "rw") not in owners or key == acl.PROBE.pattern, (name, owners)


def test_scripts_only_send_commands_their_user_may_run():
    """Every command inside a service's Lua scripts is in its user's list."""
    lua = {
        "trip_service": [ROOT / "common" / "lua", ROOT / "trip_service" / "lua"],
        "driver_service": [ROOT / "common" / "lua", ROOT / "driver_service" / "lua"],
        "gateway": [ROOT / "gateway" / "lua"],
    }
    call = re.compile(r"redis\.p?call\(\s*'([A-Za-z.]+)'")
    for service, folders in lua.items():
        used = {c.lower() for folder in folders for path in Path(folder).rglob("*.lua")
                for c in call.findall(path.read_text())}
        allowed = {c.split("|")[0] for c in acl.USERS[service].commands}
        assert used <= allowed, (service, sorted(used - allowed))


def test_the_security_page_shows_the_rules_as_they_are():
    page = (ROOT / "docs" / "security.md").read_text()
    assert acl_export.markdown_table() in page, "docs/security.md: regenerate the key table"
    assert acl_export.commands_table() in page, "docs/security.md: regenerate the command table"


def test_memorydb_access_strings_have_no_password_and_no_reset():
    for user in acl.USERS.values():
        access = acl_export.access_string(user)
        assert access.startswith("on ") and " reset " not in f" {access} "
        assert ">" not in access and "#" not in access
        assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]*", user.name)  # MemoryDB user names
    commands = acl_export.memorydb_commands()
    assert commands.count("create-user") == len(acl.USERS)


def test_the_compose_acl_file_loads_and_admits_each_user(tmp_path):
    values = acl_export.write_compose_files(tmp_path / "users.acl", tmp_path / ".env")
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert len(values["INTERNAL_TOKEN"]) >= 32
    text = (tmp_path / "users.acl").read_text()
    assert all(v not in text for v in values.values())  # hashes only
    data = tmp_path / "redis"
    data.mkdir()
    (data / "users.acl").write_text(text)
    server = EmbeddedRedis(data, free_port(),
                           admin_password=values[acl_export.ADMIN_ENV]).start()
    try:
        anonymous = redis_sync.Redis(host="127.0.0.1", port=server.port)
        with pytest.raises(redis_sync.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        for service, user in acl.USERS.items():
            url = acl.service_url(f"redis://127.0.0.1:{server.port}/0", user.name,
                                  values[user.env])
            client = redis_sync.Redis.from_url(url)
            assert client.ping()
            assert denied(client.flushall)
            client.close()
    finally:
        server.stop()


# --- the running system ------------------------------------------------------------
@pytest.fixture(scope="module")
def system(server, urls, tmp_path_factory):
    s = System(server.url, tmp_path_factory.mktemp("acl-system"), env=SECURITY_ENV,
               redis_urls=urls)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_each_service_is_ready_with_its_own_user(system, admin):
    for proc in system.processes():
        with urllib.request.urlopen(f"{proc.url}/readyz", timeout=5) as resp:
            assert resp.status == 200, proc.module
        assert acl.USERS[proc.module].name in system.service_env(proc.module)["REDIS_URL"]
    me = admin.client_id()
    users = {c["user"] for c in admin.client_list() if int(c["id"]) != me}
    assert users == {u.name for u in acl.USERS.values()}, users  # nobody as `default`


async def test_a_whole_run_of_the_system_needs_no_more_than_the_acl_grants(system, admin):
    admin.execute_command("ACL", "LOG", "RESET")
    async with aiohttp.ClientSession() as http:
        async def signed_up(kind: str, **over) -> Client:
            c = Client(http, system.url)
            name = unique(kind[0])
            body = rider_body(name, **over) if kind == "rider" else driver_body(name, **over)
            r = await c.post(f"/v1/{kind}s", body)
            assert r.status == 201, r
            await c.login(name, PASSWORD)
            return c

        async def online(d: Client, at: dict) -> None:
            assert (await d.call("PUT", "/v1/driver/location", at)).status == 204
            assert (await d.post("/v1/driver/status", {"status": "online"})).status == 200

        async def whole_trip() -> None:
            place = {"lat": 37.7749, "lon": -122.4194}
            d1, d2 = await signed_up("driver"), await signed_up("driver")
            await online(d1, near(place, 0.0003))
            r = await signed_up("rider")
            est = await r.post("/v1/estimates", {"pickup": place, "dropoff": near(place, 0.004)})
            assert est.status == 200
            trip = await request_trip(r, place, headers={"Idempotency-Key": unique("k")})
            sse = asyncio.create_task(read_sse(
                http, f"{system.url}/v1/trips/{trip['id']}/events", r.token, timeout=60))
            await next_offer(d1, trip["id"])
            assert (await d1.post(f"/v1/driver/offers/{trip['id']}/decline")).status == 204
            await online(d2, near(place, 0.0006))
            await next_offer(d2, trip["id"])
            assert (await d2.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
            assert (await r.get(f"/v1/trips/{trip['id']}")).status == 200
            assert (await d2.post(f"/v1/trips/{trip['id']}/cancel", {})).status == 200
            # d1 declined it and d2 cancelled it: nobody is left; the rider cancels,
            # and a second trip goes to the nearest driver, to the end.
            assert (await r.post(f"/v1/trips/{trip['id']}/cancel", {})).status == 200
            second = await request_trip(r, place)
            await next_offer(d1, second["id"])
            assert (await d1.post(f"/v1/driver/offers/{second['id']}/accept")).status == 200
            assert (await d1.get("/v1/driver/trip")).status == 200
            for action in ("arrive", "start", "complete"):
                step = await d1.post(f"/v1/trips/{second['id']}/{action}")
                assert step.status == 200, step
            rated = await r.post(f"/v1/trips/{second['id']}/rating", {"stars": 4})
            assert rated.status == 200, rated

            async def driver_rated():
                return (await d1.get("/v1/me")).body.get("rating") == 4

            await eventually(driver_rated, timeout=10, interval=0.1)
            assert (await r.get(f"/v1/trips/{second['id']}/timeline")).status == 200
            assert (await r.get("/v1/trips")).status == 200
            assert (await d1.get("/v1/trips")).status == 200
            nearby = await r.get("/v1/drivers/nearby", params=place)
            assert nearby.status == 200
            status, messages, ended = await asyncio.wait_for(sse, 30)
            assert status == 200 and ended and messages[-1]["event"] == "trip.cancelled"
            assert (await r.call("DELETE", "/v1/sessions/current")).status == 204

        async def lapsed_offer_then_expiry() -> None:
            place = {"lat": 37.80, "lon": -122.45}
            d = await signed_up("driver")
            await online(d, near(place, 0.0003))
            r = await signed_up("rider")
            trip = await request_trip(r, place)
            await next_offer(d, trip["id"])  # and let it lapse: the sweeper expires it

            async def expired():
                return (await r.get(f"/v1/trips/{trip['id']}")).body["status"] == "expired"

            await eventually(expired, timeout=20, interval=0.2)
            assert (await d.post("/v1/driver/status", {"status": "offline"})).status == 200

        async def operations() -> None:
            ops = Client(http, system.url)
            await ops.login("ops", "ops-password-for-tests")
            assert (await ops.get("/v1/ops/overview")).status == 200
            assert (await ops.get("/metrics")).status == 200
            bad = Client(http, system.url)
            r = await bad.post("/v1/sessions", {"user_name": "nobody", "password": "x" * 8})
            assert r.status == 401

        await asyncio.gather(whole_trip(), lapsed_offer_then_expiry(), operations())
    log = admin.execute_command("ACL", "LOG")
    assert log == [], f"denied by the ACL: {log}"


# --- the deployment files ------------------------------------------------------------
def test_compose_gives_each_service_its_own_user_and_redis_the_acl_file():
    from deploy import credentials

    services = compose()["services"]
    state = credentials.new_state()
    files = credentials.files_of(state, "redis://redis:6379/0",
                                 "postgresql://postgres:5432/ridehail")
    passwords = state["redis_passwords"]
    for service, user in acl.USERS.items():
        text = files[f"{service}.env"][0]
        url = re.search(r"^REDIS_URL='([^']+)'$", text, re.M).group(1)
        assert url == f"redis://{user.name}:{passwords[service]}@redis:6379/0"
        assert service_env(services[service])["CREDENTIALS_FILE"].endswith(f"/{service}.env")
    redis = services["redis"]
    assert "--aclfile" in redis["command"]
    mounted = redis["command"][redis["command"].index("--aclfile") + 1]
    assert mounted == f"{credentials.DEFAULT_DIR}/redis/users.acl"
    assert any(v.split(":")[1] == str(credentials.DEFAULT_DIR) for v in redis["volumes"])
    assert files["redis/users.acl"][0] == acl.acl_file_text(passwords,
                                                            state["redis_admin_password"])


def test_kubernetes_gives_each_service_its_own_users_secret(tmp_path):
    docs = k8s_documents()
    # The Secrets come from the generator alone (none in deploy/k8s).
    acl_export.write_k8s_files(tmp_path, "redis://redis-trial:6379/0")
    secrets = {d["metadata"]["name"]: d
               for d in yaml.safe_load_all((tmp_path / "secrets.yaml").read_text())}
    for service, name in acl_export.K8S_NAMES.items():
        (deployment,) = [d for _, d in docs if d["kind"] == "Deployment"
                         and d["metadata"]["name"] == name]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        ref = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == f"ridehail-redis-{name}"
        url = secrets[ref["name"]]["stringData"][ref["key"]]
        assert url.split("//", 1)[1].startswith(acl.USERS[service].name + ":")
    # And the ACL file of the trial Redis.
    assert "users.acl" in secrets["ridehail-redis-acl"]["stringData"]
    assert len(secrets["ridehail-internal"]["stringData"]["INTERNAL_TOKEN"]) >= 32
    (trial,) = [d for _, d in docs if d["kind"] == "StatefulSet"]
    volumes = trial["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == "ridehail-redis-acl" for v in volumes)
