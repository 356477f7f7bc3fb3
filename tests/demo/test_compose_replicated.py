"""docker-compose.replicated.yml, checked without a Docker engine: valid
Compose, nine cluster nodes with the settings of the embedded replicated
topology, a one-shot service forming the cluster with a real module, and the
services on `redis+cluster://` with WAIT_REPLICAS=1 after it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

from common.embedded import NODE_TIMEOUT_MS
from deploy.cluster_init import parse_nodes
from tests.harness import ROOT

OVERRIDE = ROOT / "docker-compose.replicated.yml"
SERVICES = ("trip_service", "driver_service", "gateway")


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
    nodes = ["redis", *(f"redis-{i}" for i in range(2, 10))]
    for name in nodes:
        args = args_of(services[name]["command"])
        assert args["--cluster-enabled"] == "yes", name
        assert args["--cluster-node-timeout"] == str(NODE_TIMEOUT_MS), name
        assert args["--appendonly"] == "yes" and args["--appendfsync"] == "always", name
        assert args["--cluster-require-full-coverage"] == "no", name
        assert args["--masteruser"] == "default", name
    volumes = [services[n]["volumes"][0].split(":")[0] for n in nodes[1:]]
    assert len(set(volumes)) == 8 and set(volumes) <= set(override()["volumes"])

    init = services["redis-cluster-init"]
    command = init["command"]
    module = command[command.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, module
    listed = [host for host, _ in parse_nodes(args_of(command)["--nodes"])]
    assert listed == nodes  # the primaries first, in the order of their shards
    assert args_of(command)["--masters"] == "3"
    assert init["restart"] == "no"
    assert all(init["depends_on"][n]["condition"] == "service_healthy" for n in nodes)


def test_the_services_run_on_the_cluster_after_it_is_formed():
    services = override()["services"]
    for name in SERVICES:
        service = services[name]
        url = urlsplit(service["environment"]["REDIS_URL"])
        assert url.scheme == "redis+cluster" and url.hostname == "redis", name
        assert service["environment"]["WAIT_REPLICAS"] == "1", name
        condition = service["depends_on"]["redis-cluster-init"]["condition"]
        assert condition == "service_completed_successfully", name
