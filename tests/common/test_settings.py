"""Each service's settings: read from the environment by one table, a bad
value named, secrets never shown, and the README's table in step with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields

import pytest

from common.settings import SettingsError, env_fields
from driver_service.settings import DriverSettings
from gateway.config import GatewaySettings
from tests.harness import ROOT
from trip_service.settings import TripSettings

SERVICES = {"gateway": GatewaySettings, "trip_service": TripSettings,
            "driver_service": DriverSettings}


@pytest.mark.parametrize("settings_type", SERVICES.values(), ids=SERVICES.keys())
def test_an_empty_environment_gives_the_declared_defaults(settings_type):
    read = settings_type.from_env(env={name: "" for name in env_fields(settings_type)})
    declared = settings_type()
    for f in fields(settings_type):
        if f.name != "consumer_name":  # made up per process
            assert getattr(read, f.name) == getattr(declared, f.name), f.name


@pytest.mark.parametrize("settings_type", SERVICES.values(), ids=SERVICES.keys())
def test_each_default_has_its_declared_type(settings_type):
    """The default's type is the parser (`2.5` for a float setting whose default
    was written `2` would be refused)."""
    for f in env_fields(settings_type).values():
        if f.metadata["parse"] is None:
            assert type(f.default).__name__ == f.type, (f.name, f.type, f.default)


def test_each_variable_is_read_into_its_field():
    read = TripSettings.from_env(env={
        "PORT": "9001", "OFFER_TIMEOUT_S": "7.5", "LOG_LEVEL": "debug",
        "REGIONS": '[{"name": "nyc", "min_lat": 40.7, "min_lon": -74.02,'
                   ' "max_lat": 40.8, "max_lon": -73.93}]',
        "DATABASE_URL": "postgresql://trips@db/trips", "CONSUMER_NAME": "trips-1",
    })
    assert (read.port, read.offer_timeout_s, read.log_level) == (9001, 7.5, "DEBUG")
    assert [r.name for r in read.regions] == ["nyc"]
    assert (read.database_url, read.consumer_name) == ("postgresql://trips@db/trips", "trips-1")
    gateway = GatewaySettings.from_env(env={
        "TRIP_SERVICE_URL": "http://trips:8081/", "TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16,",
        "GATEWAY_REDIS_TIMEOUT_S": "0.5",
    })
    assert gateway.trip_service_url == "http://trips:8081"
    assert gateway.trusted_proxies == ("10.0.0.1", "10.1.0.0/16")
    assert gateway.redis_timeout_s == 0.5


def test_each_service_has_its_own_port_and_only_its_own_settings():
    assert [t().port for t in SERVICES.values()] == [8080, 8081, 8082]
    assert "DATABASE_URL" not in env_fields(GatewaySettings)
    assert "OPS_PASSWORD" not in env_fields(TripSettings) | env_fields(DriverSettings)
    assert "CONSUMER_NAME" not in env_fields(GatewaySettings)


@pytest.mark.parametrize("name, value", [
    ("ARCHIVE_BATCH", "1.5"), ("HOT_RETENTION_S", "a day"), ("DURABILITY", "never"),
    ("REGIONS", "[]"), ("REGIONS", '[{"name": "sf"}]'),
])
def test_a_bad_value_is_refused_naming_its_variable(name, value):
    with pytest.raises(SettingsError, match=f"^{name}"):
        TripSettings.from_env(env={name: value})


def test_secrets_are_not_shown():
    secret = "s3cret-value-for-the-test"
    settings = GatewaySettings(ops_password=secret, internal_token=secret,
                               redis_url=f"redis://gateway:{secret}@redis:6379/0")
    assert secret not in repr(settings) and secret not in str(settings)
    trips = TripSettings(database_url=f"postgresql://trips:{secret}@db/trips")
    assert secret not in repr(trips)


def test_a_service_with_a_bad_value_stops_and_names_it():
    done = subprocess.run(
        [sys.executable, "-m", "driver_service"], cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "SWEEP_INTERVAL_S": "often"}, timeout=60,
    )
    assert done.returncode == 2
    assert "SWEEP_INTERVAL_S='often' is not valid" in done.stderr
    assert "Traceback" not in done.stderr


def _readme_table() -> dict[str, str]:
    """README "Settings": variable -> its "used by" cell."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[2]
    return rows


USED_BY = {
    "all": SERVICES.values(), "each": SERVICES.values(), "all services": SERVICES.values(),
    "gateway": [GatewaySettings], "trip_service": [TripSettings],
    "driver_service": [DriverSettings], "trip/driver_service": [TripSettings, DriverSettings],
    "consumers": [TripSettings, DriverSettings],
}


def test_the_readme_says_which_service_reads_each_setting():
    table = _readme_table()
    for name, used_by in table.items():
        for settings_type in USED_BY.get(used_by, ()):
            assert name in env_fields(settings_type), (name, used_by, settings_type.__name__)
    # Every setting is documented: in the README's table, or (the gateway's
    # tuning knobs) in docs/api.md's "Settings of the gateway".
    api = (ROOT / "docs" / "api.md").read_text().split("## Settings of the gateway", 1)[1]
    for settings_type in SERVICES.values():
        for name in env_fields(settings_type):
            assert name in table or f"`{name}`" in api, f"{name} is not documented"
