# The two commands a newcomer needs are `make run` and `make test`; everything else is what they call.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')
GEN_STAMP := .gen/.stamp
PROFILE ?= smoke
export PYTHONPATH := $(CURDIR):$(CURDIR)/.gen

.PHONY: run test unit integration lint proto proto-lint venv lock bench loadtest k8s-validate servers-up servers-down clean browsers

venv: $(STAMP)

$(STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-input -r requirements.lock
	touch $(STAMP)

# Re-pin after changing requirements.in: installs the direct pins and freezes the full set.
lock:
	$(PYTHON) -m venv /tmp/dvc-lock-venv && /tmp/dvc-lock-venv/bin/pip install -q -r requirements.in \
	  && /tmp/dvc-lock-venv/bin/pip freeze | sort > requirements.lock

proto: $(GEN_STAMP)

$(GEN_STAMP): $(STAMP) $(PROTOS) scripts/gen_protos.py
	$(PY) scripts/gen_protos.py
	touch $(GEN_STAMP)

run: proto
	$(PY) -m servicekit.devrun

servers-up: $(STAMP)
	$(PY) scripts/devservers.py up --profile test

servers-down:
	-$(PY) scripts/devservers.py down --profile test

# Unit, integration and browser tests against real PostgreSQL and SeaweedFS, then lint, manifest checks and
# the smoke load test; every step runs even if an earlier one failed, and any failure fails the target.
test: proto browsers
	mkdir -p .data
	$(PY) scripts/devservers.py up --profile test > .data/test.env
	set -a; source .data/test.env; set +a; \
	  status=0; \
	  $(PY) -m pytest -q tests || status=$$?; \
	  $(MAKE) --no-print-directory lint || status=$$?; \
	  $(MAKE) --no-print-directory k8s-validate || status=$$?; \
	  $(PY) scripts/devservers.py down --profile test; \
	  $(MAKE) --no-print-directory loadtest PROFILE=smoke || status=$$?; \
	  exit $$status

unit: proto
	$(PY) -m pytest -q tests/unit

lint: proto
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) scripts/proto_check.py

k8s-validate: $(STAMP)
	$(PY) -m deploy.k8s.validate

bench: proto
	mkdir -p .data
	$(PY) scripts/devservers.py up --profile test > .data/test.env
	set -a; source .data/test.env; set +a; $(PY) -m bench

loadtest: proto
	$(PY) -m loadtests.run --profile $(PROFILE)

# Debian's Chromium for the browser tests; never a downloaded browser build.
browsers:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf .gen .data
