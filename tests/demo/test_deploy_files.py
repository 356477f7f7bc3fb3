"""The container and Kubernetes files, checked without a Docker engine or a cluster:
against their schemas, and against the code (modules, environment variables,
ports, probe paths)."""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from common.settings import DEFAULT_PORTS, Settings
from common.web import create_base_app
from deploy import acl
from deploy import credentials
from tests.demo.deployfiles import (
    COMPOSE,
    DOCKERFILE,
    ENTRYPOINT,
    ENTRYPOINT_VARIABLES,
    K8S,
    LOCUSTFILE,
    ROOT,
    SERVICES,
    compose,
    env_names_of_module,
    env_names_read,
    k8s_documents,
    module_of,
    service_command,
    service_env,
)

# Oldest and newest Kubernetes minor versions the manifests are checked against.
K8S_VERSIONS = ("1.29.0", "1.37.0")
SERVICE_NAMES = {"trip_service": "trip-service", "driver_service": "driver-service",
                 "gateway": "gateway"}
# Variables the deployment hands to a service that its code does not read yet.
# Remove a name here once the code reads it.
NOT_READ_YET: frozenset[str] = frozenset()


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
        command = service_command(service)
        if name in ("redis", "postgres"):
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
    assert module_of(services["city"]["command"]) == "deploy.sim"


def test_every_compose_environment_variable_is_read_by_the_code():
    assert all(f"${{{v}" in ENTRYPOINT.read_text() for v in ENTRYPOINT_VARIABLES)
    for name, service in compose()["services"].items():
        if name in ("redis", "postgres"):
            continue
        module = module_of(service_command(service))
        read = env_names_of_module(module) if module else env_names_read(LOCUSTFILE)
        unread = set(service_env(service)) - read - ENTRYPOINT_VARIABLES
        assert not unread, f"{name} sets {sorted(unread)}, which its code never reads"


