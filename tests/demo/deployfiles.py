"""Reading the deployment files the way Compose and Kubernetes would, and
finding which environment variables the code reads."""

from __future__ import annotations

import ast
import os
import re
from functools import cache
from pathlib import Path

import yaml

from tests.harness import ROOT

COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"

# Functions through which the code reads one environment variable by name.
READERS = {"env_int", "env_float", "env_str", "_int", "_float", "_str", "_bool", "e", "get", "getenv"}
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_documents(folder: Path = K8S) -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(folder.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        current = env.get(name)
        if op in (":-", "-"):
            if current is None or (op == ":-" and current == ""):
                return arg
            return current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise KeyError(f"{name}: {arg}")
            return current
        return current or ""

    return _VAR.sub(sub, str(value))


def service_env(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(v, env or {}) for k, v in raw.items()}


def module_of(command: list[str]) -> str | None:
    """`python -m <module> ...` -> module."""
    if len(command) >= 3 and command[0] in ("python", "python3") and command[1] == "-m":
        return command[2]
    return None


ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
# What the image's entrypoint reads before it runs the command.
ENTRYPOINT_VARIABLES = frozenset({"CREDENTIALS_FILE"})


def service_command(service: dict) -> list[str]:
    """The command a compose service runs, past the image's entrypoint (an
    `entrypoint:` of `ridehail-entrypoint python -m X` plus the command)."""
    entrypoint = service.get("entrypoint") or []
    if entrypoint and entrypoint[0] == "ridehail-entrypoint":
        return [*entrypoint[1:], *service.get("command", [])]
    return service.get("command") or []


@cache
def env_names_read(path: Path) -> frozenset[str]:
    """Names of environment variables a source file reads (by constant name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname not in READERS:
                continue
            # env_int(env, "NAME", default) / env.get("NAME", default) / e("NAME", default)
            position = 1 if fname.startswith(("_", "env_")) else 0
            if len(node.args) > position:
                arg = node.args[position]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if ENV_NAME.match(arg.value):
                        names.add(arg.value)
        elif isinstance(node, ast.Subscript):
            # os.environ["NAME"]
            target = node.value
            if isinstance(target, ast.Attribute) and target.attr == "environ":
                key = node.slice
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    names.add(key.value)
    return frozenset(names)


SERVICES = ("trip_service", "driver_service", "gateway")


def settings_type(service: str) -> type:
    """The settings a service reads from the environment (`from_env`)."""
    from driver_service.settings import DriverSettings
    from gateway.config import GatewaySettings
    from trip_service.settings import TripSettings

    return {"gateway": GatewaySettings, "trip_service": TripSettings,
            "driver_service": DriverSettings}[service]


def env_names_of_module(module: str) -> frozenset[str]:
    """What `python -m <module>` reads: a service, its settings and whatever
    else its package reads; any other package, its files; any other module,
    its file."""
    from common.settings import env_fields

    folder = ROOT / module.replace(".", os.sep)
    names: set[str] = set()
    if module in SERVICES:
        files = sorted(folder.rglob("*.py"))
        names |= set(env_fields(settings_type(module)))
    elif folder.is_dir():
        files = sorted(folder.rglob("*.py"))
    else:
        files = [folder.with_suffix(".py")]
    for f in files:
        names |= env_names_read(f)
    return frozenset(names)
