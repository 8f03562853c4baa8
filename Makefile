# H Taxi — the front door. `make up` runs the app, `make test` runs every test.
# Both do their own set-up (wasm target, Python tools) on a fresh machine.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
COMPONENTS  := grab pay allocate grab-status broker console
WASM_CRATES := $(COMPONENTS) fixture
# The native crates: the host and everything `make test` runs natively. `make host` and the
# tests select the same packages, so Cargo resolves the same features and builds wasmtime
# and the rest once (selecting spin-host alone enabled fewer features of syn, url, indexmap…,
# and every dependency above them was compiled a second time for the tests).
NATIVE_CRATES := htaxi-shared broker console spin-host manifests e2e
LISTEN      ?= 127.0.0.1:3000
HOST_BIN    := target/debug/spin-host
PKG_FLAGS   = $(foreach c,$(1),-p $(c))
# Python tooling (componentize-py for notify, pytest, the CloudEvents SDK for the contract
# tests): pinned in functions/notify/requirements.txt, installed from PyPI into ./.venv.
VENV        := .venv
PY_REQS     := functions/notify/requirements.txt functions/notify/component-requirements.txt
NOTIFY_SITE := target/notify-site
NOTIFY_WASM := target/$(WASM_TARGET)/release/notify.wasm
NOTIFY_SRC  := $(wildcard functions/notify/*.py functions/notify/migrations/*.sql functions/notify/wit/*.wit functions/notify/wit/deps/*/*.wit)
# The console's web app (TypeScript, Vite): npm ci from the lock file, built into
# functions/console/dist, which the console component serves from Spin `files`.
CONSOLE_WEB := functions/console/web
CONSOLE_DIST := functions/console/dist
CONSOLE_SRC := $(wildcard $(CONSOLE_WEB)/src/*.ts $(CONSOLE_WEB)/src/*/*.ts $(CONSOLE_WEB)/src/*.css $(CONSOLE_WEB)/public/*) \
  $(CONSOLE_WEB)/index.html $(CONSOLE_WEB)/vite.config.ts $(CONSOLE_WEB)/tsconfig.json
# `make test LINT=1` (what .ci/run runs): clippy, with -D warnings, is the compiler of every
# workspace crate the tests build (cargo clippy's own mechanism: RUSTC_WORKSPACE_WRAPPER,
# CLIPPY_ARGS). Those are the crates and targets `make lint` checks (native: libs, bins,
# tests; the components for wasm32), so a lint fails the build, and no dependency is compiled
# twice (in check mode for clippy, then for real): on a cold cache that saves CI ~10 minutes.
ifdef LINT
export RUSTC_WORKSPACE_WRAPPER := $(shell rustc --print sysroot)/bin/clippy-driver
export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
endif
# The pay API key is a secret: nothing ships a default. Locally, a random one per run.
export SPIN_VARIABLE_PAY_API_KEY ?= $(shell od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# Bytes of each instance's linear memory that wasmtime's pooling allocator resets in place
# (only the pages written) when the instance ends; Spin's default is 2 MiB and the rest is
# handed back with madvise. A componentize-py instance (notify) writes more than that of its
# snapshot, so every instance faulted those pages in again, and with two instances running at
# once each fault and each madvise also flushed the other core's TLB. `make bench`, notify's
# guest CPU per event at 1 rider: 15.1 ms with 2 MiB, 3.3 ms with 16 MiB. spin-core reads the same
# variable (`spin up`, the shim), and so does the host; knative/base/serving/notify.yaml
# sets it for notify's Service. `make up`, `make test` and `make bench` run with it.
export SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT ?= 16777216

.PHONY: all setup build notify console console-setup host up test test-console test-rust test-python validate-knative lint fmt fmt-check bench soak deploy clean

all: build

## setup: install the wasm target (idempotent)
setup:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## build: every component (and the host's fixture) as wasm32-wasip2 release components,
## the console's web assets first
build: setup notify console
	$(CARGO) build --target $(WASM_TARGET) --release $(call PKG_FLAGS,$(WASM_CRATES))

$(VENV)/.installed: $(PY_REQS)
	scripts/python-venv.sh $(VENV) functions/notify/requirements.txt

## notify: the Python component, componentize-py straight from functions/notify/wit (rebuilt
## only when its sources change)
notify: $(NOTIFY_WASM)
$(NOTIFY_WASM): $(VENV)/.installed $(NOTIFY_SRC)
	@mkdir -p $(dir $@)
	@rm -rf $(NOTIFY_SITE) && $(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	  --target $(NOTIFY_SITE) -r functions/notify/component-requirements.txt
	$(VENV)/bin/componentize-py --quiet -d functions/notify/wit -w notify componentize app \
	  -p functions/notify -p $(NOTIFY_SITE) -o $@

## console: the console's web app, built with Vite into functions/console/dist (npm ci from
## package-lock.json; Node and npm from apt when missing and running as root)
console: $(CONSOLE_DIST)/index.html
$(CONSOLE_WEB)/node_modules/.installed: $(CONSOLE_WEB)/package-lock.json
	scripts/console-setup.sh node
	cd $(CONSOLE_WEB) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(CONSOLE_DIST)/index.html: $(CONSOLE_WEB)/node_modules/.installed $(CONSOLE_SRC)
	cd $(CONSOLE_WEB) && npm run --silent build
	@echo "console assets:" && du -b $(CONSOLE_DIST)/index.html $(CONSOLE_DIST)/assets/*

## host: the project's Spin-compatible host (used when the Spin CLI is not installed)
host:
	$(CARGO) build $(call PKG_FLAGS,$(NATIVE_CRATES)) --bins

## up: run the app on http://$(LISTEN) — real `spin up` if installed, else our host —
## with the outbox PingSource stand-in, the broker's dispatcher loop and the SQLite
## keeper (one idle connection per database, so WAL survives between requests) beside it,
## and a new token signing key (scripts/token prints tokens for it)
up: build
	@# A throw-away token signing key per run (.spin/dev-auth/); its JWKS is the auth_jwks
	@# variable, so `scripts/token` signs tokens this run accepts, and only this run.
	@# The console's dev sign-in signs with the same key (never set in the cluster).
	@jwks="$$($(VENV)/bin/python scripts/mint_token.py --new-key)" && export SPIN_VARIABLE_AUTH_JWKS="$$jwks"; \
	export SPIN_VARIABLE_CONSOLE_DEV_SIGNING_KEY="$$(cat .spin/dev-auth/signing-key.pem)"; \
	echo "Console: http://$(LISTEN)/console/ (dev sign-in as rider, driver or operator)"; \
	echo "Bearer tokens: scripts/token rider 010-1234-5678 | driver <taxiId> | operator"; \
	if command -v spin >/dev/null 2>&1; then \
	  echo "Using the Spin CLI: $$(spin --version)"; \
	  scripts/local-ping.sh http://$(LISTEN) & ping=$$!; \
	  scripts/local-dispatch.sh http://$(LISTEN) & dispatch=$$!; \
	  scripts/sqlite-keeper.py runtime-config.toml & keeper=$$!; \
	  trap "kill $$ping $$dispatch $$keeper 2>/dev/null" EXIT INT TERM; \
	  spin up --runtime-config-file runtime-config.toml --listen $(LISTEN); \
	else \
	  $(MAKE) --no-print-directory host && \
	  echo "Spin CLI not found: running the project's Spin-compatible host ($(HOST_BIN))"; \
	  scripts/local-ping.sh http://$(LISTEN) & ping=$$!; \
	  scripts/local-dispatch.sh http://$(LISTEN) & dispatch=$$!; \
	  scripts/sqlite-keeper.py runtime-config.toml & keeper=$$!; \
	  trap "kill $$ping $$dispatch $$keeper 2>/dev/null" EXIT INT TERM; \
	  $(HOST_BIN) up --from spin.toml --runtime-config-file runtime-config.toml --listen $(LISTEN); \
	fi

## test: everything — domain units, host, manifests, end-to-end, Knative schema validation,
## the console's unit tests and its browser suite
test: build host test-python test-rust validate-knative test-console

## test-console: the console's Vitest units, then its Playwright suite in Debian's chromium
## against `make up` on a free port (screenshots in target/console-screenshots/)
test-console: console
	cd $(CONSOLE_WEB) && npx vitest run
	scripts/console-browser-test.sh

# pytest's exit codes: 0 all passed; anything else fails the target, including 5 (no test
# collected: the suite went missing) and 1 (a test failed).
test-python: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider functions/notify/tests

# The soak in `make test` runs 1000 sagas; `make soak` runs 3000.
test-rust:
	SOAK_SAGAS=$${SOAK_SAGAS:-1000} $(CARGO) test $(call PKG_FLAGS,$(NATIVE_CRATES))

## validate-knative: render every overlay and validate it against ../shared/schemas
validate-knative:
	scripts/validate-knative.sh

## lint: rustfmt check + clippy -D warnings (native crates and wasm components)
lint: setup fmt-check
	$(CARGO) clippy $(call PKG_FLAGS,$(NATIVE_CRATES)) --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(call PKG_FLAGS,$(WASM_CRATES)) -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## bench: one table — the empty-handler ceiling, POST /grabs and GET /grabStatuses latency,
## the saga at 1/8/16/32 riders, peak RSS — against what `make up` runs (the Spin CLI if
## installed, else the host built in release). Numbers and targets printed, nothing asserted.
bench: build
	$(CARGO) build --release -p spin-host --bins
	target/release/spin-host-bench

soak: build host
	SOAK_SAGAS=$${SOAK_SAGAS:-3000} $(CARGO) test $(call PKG_FLAGS,$(NATIVE_CRATES)) --test soak -- --nocapture

## deploy: push the Spin OCI artifact and apply the Knative overlay (OVERLAY=shim|container)
OVERLAY  ?= shim
REGISTRY ?= ghcr.io/htaxi
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
deploy: build
	REGISTRY=$(REGISTRY) OVERLAY=$(OVERLAY) VERSION=$(VERSION) scripts/knative-deploy.sh

clean:
	$(CARGO) clean
	rm -rf .spin
