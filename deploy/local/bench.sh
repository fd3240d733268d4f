#!/usr/bin/env bash
# Benchmark: a fresh release stack in a temporary folder, the bare-axum baseline, and the load
# generator against both, in one run on this machine. Ingest is measured first with NATS alone
# behind it; then the aggregator starts, drains the backlog, and freshness is measured. Results go to stdout; docs/benchmarks.md
# records them. Tunables: BENCH_CONCURRENCY (64), BENCH_DURATION seconds (10), BENCH_SITES (4).
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d /tmp/cp-bench.XXXXXX)
base_port=18090
cleanup() { [ -n "${base_pid:-}" ] && kill "$base_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

target/release/loadgen --serve-baseline "127.0.0.1:$base_port" &
base_pid=$!

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "mongodb: ${MONGODB_URI:-nx-27017 (MongoDB-wire over SQLite)}"

export CP_RUN_DIR="$dir" NATS_URL=nats://127.0.0.1:14222 MONGODB_DB=convertpulse_bench \
  CP_API_ADDR=127.0.0.1:18080 CP_INGEST_ADDR=127.0.0.1:18081 CP_AGGREGATOR_ADDR=127.0.0.1:18082 \
  CP_API_METRICS_ADDR=127.0.0.1:18090 CP_INGEST_METRICS_ADDR=127.0.0.1:18091 \
  CP_TRUSTED_PROXIES=127.0.0.1 CP_RATE_LIMIT_KEY_PER_SEC=1000000 CP_RATE_LIMIT_KEY_BURST=1000000 \
  CP_STREAM_MAX_MSGS_PER_SITE=1000000000 \
  RUST_LOG=warn CP_SKIP_AGGREGATOR=1
if [ -z "${MONGODB_URI:-}" ]; then
  # run.sh starts its own MongoDB-wire server on 27017; use another port for the benchmark.
  export CP_BENCH_NX_PORT=27117
fi
export CP_AFTER_START="target/release/loadgen --api http://127.0.0.1:18080 --ingest http://127.0.0.1:18081 \
  --baseline http://127.0.0.1:$base_port --concurrency ${BENCH_CONCURRENCY:-64} \
  --duration ${BENCH_DURATION:-10} --sites ${BENCH_SITES:-4} \
  --start-aggregator 'env CP_METRICS_ADDR=127.0.0.1:18092 target/release/aggregator >$dir/logs/aggregator.log 2>&1'"
deploy/local/run.sh
