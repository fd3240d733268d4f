#!/usr/bin/env bash
# History (issue 23): `bench_history` (tests/src/bin/bench_history.rs) starts a release stack
# (nats-server, the MongoDB-wire server, ingest, aggregator, api) on free ports with temporary
# data, uploads an export zip of 400 busy days (1,000+ pages, 150 sources, 120 countries, ... a
# day) to one site through the real import route and waits until it is done, feeds both that
# site and a baseline site without history the same 4 days of live batches, checks that the
# two differ by exactly the imported pageviews, then times the stats over HTTP for 30d, 90d,
# 12 months and 12 months with a page filter (p50/p99/max, one at a time and 8 at a time, with
# documents read, bytes read, api and stand-in CPU per request), the api's memory while 1, 8
# and 16 12-month requests run at once, and wrk against the 12-month URL of both sites.
# Tunables: BENCH_DAYS (400), BENCH_PAGES (1200), BENCH_CATALOGUE (4000), BENCH_PAGEVIEWS
# (40000), BENCH_LIVE_BATCHES (1500), BENCH_WARMUP (20), BENCH_QUERIES (200), BENCH_CONCURRENCY
# (8), BENCH_MEM_REQUESTS (48), BENCH_WRK_DURATION (30; 0 skips wrk), BENCH_PERF (1: perf record
# of the api and the stand-in during the 12-month run, into BENCH_PERF_OUT), BENCH_SEED (1), BENCH_BIN_DIR
# (target/release: the services measured), BENCH_BIN (target/release/bench_history).
# docs/benchmarks.md records the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BENCH_BIN:-target/release/bench_history}
export CP_BIN_DIR=${BENCH_BIN_DIR:-target/release}
[ -x "$bin" ] || { echo "!! $bin is missing: cargo build --release -p cp-tests --bin bench_history" >&2; exit 1; }
for b in api ingest aggregator; do
  [ -x "$CP_BIN_DIR/$b" ] || { echo "!! $CP_BIN_DIR/$b is missing: cargo build --release --bins" >&2; exit 1; }
done
if [ -z "${MONGODB_URI:-}" ]; then
  export CP_NX_BIN=${CP_NX_BIN:-$PWD/.venv/bin/nx-27017}
  [ -x "$CP_NX_BIN" ] || { echo "!! $CP_NX_BIN is missing: make deps" >&2; exit 1; }
fi
command -v wrk >/dev/null 2>&1 || [ "${BENCH_WRK_DURATION:-30}" = 0 ] || { echo "!! wrk is missing: make deps-bench" >&2; exit 1; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mongodb: ${MONGODB_URI:-nx-27017 (MongoDB-wire over SQLite)}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); services from $CP_BIN_DIR"
exec "$bin"