def test_compose_holds_no_secret_each_service_reads_its_own_credentials_file():
    services = compose()["services"]
    text = COMPOSE.read_text()
    assert "PASSWORD:" not in text.replace("POSTGRES_PASSWORD", "")
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|INTERNAL_TOKEN|SECRET)", text), "a secret variable"
    init = services["init"]
    assert service_command(init)[:3] == ["python", "-m", "deploy.credentials"]
    (volume,) = init["volumes"]
    name, mount = volume.split(":")[:2]
    assert mount == str(credentials.DEFAULT_DIR)
    files = credentials.files_of(credentials.new_state(), "redis://redis:6379/0",
                                 "postgresql://postgres:5432/ridehail")
    for module in SERVICES:
        service = services[module]
        env = service_env(service)
        own = f"{module}.env"
        assert env["CREDENTIALS_FILE"] == f"{mount}/{own}"
        assert f"{name}:{mount}:ro" in service["volumes"]
        assert int(service["user"].split(":")[0]) == credentials.SERVICE_UIDS[module] == \
            files[own][1]
        # Its Redis user may only call the functions the admin loaded first.
        assert service["depends_on"]["redis-functions"]["condition"] == \
            "service_completed_successfully"
        # Every variable of its file is one its code reads.
        names = {line.split("=", 1)[0] for line in files[own][0].splitlines()}
        unread = names - env_names_of_module(module) - NOT_READ_YET
        assert not unread, f"{module}'s credentials {sorted(unread)} are never read"
        assert "REDIS_URL" in names and "INTERNAL_TOKEN" in names
    assert "OPS_PASSWORD" in files["gateway.env"][0]
    assert "OPS_PASSWORD" not in files["trip_service.env"][0] + files["driver_service.env"][0]
    assert "DATABASE_URL" in files["trip_service.env"][0]
    assert "DATABASE_URL" not in files["gateway.env"][0] + files["driver_service.env"][0]
    # The city and locust get nothing secret and no credentials volume.
    for other in ("city", "locust-master", "locust-worker"):
        assert not services[other].get("volumes"), other
    redis = services["redis"]
    acl_file = redis["command"][redis["command"].index("--aclfile") + 1]
    assert acl_file == f"{mount}/redis/users.acl" and f"{name}:{mount}:ro" in redis["volumes"]
    for dependant in ("redis", "postgres"):
        condition = services[dependant]["depends_on"]["init"]["condition"]
        assert condition == "service_completed_successfully"
    functions = services["redis-functions"]
    assert service_command(functions) == ["python", "-m", "common.scripts", "load"]
    assert service_env(functions)["CREDENTIALS_FILE"] == f"{mount}/admin.env"
    assert "REDIS_URL='redis://default:" in files["admin.env"][0]
    assert functions["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_puts_the_services_on_an_internal_network_only_the_gateway_joins():
    spec = compose()
    services, networks = spec["services"], spec["networks"]
    assert networks["internal"]["internal"] is True
    assert not networks["edge"] or not networks["edge"].get("internal")
    for name in ("redis", "postgres", "trip_service", "driver_service", "redis-functions"):
        assert services[name]["networks"] == ["internal"], name
        assert "ports" not in services[name], f"{name} is published"
    assert sorted(services["gateway"]["networks"]) == ["edge", "internal"]
    for name in ("city", "locust-master", "locust-worker"):
        assert services[name]["networks"] == ["edge"], name
    assert services["init"]["network_mode"] == "none"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes beyond loopback: {port}"


def test_ports_project_name_and_images_are_settable_without_editing_a_file():
    spec = compose()
    assert spec["name"] == "${COMPOSE_PROJECT_NAME:-ridehail}"
    services = spec["services"]
    assert services["gateway"]["ports"] == ["127.0.0.1:${GATEWAY_PORT:-8080}:8080"]
    assert services["locust-master"]["ports"] == ["127.0.0.1:${LOCUST_PORT:-8089}:8089"]
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for variable in ("GATEWAY_PORT", "LOCUST_PORT", "COMPOSE_PROJECT_NAME", "RIDEHAIL_IMAGE"):
        assert variable in docs, f"{variable} is not documented"


def test_compose_builds_one_image_once_and_locust_its_own():
    services = compose()["services"]
    built = {name: s for name, s in services.items() if "build" in s}
    assert set(built) == {"init", "locust-master"}
    assert built["init"]["build"]["target"] == "service"
    assert built["locust-master"]["build"]["target"] == "locust"
    image = built["init"]["image"]
    for name, service in services.items():
        if name in ("redis", "postgres") or name in built:
            continue
        expected = services["locust-master"]["image"] if "locust" in name else image
        assert service["image"] == expected and service["pull_policy"] == "never", name


def test_compose_redis_has_json_and_an_fsync_always_aof_on_a_volume():
    redis = compose()["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("8")
    command = " ".join(redis["command"])
    for flag in ("--appendonly yes", "--appendfsync always", "--no-appendfsync-on-rewrite no"):
        assert flag in command
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])


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
    assert services["trip_service"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["redis-functions"]["depends_on"]["redis"]["condition"] == "service_healthy"
    for module in SERVICES:
        condition = services[module]["depends_on"]["redis-functions"]["condition"]
        assert condition == "service_completed_successfully"
    gateway = services["gateway"]["depends_on"]
    for dep in ("trip_service", "driver_service"):
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


def test_dockerfile_builds_on_any_engine_from_the_lock_files_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    # No frontend to fetch, nothing the classic builder cannot parse.
    assert not re.search(r"^#\s*syntax=", text, re.M | re.I)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "<<" not in code and "--chmod" not in code and "--mount" not in code
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
    assert {f for f, _ in froms} <= {"${PYTHON_IMAGE}", "build", "base", "service"}
    assert {stage for _, stage in froms} >= {"build", "service", "locust"}
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, re.M), "the image must not run as root"
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    assert installs and all("--require-hashes" in i and "--no-deps" in i for i in installs)
    assert "requirements/runtime.txt" in text and "requirements/load.txt" in text
    assert "uninstall" in text and "pip setuptools" in text
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "**", "the context is an allow list"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY of a missing path: {path}"
            assert any(path == a or path.startswith(a + "/") for a in allowed), path
    for secret in (".env", "deploy/redis", "deploy/k8s", ".venv", ".data", ".git"):
        assert not any(secret == a or a.startswith(secret) for a in allowed), secret
    assert not (DOCKERFILE.parent / "Dockerfile.dockerignore").exists(), \
        "BuildKit would read it instead of .dockerignore, the classic builder would not"


