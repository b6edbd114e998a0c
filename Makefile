# ecrcache — the entry points. `make test` is what CI runs (.ci/run); it installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell pyenv which python3.13 2>/dev/null || command -v python3.13)
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
PIP_QUIET := --quiet --disable-pip-version-check
export SAM_CLI_TELEMETRY := 0
export PIP_NO_WARN_SCRIPT_LOCATION := 1

.PHONY: help setup test test-fast lint fmt local fire demo bench openapi schema build validate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The product (ecrcache + ecrcache_cli, ./pyproject.toml) and the development world (ecrcache-devstack,
# ./devstack/pyproject.toml) in one pip command: the `local` extra's ecrcache-devstack resolves to ./devstack.
$(VENV)/.stamp: pyproject.toml devstack/pyproject.toml requirements/dev.lock
	@test -n "$(PYTHON)" || { echo "python3.13 not found (pyenv install 3.13)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) --upgrade pip==25.3 2>&1 | grep -v '^WARNING: Location' || true
	$(VENV)/bin/pip install $(PIP_QUIET) -c requirements/dev.lock -e ./devstack -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -I -c "import ecrcache, ecrcache_cli, devstack, moto, aws_lambda_powertools"  # -I: not from the cwd
	touch $@

$(TOOLS)/.stamp: requirements/tools.txt requirements/tools.lock
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_QUIET) -c requirements/tools.lock -r requirements/tools.txt 2>&1 | grep -v '^WARNING: Location' || true
	$(TOOLS)/bin/sam --version
	touch $@

.debian.stamp:
	@if ! command -v docker-registry >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; \
	fi
	docker-registry --version
	touch $@

setup: $(VENV)/.stamp $(TOOLS)/.stamp .debian.stamp ## create .venv (project), .venv-tools (SAM CLI) and install docker-registry

# In parallel: one pytest-xdist worker a core (WORKERS=0 runs it in one process). Each file runs whole on one
# worker, and the e2e tests of the shared local stack on one worker (tests/conftest.py's scheduler), so a
# module's expensive fixtures (sam build, the fuzz run, the e2e stack) are built once; coverage is combined.
WORKERS ?= auto
test: setup ## the whole suite: unit, functional, contract (cfn-lint, sam validate --lint, sam build), e2e; coverage floor
	$(VENV)/bin/pytest -q -n $(WORKERS) --dist loadgroup --cov --cov-report=term --durations=20

local: $(VENV)/.stamp .debian.stamp ## run the whole controller here until Ctrl-C: API :3000/v1, AWS :4566, registry :5000 (ARGS="--api-port 3001 ...")
	$(VENV)/bin/ecrcache local $(ARGS)

fire: $(VENV)/.stamp ## deliver a schedule's event now on the running make local (ARGS="CredentialHealthFunction")
	$(VENV)/bin/ecrcache local fire $(ARGS)

demo: $(VENV)/.stamp .debian.stamp ## scripted tour on a background local stack; exits non-zero if any step fails
	$(PY) -m devstack.local.demo $(ARGS)

test-fast: setup ## unit tests only
	$(VENV)/bin/pytest -q -m unit

lint: setup ## ruff, ruff format --check, mypy --strict, import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: setup ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Each benchmark writes only its own section of docs/benchmarks.md (between its markers, bench/support.py);
# each exits non-zero when one of its checks or goals fails (the warming one after writing its section).
bench: setup ## run the benchmarks (reconcile and its fan-out, warming, cold start) and write their sections of docs/benchmarks.md
	$(PY) -m bench.reconcile_bench --out docs/benchmarks.md
	$(PY) -m bench.warm_bench --out docs/benchmarks.md
	$(PY) -m bench.cold_start --out docs/benchmarks.md

openapi: setup ## regenerate docs/openapi.json from the code
	$(PY) -m ecrcache_cli.openapi > docs/openapi.json

schema: setup ## regenerate docs/desired-state.schema.json from the model
	$(PY) -m ecrcache_cli.schema > docs/desired-state.schema.json

validate: setup ## cfn-lint and sam validate --lint on template.yaml
	$(TOOLS)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(TOOLS)/bin/sam validate --lint --template template.yaml

build: setup ## sam build (arm64, python3.13)
	PATH="$(dir $(PYTHON)):$$PATH" $(TOOLS)/bin/sam build --template template.yaml

clean: ## remove venvs and build output
	rm -rf $(VENV) $(TOOLS) .aws-sam .debian.stamp .mypy_cache .ruff_cache
