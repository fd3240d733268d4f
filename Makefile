# ConvertPulse: `make run` starts the whole stack locally, `make test` runs every test.
# Both install what is missing first (see deploy/local/deps.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help deps deps-test deps-bench frontend run build test test-unit bench bench-rollups bench-wrk clean

help:
	@echo "make run    install what is missing, build, start NATS, MongoDB-wire server and the three services, seed a demo"
	@echo "make test   install what is missing, build once, run every test"
	@echo "make bench  run the load generator against a fresh release stack (see docs/benchmarks.md)"
	@echo "make bench-rollups  rollup cost with 10 vs 20,000 distinct keys a day (see docs/benchmarks.md)"
	@echo "make bench-wrk  wrk with realistic batches against ingest and a bare handler, same run (docs/benchmarks.md)"

deps:
	@deploy/local/deps.sh

# Tests also drive Chromium and run schemathesis against docs/openapi.yaml.
deps-test:
	@deploy/local/deps.sh --test

# The minified tracker the api serves at /convertpulse.js.
frontend:
	npm run -s build:tracker

build: frontend
	cargo build --release --bins

run: deps build
	@deploy/local/run.sh

# One build of every target, then every test: unit tests, cross-process tests, browser tests.
test: deps-test frontend
	cargo build --workspace --all-targets
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi

test-unit:
	cargo test --workspace --lib --bins

bench: deps build
	@deploy/local/bench.sh

bench-rollups: deps build
	@deploy/local/bench-rollups.sh
# wrk and perf come from Debian.
deps-bench:
	@deploy/local/deps.sh --bench

bench-wrk: deps-bench build
	@deploy/local/bench-wrk.sh

clean:
	rm -rf .run target/cp-artifacts tracker/dist
