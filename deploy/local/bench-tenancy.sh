#!/usr/bin/env bash
# Many sites at once (issue 18): a fresh release stack in a temporary folder, then
# `loadgen --tenancy N`, which in one run sends the same number of batches first to one busy
# site, then spread over N sites (a few each, every batch a distinct visitor), each time with
# the aggregator stopped; starts it, times the drain, reads its cost from its metrics, checks
# that EVERY site's stats equal what it was sent (exit 1 if not), then times stats queries of
# the busy site alone and, with all the data present, of it and of random sites among the N.
# Tunables: BENCH_SITES (1000), BENCH_BATCHES_PER_SITE (5), BENCH_BUSY_BATCHES (sites × batches
# per site), BENCH_BATCH_SIZE (small, 1k, 1k-attention: 1k plus what the v3 snippet sends, or 1k-journey: 1k-attention in sessions of three batches, the third with a Purchase carrying revenue), BENCH_SEGMENTS (0-10 segments per site, each matching every session), BENCH_SITES_PER_ACCOUNT (100), BENCH_CONCURRENCY
# (32), BENCH_QUERIES (50 per timeframe and target), BENCH_BIN_DIR (target/release: the
# services measured). Ports differ from make run and the other benches.
# docs/benchmarks.md records the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BENCH_BIN_DIR:-target/release}
export CP_BIN_DIR="$bin"
[ -x target/release/loadgen ] || { echo "!! target/release/loadgen is missing: cargo build --release --bin loadgen" >&2; exit 1; }

dir=$(mktemp -d /tmp/cp-bench-tenancy.XXXXXX)
trap 'rm -rf "$dir"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mongodb: ${MONGODB_URI:-nx-27017 (MongoDB-wire over SQLite)}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); services from $bin"

# Rate limits lifted: every batch comes from this host (its X-Forwarded-For is believed), and
# the run registers one account per 100 sites from addresses of its own.
export CP_RUN_DIR="$dir" NATS_URL=nats://127.0.0.1:14422 MONGODB_DB=convertpulse_bench_tenancy \
  CP_API_ADDR=127.0.0.1:18280 CP_INGEST_ADDR=127.0.0.1:18281 CP_AGGREGATOR_ADDR=127.0.0.1:18282 \
  CP_API_METRICS_ADDR=127.0.0.1:18290 CP_INGEST_METRICS_ADDR=127.0.0.1:18291 CP_AGGREGATOR_METRICS_ADDR=127.0.0.1:18292 \
  CP_TRUSTED_PROXIES=127.0.0.1 CP_RATE_LIMIT_KEY_PER_SEC=1000000 CP_RATE_LIMIT_KEY_BURST=1000000 \
  CP_STREAM_MAX_MSGS_PER_SITE=1000000000 \
  CP_RATE_LIMIT_IP_PER_SEC=1000000 CP_RATE_LIMIT_IP_BURST=1000000 CP_REGISTER_MAX_PER_IP=1000000 \
  RUST_LOG=warn CP_SKIP_AGGREGATOR=1
[ -z "${MONGODB_URI:-}" ] && export CP_BENCH_NX_PORT=27317
agg_metrics=http://$CP_AGGREGATOR_METRICS_ADDR/metrics
busy=${BENCH_BUSY_BATCHES:+--busy-batches $BENCH_BUSY_BATCHES}
export CP_AFTER_START="target/release/loadgen --api http://127.0.0.1:18280 --ingest http://127.0.0.1:18281 \
  --tenancy ${BENCH_SITES:-1000} --batches-per-site ${BENCH_BATCHES_PER_SITE:-5} $busy \
  --batch-size ${BENCH_BATCH_SIZE:-small} --sites-per-account ${BENCH_SITES_PER_ACCOUNT:-100} --segments ${BENCH_SEGMENTS:-0} \
  --concurrency ${BENCH_CONCURRENCY:-32} --stats-queries ${BENCH_QUERIES:-50} \
  --aggregator-metrics $agg_metrics \
  --start-aggregator 'env CP_METRICS_ADDR=$CP_AGGREGATOR_METRICS_ADDR $bin/aggregator >>$dir/logs/aggregator.log 2>&1'"
deploy/local/run.sh
