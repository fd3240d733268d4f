# ConvertPulse: `make run` starts the whole stack locally, `make test` runs every test.
# Both install what is missing first (see deploy/local/deps.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help deps deps-test deps-cluster deps-deploy frontend run cluster build test test-unit check-deploy bench clean

help:
	@echo "make run    install what is missing, build, start NATS, MongoDB-wire server and the three services, seed a demo"
	@echo "make cluster  the same scaled out: 3 NATS nodes (R3), 2 ingest, 2 aggregators, HAProxy in front (see README)"
	@echo "make test   install what is missing, build once, run every test, then make check-deploy"
	@echo "make check-deploy  validate deploy/ (Kubernetes, compose, Prometheus rules, NATS) and prove the alerts on a live cluster"
	@echo "make bench  run the load generator against a fresh release stack (see docs/benchmarks.md)"

deps:
	@deploy/local/deps.sh

# Tests also drive Chromium, start the cluster behind HAProxy, and check deploy/.
deps-test:
	@deploy/local/deps.sh --browser --cluster --deploy-checks

deps-cluster:
	@deploy/local/deps.sh --cluster

deps-deploy:
	@deploy/local/deps.sh --cluster --deploy-checks

# The minified tracker the api serves at /convertpulse.js.
frontend:
	npm run -s build:tracker

build: frontend
	cargo build --release --bins

run: deps build
	@deploy/local/run.sh

# Three NATS nodes, two ingest, two aggregators, the api and HAProxy; Ctrl-C stops all.
cluster: deps-cluster build
	@deploy/local/cluster.sh

# One build of every target, then every test: unit tests, cross-process tests, browser tests.
test: deps-test frontend
	cargo build --workspace --all-targets
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi
	@$(MAKE) --no-print-directory check-deploy CP_BIN_DIR=target/debug

# Validates deploy/ offline, then runs Prometheus against a live cluster (debug binaries by
# default; `make test` builds them). CP_CHECK_STATIC_ONLY=1 skips the live part.
check-deploy: deps-deploy
	@if [ ! -x "$${CP_BIN_DIR:-target/debug}/ingest" ]; then cargo build --bins; fi
	@CP_BIN_DIR=$${CP_BIN_DIR:-target/debug} deploy/check/check-deploy.sh

test-unit:
	cargo test --workspace --lib --bins

bench: deps build
	@deploy/local/bench.sh

clean:
	rm -rf .run .venv-deploy target/cp-artifacts tracker/dist
