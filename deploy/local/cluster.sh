#!/usr/bin/env bash
# `make cluster`: the scaled-out stack on one machine (what `make cluster` runs after building).
#
#   nats-1..3     one JetStream cluster (routes on loopback); stream and buckets at 3 replicas;
#                 a NATS user per service (deploy/nats/accounts.conf)
#   mongo         the MongoDB-wire server (skipped when MONGODB_URI is set)
#   api           one, behind the balancer
#   ingest-1, -2  behind the balancer, which checks /readyz every 500 ms
#   aggregator-1, -2  sharing the durable consumer
#   balancer      HAProxy: ingest at 127.0.0.1:8081, api at 127.0.0.1:8080
#
# Each process is supervised: when it dies (SIGKILL, a crash) it is started again after
# CP_CLUSTER_RESTART_DELAY seconds (default 5; `off` leaves it dead); one that exits because it
# was asked to (status 0, SIGTERM, SIGINT) stays stopped. Its current pid is always in
# $CP_RUN_DIR/pids/<name>.pid (default .run/cluster/pids). Ctrl-C stops everything.
#
# Settings (environment):
#   CP_RUN_DIR                 data, configs, logs, pids [.run/cluster]
#   CP_BIN_DIR                 where ingest, aggregator and api are [target/release]
#   CP_CLUSTER_PORT_OFFSET     added to every port below, to run a second cluster [0]
#   CP_CLUSTER_RESTART_DELAY   seconds before a dead process is restarted, or `off` [5]
#   CP_AFTER_START             a command to run once everything is up; then the cluster stops
#                              with its exit status (3 is this script's own: the cluster did
#                              not come up)
#   CP_RATE_LIMIT_IP_PER_SEC / _BURST, CP_RATE_LIMIT_KEY_PER_SEC / _BURST  [5000 / 10000 here:
#                              the load comes from this machine's one address]
#   GOMAXPROCS                 each NATS node's scheduler threads [a third of the cores, at least 1]
#   any service setting (CP_RATE_LIMIT_IP_PER_SEC, RUST_LOG, ...) is passed on to the services.
#
# Ports (before the offset): balancer 8080 (api), 8081 (ingest), 8404 (HAProxy stats and
# /metrics); api 8090; ingest 8091, 8092; aggregator 8093, 8094; service metrics
# (CP_METRICS_ADDR) api 9180, ingest 9181 and 9183, aggregator 9182 and 9184; NATS clients 4222-4224,
# routes 6222-6224, monitoring 8222-8224; MongoDB-wire 27017.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Ctrl-C also ends whatever reads our output (`make cluster | tee log`): a write to it must not
# kill this script before it has stopped the cluster.
trap '' PIPE

