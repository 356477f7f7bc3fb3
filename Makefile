# The two commands: `make run` starts everything, `make test` runs the tests.
# Each bootstraps .venv and the install on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install clean load bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.run

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Headless locust against the local system (started here, DEMO_TRAFFIC=0) or LOAD_HOST;
# CSV and HTML reports in reports/. LOAD_USERS, LOAD_SPAWN_RATE, LOAD_TIME: docs/load-testing.md.
load: $(STAMP)
	$(PY) -m tests.load.run

clean:
	rm -rf $(VENV) .data reports .pytest_cache
