#!/usr/bin/env bash
# Starts the whole ConvertPulse stack on this machine (what `make run` does after building):
# NATS with JetStream, the MongoDB-wire server (unless MONGODB_URI is set), ingest, aggregator
# and api; seeds a demo account and site; prints the URLs. Ctrl-C stops everything.
# Data lives in ./.run (CP_RUN_DIR), logs in its logs/ folder.
# With CP_AFTER_START set, that command runs once everything is up, then the stack stops
# (this is how deploy/local/bench.sh drives the load generator).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN_DIR=${CP_RUN_DIR:-.run}
BIN_DIR=${CP_BIN_DIR:-target/release}
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/nats" "$RUN_DIR/nx"

export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export MONGODB_DB=${MONGODB_DB:-convertpulse}
export CP_API_ADDR=${CP_API_ADDR:-127.0.0.1:8080}
export CP_INGEST_ADDR=${CP_INGEST_ADDR:-127.0.0.1:8081}
export CP_AGGREGATOR_ADDR=${CP_AGGREGATOR_ADDR:-127.0.0.1:8082}
export CP_INGEST_PUBLIC_URL=${CP_INGEST_PUBLIC_URL:-http://localhost:${CP_INGEST_ADDR##*:}}
export CP_WEB_DIR=${CP_WEB_DIR:-web}
export CP_TRACKER_DIR=${CP_TRACKER_DIR:-tracker}
# /demo is off unless CP_DEMO_EMAIL names an account with a site: this script seeds both.
export CP_DEMO_EMAIL=${CP_DEMO_EMAIL:-demo@convertpulse.dev}
# Each service's internal /metrics listener (CP_METRICS_ADDR of that process).
API_METRICS_ADDR=${CP_API_METRICS_ADDR:-127.0.0.1:9180}
INGEST_METRICS_ADDR=${CP_INGEST_METRICS_ADDR:-127.0.0.1:9181}
AGGREGATOR_METRICS_ADDR=${CP_AGGREGATOR_METRICS_ADDR:-127.0.0.1:9182}
export RUST_LOG=${RUST_LOG:-info}
# Installed by deploy/local/deps.sh; without it ingest still runs and counts countries as (unknown).
export CP_GEOIP_DB=${CP_GEOIP_DB:-deploy/geoip/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb}
DEMO_PASSWORD=${CP_DEMO_PASSWORD:-convertpulse-demo}

# The api refuses to start without a signing secret: make one per checkout, kept in .run
# (mode 600: readable by this user only).
if [ -z "${CP_JWT_SECRET:-}" ]; then
  CP_JWT_SECRET=$(deploy/local/secret.sh "$RUN_DIR/jwt_secret")
  export CP_JWT_SECRET
fi

pids=()
names=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

port_of() { local hostport=${1##*//}; hostport=${hostport%%/*}; echo "${hostport##*:}"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # name, command...
  local name=$1; shift
  "$@" >"$RUN_DIR/logs/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
}
wait_for() { # what, command; polls for up to 60 s
  local what=$1; shift
  for _ in $(seq 1 240); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "!! $what did not come up; see $RUN_DIR/logs" >&2
  exit 1
}

nats_port=$(port_of "$NATS_URL")
if port_busy "$nats_port"; then echo "!! port $nats_port is taken: is NATS (or another 'make run') already running?" >&2; exit 1; fi
# NATS shares this host's cores with everything else here: one Go scheduler thread per two
# cores (GOMAXPROCS) spends a fifth less CPU per batch and acks sooner than one per core, since
# a publish's goroutine hand-offs then seldom wake another thread (docs/benchmarks.md).
start nats env GOMAXPROCS="${GOMAXPROCS:-$(( ($(nproc) + 1) / 2 ))}" nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$RUN_DIR/nats"

if [ -z "${MONGODB_URI:-}" ]; then
  nx_port=${CP_BENCH_NX_PORT:-27017}
  export MONGODB_URI=mongodb://127.0.0.1:$nx_port
  if port_busy "$nx_port"; then echo "!! port $nx_port is taken: set MONGODB_URI to use that server, or stop it" >&2; exit 1; fi
  start mongo .venv/bin/nx-27017 --host 127.0.0.1 -p "$nx_port" --data-dir "$RUN_DIR/nx" \
    --log-file "$RUN_DIR/logs/nx-internal.log" --pid-file "$RUN_DIR/nx.pid"
  wait_for "the MongoDB-wire server" port_busy "$nx_port"
fi
wait_for "NATS" port_busy "$nats_port"

services="api ingest aggregator"
# The benchmark starts the aggregator itself, after measuring ingest alone.
[ -n "${CP_SKIP_AGGREGATOR:-}" ] && services="api ingest"
for svc in $services; do
  [ -x "$BIN_DIR/$svc" ] || { echo "!! $BIN_DIR/$svc is missing: run 'make run' (it builds first)" >&2; exit 1; }
  case "$svc" in
    api) metrics_addr=$API_METRICS_ADDR ;;
    ingest) metrics_addr=$INGEST_METRICS_ADDR ;;
    *) metrics_addr=$AGGREGATOR_METRICS_ADDR ;;
  esac
  start "$svc" env CP_METRICS_ADDR="$metrics_addr" "$BIN_DIR/$svc"
done
api="http://$CP_API_ADDR"
wait_for "api" curl -fsS "$api/readyz"
wait_for "ingest" curl -fsS "http://$CP_INGEST_ADDR/readyz"
[ -n "${CP_SKIP_AGGREGATOR:-}" ] || wait_for "aggregator" curl -fsS "http://$CP_AGGREGATOR_ADDR/readyz"

# Seed: the demo account (created once) and its site on localhost, which /demo reports to.
deploy/local/seed-demo.sh "$api" "$CP_DEMO_EMAIL" "$DEMO_PASSWORD"

api_port=${CP_API_ADDR##*:}
cat <<MSG

  ConvertPulse is running.

    Landing page   http://localhost:$api_port/
    Dashboard      http://localhost:$api_port/dashboard
    Demo site      http://localhost:$api_port/demo     (its clicks show on the dashboard)
    Ingest         $CP_INGEST_PUBLIC_URL/api/events/batch
    Metrics        http://$API_METRICS_ADDR/metrics  http://$INGEST_METRICS_ADDR/metrics  http://$AGGREGATOR_METRICS_ADDR/metrics

    Demo login     $CP_DEMO_EMAIL / $DEMO_PASSWORD

  Logs in $RUN_DIR/logs. Ctrl-C stops everything.

MSG

if [ -n "${CP_AFTER_START:-}" ]; then
  set +e
  bash -c "$CP_AFTER_START"
  exit $?
fi

# Exit (and stop the rest) as soon as any process ends.
set +e
wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then echo "!! ${names[$i]} exited (status $status); see $RUN_DIR/logs/${names[$i]}.log" >&2; fi
done
exit "$status"
