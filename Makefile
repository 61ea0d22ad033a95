# dancu-gateway: the two commands a new clone needs are `make run` and `make test`.
SHELL := /bin/bash
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements/main.lock requirements/dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) 2>/dev/null | sha1sum | cut -c1-12)
PIP_COMPILE := $(BIN)/python -m piptools compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links
MOCK_PORT ?= 8100
COUNT ?= 20000

.PHONY: install lock run port-free serve-mock test lint typecheck imports unit openapi bench bench-mock bench-console clean

# Installs exactly the hashed versions of requirements/dev.lock (every dependency, dev tools included), then the
# project itself without dependencies. `make lock` rewrites the locks after a dependency changes in pyproject.toml.
$(STAMP): pyproject.toml $(LOCKS)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --requirement requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## lock: pin every dependency with its hashes (requirements/main.lock for the image, dev.lock for development
## and CI); run it after changing the dependencies in pyproject.toml, and commit both files
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4,<8"
	$(PIP_COMPILE) --output-file requirements/main.lock pyproject.toml
	$(PIP_COMPILE) --extra dev --output-file requirements/dev.lock pyproject.toml

## run: install, migrate, seed the mock national database, create a demo client and two demo operators, print
## how to call it and how to sign in to the console, serve
## (on another port: make run PORT=8001; a busy port stops it before anything else happens). It is a sandbox:
## portals rehearse upstream faults with X-Sandbox-Fault (docs/integration.md section 10); make run SANDBOX=false
## to serve without it
PORT ?= 8000
SANDBOX ?= true
DEMO_PURPOSE := DEMO-1.000001
DEMO_STATS_PURPOSE := DEMO-TK.000001
PERSONA := 052068000108
run: port-free install
	@mkdir -p -m 700 var
	$(BIN)/dancu db upgrade
	$(BIN)/mock-csdlqg seed --count $(COUNT)
	@test -s var/demo_client.json || { umask 077; \
	  $(BIN)/dancu purposes add --code $(DEMO_PURPOSE) --title "Thủ tục minh họa (demo)" \
	    --legal-basis "Luật Căn cước 2023, Điều 10" 2>/dev/null || true; \
	  $(BIN)/dancu purposes add --code $(DEMO_STATS_PURPOSE) --title "Thống kê dân số phục vụ quản lý (demo)" \
	    --legal-basis "Luật Thống kê 2015, Điều 3" 2>/dev/null || true; \
	  $(BIN)/dancu clients create --name "Cổng dịch vụ công minh họa (demo)" \
	    --scopes citizen.verify,citizen.read,household.read,stats.read --fields '*' --provinces 52 \
	    --purposes $(DEMO_PURPOSE),$(DEMO_STATS_PURPOSE) --verify-details --json > var/demo_client.json.tmp \
	  && mv var/demo_client.json.tmp var/demo_client.json; }
	@test -s var/demo_operators.json || { umask 077; { \
	  $(BIN)/dancu operators create --username quantri --display-name "Quản trị viên minh họa (demo)" \
	    --roles admin,approver --json && \
	  $(BIN)/dancu operators create --username kiemtoan --display-name "Kiểm toán viên minh họa (demo)" \
	    --roles auditor,analyst --json; } > var/demo_operators.json.tmp \
	  && mv var/demo_operators.json.tmp var/demo_operators.json; }
	@$(BIN)/python scripts/demo_hint.py --port $(PORT) --purpose $(DEMO_PURPOSE) --persona $(PERSONA) --count $(COUNT) \
	  --stats-purpose $(DEMO_STATS_PURPOSE) --sandbox $(SANDBOX)
	DANCU_SANDBOX=$(SANDBOX) $(BIN)/dancu serve --port $(PORT)

port-free:
	@$(PYTHON) $(ROOT)scripts/port_free.py --port $(PORT)

## serve-mock: the mock national database as its own HTTP service (for DANCU_BACKEND=http)
serve-mock: install
	@mkdir -p -m 700 var
	@test -s var/mock_api_key || { umask 077; $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))' > var/mock_api_key; }
	@echo "mock_csdlqg on http://127.0.0.1:$(MOCK_PORT); X-Api-Key: $$(cat var/mock_api_key)"
	MOCK_CSDLQG_API_KEY="$$(cat var/mock_api_key)" $(BIN)/mock-csdlqg serve --port $(MOCK_PORT)

## test: the gates (lint, format, types, import boundaries) and the whole suite
test: install lint typecheck imports unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest

## openapi: regenerate the published contracts in openapi/
openapi: install
	$(BIN)/dancu openapi export
	$(BIN)/mock-csdlqg openapi export

## bench: the gateway's hot paths beside bare FastAPI (wrk, 64 connections); writes docs/performance.md
## (a full run only; BENCH_ARGS="--only bare,verify --count 20000 --duration 3" for a quick partial one)
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/harness.py $(BENCH_ARGS)

## bench-mock: seeding time and mock lookup figures (issue 2)
bench-mock: install
	$(BIN)/python bench/seed_bench.py
	$(BIN)/python bench/lookup_bench.py

## bench-console: console pages' server time with 1,000,000 audit events and residents (issue 16; PostgreSQL
## at DANCU_TEST_POSTGRES_URL; CONSOLE_BENCH_ARGS="--events 50000 --residents 0" for a quick one)
CONSOLE_BENCH_ARGS ?=
bench-console: install
	$(BIN)/python bench/console_bench.py $(CONSOLE_BENCH_ARGS)

clean:
	rm -rf var .mypy_cache .ruff_cache .pytest_cache .hypothesis