def test_lock_files_pin_every_package_with_hashes_and_match_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, extras in (("runtime", []), ("load", ["load"]),
                         ("dev", ["embedded", "dev", "bench"])):
        text = (ROOT / "requirements" / f"{name}.txt").read_text()
        assert "make lock" in text.splitlines()[1], f"{name}.txt: not from make lock"
        pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert pins and all("--hash=sha256:" in e for e in entries if "==" in e)
        pinned = {p.lower().replace("_", "-") for p, _ in pins}
        wanted = list(project["dependencies"])
        for extra in extras:
            wanted += project["optional-dependencies"][extra]
        for requirement in wanted:
            package = re.match(r"[A-Za-z0-9._-]+", requirement).group().lower()
            assert package.replace("_", "-") in pinned, f"{package} is not in {name}.txt"
    runtime = (ROOT / "requirements" / "runtime.txt").read_text()
    for dev_only in ("pytest", "locust", "gevent", "playwright", "setuptools", "pip"):
        assert not re.search(rf"^{dev_only}==", runtime, re.M), dev_only
    # The ranges stay in pyproject.toml.
    assert all(">=" in d for d in project["dependencies"])


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


@functools.cache
def generated_secrets() -> dict[str, dict]:
    """What `python -m deploy.acl k8s` writes, with a PostgreSQL URL."""
    with tempfile.TemporaryDirectory() as out:
        acl.write_k8s_files(Path(out), "redis+cluster://memorydb:6379/0",
                            "postgresql://ridehail:pw@postgres:5432/ridehail")
        docs = yaml.safe_load_all((Path(out) / "secrets.yaml").read_text())
        return {d["metadata"]["name"]: d for d in docs}


