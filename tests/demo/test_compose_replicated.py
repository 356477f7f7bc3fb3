"""docker-compose.replicated.yml, checked without a Docker engine: valid
Compose, nine cluster nodes with the settings of the embedded replicated
topology and the credentials of docker-compose.yml's `init`, a one-shot
service forming the cluster with a real module, the functions loaded on the
cluster after it, and the services on `redis+cluster://` with WAIT_REPLICAS=1."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

from common.embedded_cluster import NODE_TIMEOUT_MS
from deploy import credentials
from deploy.cluster_init import admin_password, parse_nodes
from tests.demo.deployfiles import compose, env_names_of_module, module_of
from tests.harness import ROOT

OVERRIDE = ROOT / "docker-compose.replicated.yml"
SERVICES = ("trip_service", "driver_service", "gateway")
NODES = ["redis", *(f"redis-{i}" for i in range(2, 10))]
CREDENTIALS_MOUNT = f"credentials:{credentials.DEFAULT_DIR}:ro"


def override() -> dict:
    return yaml.safe_load(OVERRIDE.read_text())


def args_of(command: list[str]) -> dict[str, str]:
    return {command[i]: command[i + 1] for i in range(len(command) - 1)
            if command[i].startswith("--")}


def test_the_override_is_valid_against_the_compose_specification():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(OVERRIDE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nine_nodes_of_a_cluster_with_fsync_always_on_their_own_volumes():
    services = override()["services"]
    base = compose()["services"]["redis"]
    for name in NODES:
        args = args_of(services[name]["command"])
        assert args["--cluster-enabled"] == "yes", name
        assert args["--cluster-node-timeout"] == str(NODE_TIMEOUT_MS), name
        assert args["--appendonly"] == "yes" and args["--appendfsync"] == "always", name
        assert args["--cluster-require-full-coverage"] == "no", name
        assert args["--maxmemory-policy"] == "noeviction", name
        assert args["--maxmemory"] == args_of(base["command"])["--maxmemory"], name
        # The users of docker-compose.yml's ACL file, on every node.
        assert args["--aclfile"] == args_of(base["command"])["--aclfile"], name
        assert args["--masteruser"] == "default", name
        # A replica's password for its primary: the admin's, from the
        # credentials volume, never in the file.
        assert "--masterauth" not in args, name
        entrypoint = services[name]["entrypoint"]
        assert entrypoint[:2] == ["sh", "-c"], name
        assert 'auth="$$(cat /run/ridehail/redis/admin-password)"' in entrypoint[2]
        assert entrypoint[2].count('"$$@" --masterauth "$$auth"') == 2
    for name in NODES[1:]:
        node = services[name]
        assert CREDENTIALS_MOUNT in node["volumes"], name
        assert node["networks"] == ["internal"], name
        assert node["depends_on"]["init"]["condition"] == "service_completed_successfully"
    volumes = [services[n]["volumes"][0].split(":")[0] for n in NODES[1:]]
    assert len(set(volumes)) == 8 and set(volumes) <= set(override()["volumes"])

    init = services["redis-cluster-init"]
    command = init["command"]
    module = command[command.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, module
    listed = [host for host, _ in parse_nodes(args_of(command)["--nodes"])]
    assert listed == NODES  # the primaries first, in the order of their shards
    assert args_of(command)["--masters"] == "3"
    assert init["restart"] == "no"
    assert all(init["depends_on"][n]["condition"] == "service_healthy" for n in NODES)
    # As the admin, from its credentials file: the image's module is in the
    # image (deploy/Dockerfile copies it).
    assert init["environment"] == {"CREDENTIALS_FILE": "/run/ridehail/admin.env"}
    assert CREDENTIALS_MOUNT in init["volumes"] and init["networks"] == ["internal"]
    assert f"deploy/{module.split('.')[-1]}.py" in (ROOT / "deploy/Dockerfile").read_text()


def test_no_secret_and_no_step_by_hand():
    text = OVERRIDE.read_text()
    assert "deploy.acl" not in text and "common.acl" not in text and "OPS_PASSWORD" not in text
    assert "PASSWORD" not in text.replace("admin-password", "")
    assert "REDIS_URL:" not in text.replace("CREDENTIALS_REDIS_URL:", "")


def test_the_cluster_init_reads_the_admins_password_from_its_url():
    assert admin_password({"REDIS_URL": "redis+cluster://default:s3cr%2Bt@redis:6379/0"}) \
        == "s3cr+t"
    assert admin_password({"REDIS_ADMIN_PASSWORD": "a", "REDIS_URL": "redis://b:c@x"}) == "a"
    assert admin_password({}) is None


def test_the_credentials_are_cluster_urls_and_the_functions_load_on_the_cluster():
    services = override()["services"]
    url = services["init"]["environment"]["CREDENTIALS_REDIS_URL"]
    assert urlsplit(url).scheme == "redis+cluster" and urlsplit(url).hostname == "redis"
    files = credentials.files_of(credentials.new_state(), url,
                                 "postgresql://postgres:5432/ridehail")
    for own in ("admin.env", *(f"{m}.env" for m in SERVICES)):
        env = {k: v.strip("'") for k, v in
               (line.split("=", 1) for line in files[own][0].splitlines())}
        assert urlsplit(env["REDIS_URL"]).scheme == "redis+cluster", own
        assert urlsplit(env["REDIS_URL"]).hostname == "redis", own
    # FUNCTION LOAD reaches every primary: common.scripts load on the
    # cluster URL of admin.env, once the cluster is formed.
    functions = compose()["services"]["redis-functions"]
    assert module_of(functions["command"]) == "common.scripts"
    assert functions["environment"]["CREDENTIALS_FILE"] == "/run/ridehail/admin.env"
    assert services["redis-functions"]["depends_on"]["redis-cluster-init"]["condition"] == \
        "service_completed_successfully"


def test_the_services_run_on_the_cluster_after_it_is_formed():
    services = override()["services"]
    for name in SERVICES:
        service = services[name]
        assert service["environment"] == {"WAIT_REPLICAS": "1"}, name
        assert "WAIT_REPLICAS" in env_names_of_module(name), name
        condition = service["depends_on"]["redis-cluster-init"]["condition"]
        assert condition == "service_completed_successfully", name