RUN_DIR=${CP_RUN_DIR:-.run/cluster}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
BIN_DIR=${CP_BIN_DIR:-target/release}
OFF=${CP_CLUSTER_PORT_OFFSET:-0}
RESTART_DELAY=${CP_CLUSTER_RESTART_DELAY:-5}
PIDS=$RUN_DIR/pids
LOGS=$RUN_DIR/logs
CONF=$RUN_DIR/conf
mkdir -p "$PIDS" "$LOGS" "$CONF" "$RUN_DIR/nx"
rm -f "$PIDS"/*.pid

p() { echo $(( $1 + OFF )); }
API_FRONT=$(p 8080) INGEST_FRONT=$(p 8081) STATS_PORT=$(p 8404)
API_PORT=$(p 8090) INGEST_PORTS=($(p 8091) $(p 8092)) AGG_PORTS=($(p 8093) $(p 8094))
API_METRICS=$(p 9180) INGEST_METRICS=($(p 9181) $(p 9183)) AGG_METRICS=($(p 9182) $(p 9184))
NATS_PORTS=($(p 4222) $(p 4223) $(p 4224)) ROUTE_PORTS=($(p 6222) $(p 6223) $(p 6224))
MON_PORTS=($(p 8222) $(p 8223) $(p 8224))
MONGO_PORT=$(p 27017)
# The balancer connects to the services from this address, and only it is a trusted proxy:
# a client reaching ingest directly on 127.0.0.1 cannot forge X-Forwarded-For.
BALANCER_SOURCE=127.0.0.2

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$API_FRONT" "$INGEST_FRONT" "$STATS_PORT" "$API_PORT" "${INGEST_PORTS[@]}" "${AGG_PORTS[@]}" \
  "$API_METRICS" "${INGEST_METRICS[@]}" "${AGG_METRICS[@]}" "${NATS_PORTS[@]}" "${ROUTE_PORTS[@]}" "${MON_PORTS[@]}"; do
  if port_busy "$port"; then
    echo "!! port $port is taken: is 'make run' or another cluster running? (CP_CLUSTER_PORT_OFFSET moves all ports)" >&2
    exit 3
  fi
done
command -v haproxy >/dev/null || { echo "!! haproxy is missing: run 'make cluster' (it installs it) or apt-get install haproxy" >&2; exit 1; }
for svc in api ingest aggregator; do
  [ -x "$BIN_DIR/$svc" ] || { echo "!! $BIN_DIR/$svc is missing: run 'make cluster' (it builds first)" >&2; exit 1; }
done

# Secrets, made once per run directory and kept there (mode 600): the JWT secret and one NATS
# password per user. nats-server reads an environment variable's value as a config token, so a
# password must start with a letter and hold letters and digits only ("1e5..." would be read as
# a number and refused).
secrets=$RUN_DIR/secrets.env
if [ ! -s "$secrets" ] || grep -qE '^CP_NATS_[A-Z]+_PASSWORD=([^A-Za-z]|.*[^A-Za-z0-9])' "$secrets"; then
  (
    umask 077
    python3 - >"$secrets" <<'PY'
import secrets
print(f"CP_JWT_SECRET={secrets.token_urlsafe(48)}")
for user in ["INGEST", "AGGREGATOR", "API", "ADMIN"]:
    print(f"CP_NATS_{user}_PASSWORD=cp{secrets.token_hex(24)}")
PY
  )
fi
# A file made before this rule was readable by others: tighten it too.
chmod 600 "$secrets"
given_jwt=${CP_JWT_SECRET:-}
set -a; . "$secrets"; set +a
jwt=${given_jwt:-$CP_JWT_SECRET}
unset CP_JWT_SECRET
# Only the NATS servers see every password; each service gets its own user's (below).
no_secrets=(env -u CP_NATS_INGEST_PASSWORD -u CP_NATS_AGGREGATOR_PASSWORD -u CP_NATS_API_PASSWORD -u CP_NATS_ADMIN_PASSWORD)

# NATS: three nodes, one JetStream cluster.
cp deploy/nats/accounts.conf "$CONF/accounts.conf"
routes=""
for i in 0 1 2; do routes+="    \"nats-route://127.0.0.1:${ROUTE_PORTS[$i]}\""$'\n'; done
for i in 0 1 2; do
  n=$((i + 1))
  mkdir -p "$RUN_DIR/nats-$n"
  cat >"$CONF/nats-$n.conf" <<CONF
# Generated by deploy/local/cluster.sh.
server_name: nats-$n
host: 127.0.0.1
port: ${NATS_PORTS[$i]}
http: 127.0.0.1:${MON_PORTS[$i]}
jetstream {
  store_dir: "$RUN_DIR/nats-$n"
  max_memory_store: 256MB
  max_file_store: 8GB
}
cluster {
  name: convertpulse
  host: 127.0.0.1
  port: ${ROUTE_PORTS[$i]}
  routes: [
$routes  ]
}
include ./accounts.conf
CONF
done
NATS_SEEDS=$(printf 'nats://127.0.0.1:%s,' "${NATS_PORTS[@]}"); NATS_SEEDS=${NATS_SEEDS%,}

cat >"$CONF/haproxy.cfg" <<CONF
# Generated by deploy/local/cluster.sh.
global
    maxconn 4000
    # Operators drain a server with: echo "set server ingest/ingest-1 state drain" | socat - \$CONF/haproxy.sock
    stats socket $CONF/haproxy.sock mode 600 level admin
defaults
    mode http
    log stdout format raw local0 notice
    option dontlognull
    timeout connect 1s
    timeout client 30s
    timeout server 15s
    timeout http-request 10s
    timeout http-keep-alive 30s
    # A batch is idempotent by its batch_id (ingest publishes it with Nats-Msg-Id): when a
    # server dies under a request, send it to the other one rather than fail the client.
    option redispatch 1
    retries 2
    retry-on conn-failure empty-response
    option http-buffer-request
    option forwardfor
frontend ingest
    bind 127.0.0.1:$INGEST_FRONT
    default_backend ingest
backend ingest
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # Two failed checks 500 ms apart: a dead ingest gets no new request after about 1 s.
    default-server check inter 500 fall 2 rise 2 source $BALANCER_SOURCE
    server ingest-1 127.0.0.1:${INGEST_PORTS[0]}
    server ingest-2 127.0.0.1:${INGEST_PORTS[1]}
frontend api
    bind 127.0.0.1:$API_FRONT
    default_backend api
backend api
    option httpchk GET /readyz
    http-check expect status 200
    server api 127.0.0.1:$API_PORT check inter 1s fall 2 rise 2 source $BALANCER_SOURCE
frontend stats
    bind 127.0.0.1:$STATS_PORT
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    stats refresh 2s
CONF
haproxy -c -q -f "$CONF/haproxy.cfg"

# Supervision ---------------------------------------------------------------------------------
sup_pids=()
sup_names=()
supervise() { # name, command...: runs it, writes its pid file, starts it again when it dies
  local name=$1; shift
  (
    set +e
    child=""
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; rm -f "$PIDS/$name.pid"; exit 0' TERM
    while :; do
      "$@" >>"$LOGS/$name.log" 2>&1 &
      child=$!
      echo "$child" >"$PIDS/$name.pid"
      wait "$child"
      status=$?
      echo "$(date +%T) $name (pid $child) exited with status $status" >>"$LOGS/cluster.log"
      child=""
      # 0, or killed by SIGINT/SIGTERM: it was asked to stop (Ctrl-C reaches every process of
      # the terminal's group), so it stays stopped. A crash or a SIGKILL is restarted.
      case "$status" in 0|130|143) rm -f "$PIDS/$name.pid"; exit 0 ;; esac
      if [ "$RESTART_DELAY" = off ]; then rm -f "$PIDS/$name.pid"; exit 0; fi
      sleep "$RESTART_DELAY" & wait $!
      echo "$(date +%T) restarting $name" >>"$LOGS/cluster.log"
    done
  ) &
  sup_pids+=($!)
  sup_names+=("$name")
}
stop_all() {
  trap - INT TERM EXIT
  set +e
  { echo; echo "==> stopping the cluster"; } 2>/dev/null
  # The balancer and the services first (they finish what they hold), then NATS and MongoDB.
  local phase i kind
  for phase in services backends; do
    for i in "${!sup_pids[@]}"; do
      case "${sup_names[$i]}" in nats-*|mongo) kind=backends ;; *) kind=services ;; esac
      [ "$kind" = "$phase" ] && kill -TERM "${sup_pids[$i]}" 2>/dev/null
    done
    for i in "${!sup_pids[@]}"; do
      case "${sup_names[$i]}" in nats-*|mongo) kind=backends ;; *) kind=services ;; esac
      [ "$kind" = "$phase" ] && wait "${sup_pids[$i]}" 2>/dev/null
    done
  done
}
trap stop_all INT TERM EXIT

wait_for() { # what, command; polls for up to 60 s
  local what=$1; shift
  for _ in $(seq 1 240); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "!! $what did not come up; see $LOGS" >&2
  for f in "$LOGS"/nats-1.log "$LOGS"/cluster.log; do [ -f "$f" ] && { echo "-- tail of $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 3
}
js_has_leader() { curl -fsS "http://127.0.0.1:$1/jsz" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("meta_cluster",{}).get("leader") else 1)'; }

# Start ---------------------------------------------------------------------------------------
echo "==> starting the cluster in $RUN_DIR (logs in $LOGS)"
if [ -z "${MONGODB_URI:-}" ]; then
  port_busy "$MONGO_PORT" && { echo "!! port $MONGO_PORT is taken: set MONGODB_URI to use that server, or stop it" >&2; exit 1; }
  export MONGODB_URI=mongodb://127.0.0.1:$MONGO_PORT
  started_mongo=1
  supervise mongo "${no_secrets[@]}" .venv/bin/nx-27017 --host 127.0.0.1 -p "$MONGO_PORT" --data-dir "$RUN_DIR/nx" \
    --log-file "$LOGS/nx-internal.log" --pid-file "$RUN_DIR/nx.pid"
fi
# Three NATS nodes share this host's cores with everything else: one Go scheduler thread per
# node per three cores (GOMAXPROCS), as `make run` gives its one node half. On 2 cores that
# measured 0.63-0.67 cores for NATS against 0.76-0.78 with the Go default, and a fifth more
# batches per second (docs/benchmarks.md, "Scaling out").
nats_procs=${GOMAXPROCS:-$(( ($(nproc) + 2) / 3 ))}
for n in 1 2 3; do supervise "nats-$n" env GOMAXPROCS="$nats_procs" nats-server -c "$CONF/nats-$n.conf"; done
wait_for "the JetStream cluster" js_has_leader "${MON_PORTS[0]}"
[ -n "${started_mongo:-}" ] && wait_for "the MongoDB-wire server" port_busy "$MONGO_PORT"

export NATS_URL=$NATS_SEEDS CP_NATS_REPLICAS=3
export MONGODB_DB=${MONGODB_DB:-convertpulse}
export CP_TRUSTED_PROXIES=${CP_TRUSTED_PROXIES:-$BALANCER_SOURCE}
# Load for this cluster comes from this one machine (one client address): per-IP limits that
# suit the internet would refuse it. Set the variables to the contract's defaults (20/s, burst
# 60) to see those.
export CP_RATE_LIMIT_IP_PER_SEC=${CP_RATE_LIMIT_IP_PER_SEC:-5000} CP_RATE_LIMIT_IP_BURST=${CP_RATE_LIMIT_IP_BURST:-10000}
export CP_RATE_LIMIT_KEY_PER_SEC=${CP_RATE_LIMIT_KEY_PER_SEC:-5000} CP_RATE_LIMIT_KEY_BURST=${CP_RATE_LIMIT_KEY_BURST:-10000}
export CP_INGEST_PUBLIC_URL=${CP_INGEST_PUBLIC_URL:-http://localhost:$INGEST_FRONT}
export CP_WEB_DIR=${CP_WEB_DIR:-web} CP_TRACKER_DIR=${CP_TRACKER_DIR:-tracker}
export CP_DEMO_EMAIL=${CP_DEMO_EMAIL:-demo@convertpulse.dev}
export RUST_LOG=${RUST_LOG:-info}
DEMO_PASSWORD=${CP_DEMO_PASSWORD:-convertpulse-demo}
# Each service runs as its own NATS user (deploy/nats/accounts.conf).
supervise api "${no_secrets[@]}" NATS_USER=api NATS_PASSWORD="$CP_NATS_API_PASSWORD" CP_JWT_SECRET="$jwt" \
  CP_API_ADDR="127.0.0.1:$API_PORT" CP_METRICS_ADDR="127.0.0.1:$API_METRICS" "$BIN_DIR/api"
for i in 0 1; do
  supervise "ingest-$((i + 1))" "${no_secrets[@]}" NATS_USER=ingest NATS_PASSWORD="$CP_NATS_INGEST_PASSWORD" \
    CP_INGEST_ADDR="127.0.0.1:${INGEST_PORTS[$i]}" CP_METRICS_ADDR="127.0.0.1:${INGEST_METRICS[$i]}" "$BIN_DIR/ingest"
  supervise "aggregator-$((i + 1))" "${no_secrets[@]}" NATS_USER=aggregator NATS_PASSWORD="$CP_NATS_AGGREGATOR_PASSWORD" \
    CP_AGGREGATOR_ADDR="127.0.0.1:${AGG_PORTS[$i]}" CP_METRICS_ADDR="127.0.0.1:${AGG_METRICS[$i]}" "$BIN_DIR/aggregator"
done
wait_for "api" curl -fsS "http://127.0.0.1:$API_PORT/readyz"
for port in "${INGEST_PORTS[@]}"; do wait_for "ingest on $port" curl -fsS "http://127.0.0.1:$port/readyz"; done
for port in "${AGG_PORTS[@]}"; do wait_for "aggregator on $port" curl -fsS "http://127.0.0.1:$port/readyz"; done
supervise balancer "${no_secrets[@]}" haproxy -db -f "$CONF/haproxy.cfg"
api="http://127.0.0.1:$API_FRONT"
wait_for "the balancer (api)" curl -fsS "$api/readyz"
wait_for "the balancer (ingest)" curl -fsS "http://127.0.0.1:$INGEST_FRONT/readyz"

# Where each service serves /metrics: its internal listener (CP_METRICS_ADDR) when this build has
# one, else its public port. deploy/local/check-alerts.sh scrapes these.
metrics_targets=()
pair() { if curl -fsS -o /dev/null "http://127.0.0.1:$1/metrics" 2>/dev/null; then echo "127.0.0.1:$1"; else echo "127.0.0.1:$2"; fi; }
metrics_targets+=("api=$(pair "$API_METRICS" "$API_PORT")")
for i in 0 1; do
  metrics_targets+=("ingest-$((i + 1))=$(pair "${INGEST_METRICS[$i]}" "${INGEST_PORTS[$i]}")")
  metrics_targets+=("aggregator-$((i + 1))=$(pair "${AGG_METRICS[$i]}" "${AGG_PORTS[$i]}")")
done
metrics_targets+=("balancer=127.0.0.1:$STATS_PORT")
printf '%s\n' "${metrics_targets[@]}" >"$RUN_DIR/metrics-targets"

# Seed: the demo account (created once) and its site on localhost, which /demo reports to.
deploy/local/seed-demo.sh "$api" "$CP_DEMO_EMAIL" "$DEMO_PASSWORD"
cat >"$RUN_DIR/endpoints.env" <<ENV
API_URL=$api
INGEST_URL=http://127.0.0.1:$INGEST_FRONT
BALANCER_STATS=http://127.0.0.1:$STATS_PORT/stats
NATS_MONITOR=http://127.0.0.1:${MON_PORTS[0]}
ENV

if [ "$RESTART_DELAY" = off ]; then restart_note="leaves it dead (CP_CLUSTER_RESTART_DELAY=off)"; else restart_note="starts it again after $RESTART_DELAY s"; fi
cat <<MSG

  ConvertPulse cluster is running: 3 NATS nodes (R3), 2 ingest, 2 aggregators, api, HAProxy.

    Landing page   http://localhost:$API_FRONT/          Dashboard  http://localhost:$API_FRONT/dashboard
    Demo site      http://localhost:$API_FRONT/demo      Ingest     http://localhost:$INGEST_FRONT/api/events/batch
    Balancer       http://127.0.0.1:$STATS_PORT/stats (backends, health checks)
    NATS           ${MON_PORTS[*]/#/http://127.0.0.1:} (add /jsz?streams=true)
    Demo login     $CP_DEMO_EMAIL / $DEMO_PASSWORD

  Pids in $PIDS: kill -9 \$(cat $PIDS/ingest-1.pid) and the supervisor
  $restart_note (log: $LOGS/cluster.log).
  Ctrl-C stops everything.

MSG

if [ -n "${CP_AFTER_START:-}" ]; then
  set +e
  CP_RUN_DIR=$RUN_DIR bash -c "$CP_AFTER_START"
  exit $?
fi

set +e
wait