def _secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"],
                        e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def test_every_secret_a_manifest_names_is_generated_and_valid():
    secrets = generated_secrets()
    for version in K8S_VERSIONS:
        for secret in secrets.values():
            kubernetes_validate.validate(secret, version, strict=True)
    for name, deployment in _by_kind("Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for variable, (secret, key) in _secret_refs(container).items():
                assert key in secrets[secret]["stringData"], (name, variable, secret)
    refs = {name: set(_secret_refs(d["spec"]["template"]["spec"]["containers"][0]))
            for name, d in _by_kind("Deployment").items()}
    assert refs["gateway"] == {"REDIS_URL", "INTERNAL_TOKEN", "OPS_USER_NAME", "OPS_PASSWORD"}
    assert refs["trip-service"] == {"REDIS_URL", "INTERNAL_TOKEN", "DATABASE_URL"}
    assert refs["driver-service"] == {"REDIS_URL", "INTERNAL_TOKEN"}
    assert refs["city"] == set()


def _selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _peers_allowed(rule: dict, labels_of: dict[str, dict]) -> set[str]:
    """The pods of the namespace a rule's from/to admits (all without one)."""
    peers = rule.get("from", rule.get("to"))
    if not peers:
        return set(labels_of)
    allowed = set()
    for peer in peers:
        if "podSelector" not in peer or "namespaceSelector" in peer:
            continue
        selector = peer["podSelector"]
        for name, labels in labels_of.items():
            match = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
            for expr in selector.get("matchExpressions", []):
                match = match and labels.get(expr["key"]) in expr["values"]
            if match:
                allowed.add(name)
    return allowed


def test_network_policies_allow_only_gateway_to_services_and_services_to_redis():
    policies = {d["metadata"]["name"]: d for _, d in k8s_documents()
                if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    pods = {name: d["spec"]["template"]["metadata"]["labels"]
            for name, d in _by_kind("Deployment").items()}
    pods["redis-trial"] = _by_kind("StatefulSet")["redis-trial"]["spec"]["template"]["metadata"][
        "labels"]
    pods["redis-functions"] = _by_kind("Job")["redis-functions"]["spec"]["template"]["metadata"][
        "labels"]

    def ingress_to(target: str, port: int) -> set[str]:
        allowed = set()
        for policy in policies.values():
            if not _selects(policy, pods[target]):
                continue
            for rule in policy["spec"].get("ingress", []):
                if any(p["port"] == port for p in rule.get("ports", [])):
                    allowed |= _peers_allowed(rule, pods)
        return allowed

    assert ingress_to("trip-service", 8081) == {"gateway"}
    assert ingress_to("driver-service", 8082) == {"gateway"}
    assert ingress_to("redis-trial", 6379) == {"gateway", "trip-service", "driver-service",
                                               "redis-functions"}
    assert ingress_to("gateway", 8080) >= {"city"}  # and the Ingress, from outside

    def egress_ports(source: str) -> set[int]:
        ports = set()
        for policy in policies.values():
            if _selects(policy, pods[source]):
                for rule in policy["spec"].get("egress", []):
                    ports |= {p["port"] for p in rule.get("ports", [])}
        return ports

    assert egress_ports("gateway") == {53, 8081, 8082, 6379}
    assert egress_ports("trip-service") == {53, 6379, 5432}
    assert egress_ports("driver-service") == {53, 6379}
    assert egress_ports("city") == {53, 8080}
    assert egress_ports("redis-functions") == {53, 6379}
    for name, labels in pods.items():  # every pod is under the default deny
        assert _selects(policies["default-deny"], labels), name


def test_the_functions_job_loads_them_as_the_admin():
    (job,) = [d for _, d in k8s_documents() if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "common.scripts", "load"]
    assert runnable("common.scripts")
    assert _secret_refs(container) == {"REDIS_URL": ("ridehail-redis-admin", "REDIS_URL")}
    url = generated_secrets()["ridehail-redis-admin"]["stringData"]["REDIS_URL"]
    assert urlsplit(url).username == "default"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # so the next apply runs it again


def test_manifests_have_every_part():
    deployments = _by_kind("Deployment")
    for name in ("trip-service", "driver-service", "gateway", "city"):
        assert name in deployments
    assert set(_by_kind("HorizontalPodAutoscaler")) == {"gateway", "driver-service"}
    assert "ridehail-config" in _by_kind("ConfigMap")
    # No Secret in the folder `kubectl apply -f` takes: a placeholder there
    # would overwrite the real ones; they come from `python -m deploy.acl k8s`.
    assert not _by_kind("Secret")
    secrets = generated_secrets()
    assert {"OPS_USER_NAME", "OPS_PASSWORD"} <= set(secrets["ridehail-secrets"]["stringData"])
    assert set(secrets["ridehail-internal"]["stringData"]) == {"INTERNAL_TOKEN"}
    assert set(secrets["ridehail-postgres"]["stringData"]) == {"DATABASE_URL"}
    for name in ("trip-service", "driver-service", "gateway"):  # a Redis user each
        assert "REDIS_URL" in secrets[f"ridehail-redis-{name}"]["stringData"]
    external = _by_kind("Service")["memorydb"]
    assert external["spec"]["type"] == "ExternalName"
    assert "memorydb" in external["spec"]["externalName"]
    assert _by_kind("Service")["postgres"]["spec"]["type"] == "ExternalName"
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
    gateway_env = {e["name"]: e.get("value") for e in
                   deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    for var, name in (("TRIP_SERVICE_URL", "trip-service"),
                      ("DRIVER_SERVICE_URL", "driver-service")):
        url = urlsplit(gateway_env[var])
        assert url.hostname == name and url.port == services[name]["spec"]["ports"][0]["port"]
    city = deployments["city"]["spec"]["template"]["spec"]["containers"][0]["command"]
    gateway = urlsplit(city[city.index("--gateway") + 1])
    assert gateway.hostname == "gateway" and gateway.port == DEFAULT_PORTS["gateway"]


def test_every_manifest_environment_variable_is_read_by_the_code():
    deployments = _by_kind("Deployment")
    config = set(_by_kind("ConfigMap")["ridehail-config"]["data"])
    secret = set(generated_secrets()["ridehail-secrets"]["stringData"])
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
            unread = names - read - NOT_READ_YET
            assert not unread, f"{name} sets {sorted(unread)}, which its code never reads"


def test_hpa_targets_exist():
    deployments = _by_kind("Deployment")
    for name, hpa in _by_kind("HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
