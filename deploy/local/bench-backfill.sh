#!/usr/bin/env bash
# Backfill speed: `bench_backfill` (tests/src/bin/bench_backfill.rs) starts its own MongoDB-wire
# server (nx-27017) on a free port with a temporary data folder, or uses MONGODB_URI; writes
# 90 days x 1,000 raw batches of one site (~9 events each, 3 batches a session) and a quarter as
# many of another; then per round times, on the same data, a plain read of the site's raw
# batches (the baseline: the backfill's own query, deserialized), a goal's backfill and a
# funnel's backfill run to completion, and prints events/s, the ratio to the baseline and the
# CPU per 1,000 events of this process and of the stand-in. One more round counts round trips
# and documents read and written. It checks that each backfilled goal and funnel count exactly
# what the generator put in (exit 1 if not).
# Tunables: BENCH_DAYS (90), BENCH_BATCHES_PER_DAY (1000), BENCH_OTHER_BATCHES_PER_DAY (250),
# BENCH_LIVE_DAYS (2: the last days go through the aggregator's flush, so their sessions have
# documents), BENCH_ROUNDS (3), BENCH_ACCOUNT (1), BENCH_CHUNK (the aggregator's 2,000),
# BENCH_SEED (1), BENCH_PERF (baseline|goal|funnel: perf record of that phase of round 1 into
# BENCH_PERF_OUT), BENCH_BIN (target/release/bench_backfill).
# docs/benchmarks.md records the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BENCH_BIN:-target/release/bench_backfill}
[ -x "$bin" ] || { echo "!! $bin is missing: cargo build --release -p cp-tests --bin bench_backfill" >&2; exit 1; }
if [ -z "${MONGODB_URI:-}" ]; then
  export CP_NX_BIN=${CP_NX_BIN:-$PWD/.venv/bin/nx-27017}
  [ -x "$CP_NX_BIN" ] || { echo "!! $CP_NX_BIN is missing: make deps" >&2; exit 1; }
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mongodb: ${MONGODB_URI:-nx-27017 (MongoDB-wire over SQLite)}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
exec "$bin"
