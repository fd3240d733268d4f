#!/usr/bin/env bash
# Rollup cost as cardinality grows: a fresh release stack in a temporary folder, then
# `loadgen --distinct-keys N`, which for two sites in turn (10 keys; N distinct pages,
# selectors, referrers and visitors) sends N batches with the aggregator stopped, starts it,
# times the drain and reads its cost from its metrics, then times stats queries of both sites.
# The 10-key site is the baseline of the same run. Tunables: BENCH_KEYS (20000),
# BENCH_CONCURRENCY (32), BENCH_QUERIES (200), BENCH_BIN_DIR (target/release: the services
# measured; point it at another build, e.g. of an older commit, to compare — its aggregator
# may not export the cost counters, which then read 0). docs/benchmarks.md records the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BENCH_BIN_DIR:-target/release}
export CP_BIN_DIR="$bin"

dir=$(mktemp -d /tmp/cp-bench-rollups.XXXXXX)
trap 'rm -rf "$dir"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mongodb: ${MONGODB_URI:-nx-27017 (MongoDB-wire over SQLite)}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

export CP_RUN_DIR="$dir" NATS_URL=nats://127.0.0.1:14322 MONGODB_DB=convertpulse_bench_rollups \
  CP_API_ADDR=127.0.0.1:18180 CP_INGEST_ADDR=127.0.0.1:18181 CP_AGGREGATOR_ADDR=127.0.0.1:18182 \
  CP_API_METRICS_ADDR=127.0.0.1:18190 CP_INGEST_METRICS_ADDR=127.0.0.1:18191 \
  CP_TRUSTED_PROXIES=127.0.0.1 CP_RATE_LIMIT_KEY_PER_SEC=1000000 CP_RATE_LIMIT_KEY_BURST=1000000 \
  CP_STREAM_MAX_MSGS_PER_SITE=1000000000 \
  CP_RATE_LIMIT_IP_PER_SEC=1000000 CP_RATE_LIMIT_IP_BURST=1000000 \
  RUST_LOG=warn CP_SKIP_AGGREGATOR=1
[ -z "${MONGODB_URI:-}" ] && export CP_BENCH_NX_PORT=27217
agg_metrics=${BENCH_AGG_METRICS:-http://127.0.0.1:18192/metrics}
export CP_AFTER_START="target/release/loadgen --api http://127.0.0.1:18180 --ingest http://127.0.0.1:18181 \
  --distinct-keys ${BENCH_KEYS:-20000} --concurrency ${BENCH_CONCURRENCY:-32} --stats-queries ${BENCH_QUERIES:-200} \
  --aggregator-metrics $agg_metrics \
  --start-aggregator 'env CP_METRICS_ADDR=127.0.0.1:18192 $bin/aggregator >>$dir/logs/aggregator.log 2>&1'"
deploy/local/run.sh
