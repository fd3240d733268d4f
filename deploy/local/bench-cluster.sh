#!/usr/bin/env bash
# Scale figures on the `make cluster` stack (docs/benchmarks.md, "Scaling out"): ingest
# throughput with 1 vs 2 ingest processes behind HAProxy, and the aggregators' drain rate with
# 1 vs 2 processes on one backlog, all in one run on this machine so the ratios hold whatever
# else the host is doing. Release binaries; a fresh cluster on other ports (offset 3000).
# Tunables: BENCH_CONCURRENCY (32), BENCH_DURATION seconds per burst (5), BENCH_DRAIN_WINDOW
# seconds per drain measurement (20).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f "${CP_RUN_DIR:-/nonexistent}/endpoints.env" ]; then
  [ -x "${CP_BIN_DIR:-target/release}/loadgen" ] || { echo "!! build first: cargo build --release --bins" >&2; exit 1; }
  CP_RUN_DIR=$(mktemp -d /tmp/cp-bench-cluster.XXXXXX)
  trap 'rm -rf "$CP_RUN_DIR"' EXIT
  export CP_RUN_DIR CP_CLUSTER_PORT_OFFSET=${CP_CLUSTER_PORT_OFFSET:-3000} CP_CLUSTER_RESTART_DELAY=off
  # Load comes from one address with X-Forwarded-For set per visitor: believe it from the
  # balancer (127.0.0.2) and the load generator behind it (127.0.0.1); lift the per-key limit,
  # and the per-site share of the stream, which the aggregators, stopped while ingest is
  # measured, do not drain.
  export CP_TRUSTED_PROXIES=127.0.0.2,127.0.0.1 CP_RATE_LIMIT_KEY_PER_SEC=1000000 CP_RATE_LIMIT_KEY_BURST=1000000
  export CP_STREAM_MAX_MSGS_PER_SITE=1000000000
  export RUST_LOG=warn CP_AFTER_START="python3 deploy/local/bench_cluster.py"
  deploy/local/cluster.sh
  exit $?
fi
exec python3 deploy/local/bench_cluster.py
