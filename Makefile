# The two commands: `make run` starts everything, `make test` runs the tests.
# Each bootstraps .venv and the install on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install lock clean load bench

# Installs exactly the locked versions (requirements/dev.txt, with hashes: pip
# refuses anything else), then the project itself without dependencies.
$(STAMP): pyproject.toml requirements/dev.txt
	@echo "make: installing the locked dependencies into $(VENV) (a minute or two, once) ..."
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	@$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# The lock files, resolved from pyproject.toml's ranges against PyPI for every
# platform on Python 3.11+: requirements/runtime.txt (the image),
# requirements/load.txt (the locust image), requirements/dev.txt (make install).
# After adding or changing a dependency in pyproject.toml: `make lock`.
UV_COMPILE := $(PY) -m uv pip compile --quiet --no-config --universal --python-version 3.11 \
	--generate-hashes --index-url https://pypi.org/simple --custom-compile-command "make lock"
lock: $(STAMP)
	$(UV_COMPILE) pyproject.toml -o requirements/runtime.txt
	$(UV_COMPILE) pyproject.toml --extra load -o requirements/load.txt
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra embedded --extra dev --extra bench \
		-o requirements/dev.txt

run: $(STAMP)
	@$(PY) -m deploy.run

test: $(STAMP)
	@sh tests/install-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Headless locust against the local system (started here, DEMO_TRAFFIC=0) or LOAD_HOST;
# CSV and HTML reports in reports/. LOAD_USERS, LOAD_SPAWN_RATE, LOAD_TIME: docs/load-testing.md.
load: $(STAMP)
	@$(PY) -m tests.load.run

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
	$(PY) -m bench.workers

clean:
	rm -rf $(VENV) .data reports .pytest_cache
