"""The container and Kubernetes files, checked without a Docker engine or a cluster:
against their schemas, and against the code (modules, environment variables,
ports, probe paths)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from common.settings import DEFAULT_PORTS, Settings
from common.web import create_base_app
from tests.demo.deployfiles import (
    COMPOSE,
    DOCKERFILE,
    K8S,
    LOCUSTFILE,
    ROOT,
    SERVICES,
    compose,
    env_names_of_module,
    env_names_read,
    k8s_documents,
    module_of,
    service_env,
)

# Oldest and newest Kubernetes minor versions the manifests are checked against.
K8S_VERSIONS = ("1.29.0", "1.37.0")
SERVICE_NAMES = {"trip_service": "trip-service", "driver_service": "driver-service",
                 "gateway": "gateway"}


def runnable(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations:  # a package: needs __main__
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return True


def probe_paths_of_code() -> set[str]:
    app = create_base_app(Settings())
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


# ---------------------------------------------------------------- compose


def test_compose_file_is_valid_against_the_compose_specification():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_compose_command_is_a_real_module_or_the_locustfile():
    services = compose()["services"]
    for name, service in services.items():
        command = service.get("command")
        if name == "redis":
            continue
        assert isinstance(command, list), f"{name}: command must be a list"
        module = module_of(command)
        if module:
            assert runnable(module), f"{name}: python -m {module} is not runnable"
        else:
            assert command[0] == "locust", f"{name}: unexpected command {command}"
            assert (ROOT / command[command.index("-f") + 1]) == LOCUSTFILE


def test_compose_runs_each_service_with_the_module_of_its_name():
    services = compose()["services"]
    for module in SERVICES:
        assert module_of(services[module]["command"]) == module
    assert module_of(services["city"]["command"]) == "deploy.city"


def test_every_compose_environment_variable_is_read_by_the_code():
    for name, service in compose()["services"].items():
        if name == "redis":
            continue
        module = module_of(service["command"])
        read = env_names_of_module(module) if module else env_names_read(LOCUSTFILE)
        unread = set(service_env(service)) - read
        assert not unread, f"{name} sets {sorted(unread)}, which its code never reads"


def test_compose_redis_has_json_and_an_fsync_always_aof_on_a_volume():
    redis = compose()["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("8")
    command = " ".join(redis["command"])
    for flag in ("--appendonly yes", "--appendfsync always", "--no-appendfsync-on-rewrite no"):
        assert flag in command
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_compose_ports_urls_and_health_checks_agree_with_the_code():
    services = compose()["services"]
    paths = probe_paths_of_code()
    ports = {}
    for module in SERVICES:
        service = services[module]
        env = service_env(service)
        port = int(env["PORT"])
        assert port == DEFAULT_PORTS[module], module
        ports[module] = port
        check = " ".join(service["healthcheck"]["test"])
        m = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
        assert m, f"{module}: health check does not call an HTTP probe: {check}"
        assert int(m.group(1)) == port and m.group(2) in paths and m.group(2) == "/readyz"
        assert service["restart"] in ("unless-stopped", "always", "on-failure")
    gateway_env = service_env(services["gateway"])
    for var, module in (("TRIP_SERVICE_URL", "trip_service"),
                        ("DRIVER_SERVICE_URL", "driver_service")):
        url = urlsplit(gateway_env[var])
        assert url.hostname == module and url.port == ports[module], var
    published = services["gateway"]["ports"][0]
    assert published.rsplit(":", 1)[1] == "8080"
    city = services["city"]["command"]
    assert city[city.index("--gateway") + 1] == "http://gateway:8080"


def test_compose_start_order_waits_for_health():
    services = compose()["services"]
    for module in ("trip_service", "driver_service"):
        assert services[module]["depends_on"]["redis"]["condition"] == "service_healthy"
    gateway = services["gateway"]["depends_on"]
    for dep in ("redis", "trip_service", "driver_service"):
        assert gateway[dep]["condition"] == "service_healthy"
    assert services["city"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_compose_load_profile_has_a_locust_master_and_workers():
    services = compose()["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert master["profiles"] == ["load"] and worker["profiles"] == ["load"]
    assert "--master" in master["command"] and "--worker" in worker["command"]
    assert worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    assert master["command"][master["command"].index("--host") + 1] == "http://gateway:8080"


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_one_non_root_image_of_the_installed_project():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f in ("${PYTHON_IMAGE}", "python:3.11-slim") for f in froms)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, re.M), "the image must not run as root"
    assert re.search(r"pip install .*\.\s*\\?$", text, re.M), "the project is pip-installed"
    for folder in re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+\./", text, re.M):
        assert (ROOT / folder).exists(), f"COPY of a missing path: {folder}"
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    for package in ("common", "trip_service", "driver_service", "gateway", "deploy", "tests/load"):
        assert f"!{package}/" in ignore, f"{package} is excluded from the build context"


# ---------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_are_valid_kubernetes_objects(version):
    docs = k8s_documents()
    assert len(docs) >= 10
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']}: {exc}")


def _by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in k8s_documents() if d["kind"] == kind}


def test_manifests_have_every_part():
    deployments = _by_kind("Deployment")
    for name in ("trip-service", "driver-service", "gateway", "city"):
        assert name in deployments
    assert set(_by_kind("HorizontalPodAutoscaler")) == {"gateway", "driver-service"}
    assert "ridehail-config" in _by_kind("ConfigMap")
    secrets = _by_kind("Secret")
    assert {"OPS_USER_NAME", "OPS_PASSWORD"} <= set(secrets["ridehail-secrets"]["stringData"])
    for name in ("trip-service", "driver-service", "gateway"):  # a Redis user each
        assert "REDIS_URL" in secrets[f"ridehail-redis-{name}"]["stringData"]
    external = _by_kind("Service")["memorydb"]
    assert external["spec"]["type"] == "ExternalName"
    assert "memorydb" in external["spec"]["externalName"]
    trial = [p for p, d in k8s_documents(K8S / "trial") if d["kind"] == "StatefulSet"]
    assert trial, "the trial Redis StatefulSet lives in its own folder"
    # Applying deploy/k8s/ (not recursive) must not start the trial Redis.
    assert not [p for p, d in k8s_documents(K8S) if d["kind"] == "StatefulSet"
                and p.parent == K8S]


def test_manifest_commands_ports_and_probes_agree_with_the_code():
    deployments = _by_kind("Deployment")
    services = _by_kind("Service")
    paths = probe_paths_of_code()
    for module, name in SERVICE_NAMES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert module_of(container["command"]) == module and runnable(module)
        (port,) = container["ports"]
        assert port["containerPort"] == DEFAULT_PORTS[module]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["PORT"]["value"] == str(DEFAULT_PORTS[module])
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] in paths
            assert http["port"] in (port["name"], port["containerPort"])
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        service = services[name]
        (sport,) = service["spec"]["ports"]
        assert sport["port"] == DEFAULT_PORTS[module]
        assert sport["targetPort"] in (port["name"], port["containerPort"])
        assert service["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
    config = _by_kind("ConfigMap")["ridehail-config"]["data"]
    for var, name in (("TRIP_SERVICE_URL", "trip-service"),
                      ("DRIVER_SERVICE_URL", "driver-service")):
        url = urlsplit(config[var])
        assert url.hostname == name and url.port == services[name]["spec"]["ports"][0]["port"]
    city = deployments["city"]["spec"]["template"]["spec"]["containers"][0]["command"]
    gateway = urlsplit(city[city.index("--gateway") + 1])
    assert gateway.hostname == "gateway" and gateway.port == DEFAULT_PORTS["gateway"]


def test_every_manifest_environment_variable_is_read_by_the_code():
    deployments = _by_kind("Deployment")
    config = set(_by_kind("ConfigMap")["ridehail-config"]["data"])
    secret = set(_by_kind("Secret")["ridehail-secrets"]["stringData"])
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            module = module_of(container["command"])
            read = env_names_of_module(module)
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    names |= config
                if "secretRef" in source:
                    names |= secret
            unread = names - read
            assert not unread, f"{name} sets {sorted(unread)}, which its code never reads"


def test_hpa_targets_exist():
    deployments = _by_kind("Deployment")
    for name, hpa in _by_kind("HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
