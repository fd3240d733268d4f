# ConvertPulse: `make run` starts the whole stack locally, `make test` runs every test.
# Both install what is missing first (see deploy/local/deps.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help deps deps-test deps-bench deps-cluster deps-deploy frontend run cluster build test test-unit check-deploy lint bench bench-rollups bench-tenancy bench-backfill bench-history bench-wrk clean

help:
	@echo "make run    install what is missing, build, start NATS, MongoDB-wire server and the three services, seed a demo"
	@echo "make cluster  the same scaled out: 3 NATS nodes (R3), 2 ingest, 2 aggregators, HAProxy in front (see README)"
	@echo "make test   install what is missing, make lint, build once, run every test, then make check-deploy"
	@echo "make lint   cargo fmt --check and cargo clippy -D warnings over the workspace"
	@echo "make check-deploy  validate deploy/ (Kubernetes, compose, Prometheus rules, NATS) and prove the alerts on a live cluster"
	@echo "make bench  run the load generator against a fresh release stack (see docs/benchmarks.md)"
	@echo "make bench-rollups  rollup cost with 10 vs 20,000 distinct keys a day (see docs/benchmarks.md)"
	@echo "make bench-tenancy  one busy site vs 1,000 sites with the same batches: drain, cost, every site's stats checked, query times"
	@echo "make bench-backfill  a new goal's and funnel's backfill over 90 days of raw batches, against a plain read of them"
	@echo "make bench-history  stats latency and api memory with 400 days of imported history, against a site without (plus wrk)"
	@echo "make bench-wrk  wrk with realistic batches against ingest and a bare handler, same run (docs/benchmarks.md)"

deps:
	@deploy/local/deps.sh

# Tests also drive Chromium, run schemathesis against docs/openapi.yaml, start the cluster
# behind HAProxy, and check deploy/.
deps-test:
	@deploy/local/deps.sh --test --cluster --deploy-checks

deps-cluster:
	@deploy/local/deps.sh --cluster

deps-deploy:
	@deploy/local/deps.sh --cluster --deploy-checks

# The minified tracker the api serves at /convertpulse.js.
frontend:
	npm run -s build:tracker

build: frontend
	cargo build --locked --release --bins

run: deps build
	@deploy/local/run.sh

# Three NATS nodes, two ingest, two aggregators, the api and HAProxy; Ctrl-C stops all.
cluster: deps-cluster build
	@deploy/local/cluster.sh

# Formatting (rustfmt.toml) and clippy with warnings as errors, over every target.
lint:
	@for c in rustfmt clippy; do \
		if ! cargo $${c/rustfmt/fmt} --version >/dev/null 2>&1; then rustup component add $$c; fi; \
	done
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

# Lint, one build of every target, then every test: unit tests, cross-process tests, browser tests.
test: deps-test frontend lint
	cargo build --locked --workspace --all-targets
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --locked --workspace --no-fail-fast; \
	else \
		cargo test --locked --workspace --no-fail-fast; \
	fi
	@$(MAKE) --no-print-directory check-deploy CP_BIN_DIR=target/debug

# Validates deploy/ offline, then runs Prometheus against a live cluster (debug binaries by
# default; `make test` builds them). CP_CHECK_STATIC_ONLY=1 skips the live part.
check-deploy: deps-deploy
	@if [ ! -x "$${CP_BIN_DIR:-target/debug}/ingest" ]; then cargo build --locked --bins; fi
	@CP_BIN_DIR=$${CP_BIN_DIR:-target/debug} deploy/check/check-deploy.sh

test-unit:
	cargo test --locked --workspace --lib --bins

bench: deps build
	@deploy/local/bench.sh

bench-rollups: deps build
	@deploy/local/bench-rollups.sh

# Many sites at once (issue 18). Tunables: BENCH_SITES, BENCH_BATCHES_PER_SITE,
# BENCH_BUSY_BATCHES, BENCH_BATCH_SIZE, BENCH_QUERIES (see the script).
bench-tenancy: deps build
	@deploy/local/bench-tenancy.sh

# Backfill speed: 90 days of raw batches, a plain read of them (the baseline) against a goal's
# and a funnel's backfill. Tunables: BENCH_DAYS, BENCH_BATCHES_PER_DAY, BENCH_ROUNDS, BENCH_PERF
# (see the script). Needs only the MongoDB-wire server and its own binary.
bench-backfill: deps
	cargo build --locked --release -p cp-tests --bin bench_backfill
	@deploy/local/bench-backfill.sh

# Stats with history (issue 23): 400 busy days imported through the real route, 30d / 90d / 12
# months / 12 months with a page filter against a site without history, the api's memory, and
# wrk. Tunables: BENCH_DAYS, BENCH_PAGES, BENCH_QUERIES, BENCH_CONCURRENCY, BENCH_WRK_DURATION,
# BENCH_PERF (see the script). Builds only the services it runs and its own binary.
bench-history: deps deps-bench
	cargo build --locked --release -p api -p ingest -p aggregator --bins
	cargo build --locked --release -p cp-tests --bin bench_history
	@deploy/local/bench-history.sh

# wrk and perf come from Debian.
deps-bench:
	@deploy/local/deps.sh --bench

bench-wrk: deps-bench build
	@deploy/local/bench-wrk.sh

clean:
	rm -rf .run .venv-deploy target/cp-artifacts tracker/dist
