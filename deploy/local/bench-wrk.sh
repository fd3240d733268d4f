#!/usr/bin/env bash
# Ingest against a bare axum handler, measured with an independent client (wrk) in one run.
#
# Starts a fresh release stack in a temporary folder (NATS with JetStream, the MongoDB-wire server
# and the api only to create the site; no aggregator), the bare handler `ingest-baseline`, then
# runs wrk with deploy/bench/wrk-batch.lua (realistic 5-event batches of about 1 KB, each one
# unique) against the baseline and against ingest, alternating, and prints per round and in
# total: requests/s, the ratio ingest/baseline, and CPU µs per accepted batch of ingest and of
# nats-server (from /proc/<pid>/stat utime+stime).
#
# Tunables: WRK_THREADS (2), WRK_CONNECTIONS (64), WRK_DURATION seconds (10), WRK_ROUNDS (2),
# BENCH_RUST_LOG (info, the level `make run` ships with),
# WRK_PERF=1 records a perf profile of ingest (of nats-server with WRK_PERF_TARGET=nats) during
# its last round (copied to /tmp/cp-ingest-perf.data), WRK_PERF=syscalls counts its system calls per accepted batch.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--measure" ]; then
  # ---- phase 2: the stack is up (run.sh runs this as CP_AFTER_START) ----
  api="http://$CP_API_ADDR"
  ingest="http://$CP_INGEST_ADDR"
  baseline="http://$BENCH_BASELINE_ADDR"
  origin="https://www.example-shop.com"
  threads=${WRK_THREADS:-2} conns=${WRK_CONNECTIONS:-64} secs=${WRK_DURATION:-10} rounds=${WRK_ROUNDS:-2}
  json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

  body=$(printf '{"email":"%s","password":"%s"}' "$CP_DEMO_EMAIL" "${CP_DEMO_PASSWORD:-convertpulse-demo}")
  token=$(curl -fsS -H 'content-type: application/json' -d "$body" "$api/api/auth/login" | json "['token']")
  key=$(curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"wrk bench","domain":"example-shop.com","timezone":"UTC"}' "$api/api/sites" | json "['api_key']")

  # Ingest learns a new key through the key-value watch: wait until a probe from a foreign
  # origin is refused for its origin (403), which means the key is known and counts nothing.
  probe=$(printf '{"key":"%s","batch_id":"probe_0001","session_id":"probe_0001","events":[{"type":"time","ts":1,"page_id":"probe_0001","url":"https://www.example-shop.com/","seconds":1}]}' "$key")
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'origin: https://elsewhere.test' -d "$probe" "$ingest/api/events/batch")
    [ "$code" = 403 ] && break
    sleep 0.05
  done
  [ "$code" = 403 ] || { echo "!! ingest never learnt the bench key (last probe: $code)" >&2; exit 1; }

  pid_on() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
  ingest_pid=$(pid_on "${CP_INGEST_ADDR##*:}")
  nats_pid=$(pid_on "${NATS_URL##*:}")
  base_pid=$(pid_on "${BENCH_BASELINE_ADDR##*:}")
  tck=$(getconf CLK_TCK)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  group_counts() {
    curl -fsS "http://$CP_INGEST_METRICS_ADDR/metrics" | awk '
      /^convertpulse_ingest_publish_group_batches_sum/ {s = $2}
      /^convertpulse_ingest_publish_group_batches_count/ {c = $2}
      /^convertpulse_ingest_publish_seconds_sum/ {ws = $2}
      /^convertpulse_ingest_publish_seconds_count/ {wc = $2}
      END {printf "%d %d %.6f %d", s, c, ws, wc}'
  }

  # run_wrk URL SECONDS -> sets rps_ok, ok (2xx requests), p50_us, p99_us, non2xx, wrk_us (the
  # load client's own CPU per request: `times` in the subshell reports its child, wrk)
  run_wrk() {
    local out line
    out=$(wrk -t"$threads" -c"$conns" -d"$2"s --latency -s deploy/bench/wrk-batch.lua "$1" -- "$key" "$origin" "${WRK_BUILD:-pool}"; times)
    line=$(echo "$out" | grep '^WRK_RESULT')
    eval "$(echo "$line" | sed 's/^WRK_RESULT //')"
    ok=$((requests - non2xx))
    rps_ok=$(awk -v n="$ok" -v s="$seconds" 'BEGIN {printf "%.0f", n / s}')
    wrk_us=$(echo "$out" | tail -1 | awk -v n="$requests" '{
      split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.1f", n ? ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * 1e6 / n : 0 }')
  }

  echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'): -t$threads -c$conns -d${secs}s, deploy/bench/wrk-batch.lua (5 events, ~1 KB, unique batch ids)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  run_wrk "$baseline" 2 >/dev/null; run_wrk "$ingest" 2 >/dev/null   # warm-up (connections, caches, JIT)

  total_base=0 total_ingest=0 total_ok=0 total_ingest_ticks=0 total_nats_ticks=0 total_base_ticks=0 total_base_ok=0
  for round in $(seq 1 "$rounds"); do
    b0=$(cpu_ticks "$base_pid")
    run_wrk "$baseline" "$secs"
    b1=$(cpu_ticks "$base_pid")
    base_rps=$rps_ok base_p99=$p99_us base_ok=$ok base_wrk_us=$wrk_us

    i0=$(cpu_ticks "$ingest_pid"); n0=$(cpu_ticks "$nats_pid"); g0=$(group_counts)
    if [ "${WRK_PERF:-0}" = 1 ] && [ "$round" = "$rounds" ]; then
      perf_target=$ingest_pid
      [ "${WRK_PERF_TARGET:-ingest}" = nats ] && perf_target=$nats_pid
      perf record -F 999 -g -o "$CP_RUN_DIR/perf.data" -p "$perf_target" -- sleep "$secs" >/dev/null 2>&1 &
      perf_pid=$!
    elif [ "${WRK_PERF:-0}" = syscalls ] && [ "$round" = "$rounds" ]; then
      perf stat -x, -o "$CP_RUN_DIR/syscalls.csv" -p "$ingest_pid" \
        -e 'syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_sendto' \
        -- sleep "$secs" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    run_wrk "$ingest" "$secs"
    i1=$(cpu_ticks "$ingest_pid"); n1=$(cpu_ticks "$nats_pid"); g1=$(group_counts)
    # Batches per stream message (group commit): sum and count of the histogram over the round.
    per_msg=$(echo "$g0 $g1" | awk '{printf "%.1f", ($6 - $2) ? ($5 - $1) / ($6 - $2) : 0}')
    # Mean time from a batch's submit to its ack (queue wait included), over the round.
    wait_us=$(echo "$g0 $g1" | awk '{printf "%.0f", ($8 - $4) ? ($7 - $3) * 1e6 / ($8 - $4) : 0}')
    [ -n "${perf_pid:-}" ] && wait "$perf_pid" || true

    ingest_us=$(awk -v t=$((i1 - i0)) -v k="$tck" -v n="$ok" 'BEGIN {printf "%.1f", n ? t * 1e6 / k / n : 0}')
    nats_us=$(awk -v t=$((n1 - n0)) -v k="$tck" -v n="$ok" 'BEGIN {printf "%.1f", n ? t * 1e6 / k / n : 0}')
    base_us=$(awk -v t=$((b1 - b0)) -v k="$tck" -v n="$base_ok" 'BEGIN {printf "%.1f", n ? t * 1e6 / k / n : 0}')
    ratio=$(awk -v a="$rps_ok" -v b="$base_rps" 'BEGIN {printf "%.2f", a / b}')
    printf 'round %d: baseline %6d/s (p99 %d µs, CPU %s µs/req) | ingest %6d accepted/s (p99 %d µs, %d refused) | ratio %s | ingest CPU %s µs/batch, nats-server %s µs/batch | wrk CPU %s / %s µs/req | %s batches/message, mean wait for the ack %s µs\n' \
      "$round" "$base_rps" "$base_p99" "$base_us" "$rps_ok" "$p99_us" "$non2xx" "$ratio" "$ingest_us" "$nats_us" "$base_wrk_us" "$wrk_us" "$per_msg" "$wait_us"
    total_base=$((total_base + base_rps)) total_ingest=$((total_ingest + rps_ok)) total_ok=$((total_ok + ok))
    total_base_ok=$((total_base_ok + base_ok))
    total_ingest_ticks=$((total_ingest_ticks + i1 - i0)) total_nats_ticks=$((total_nats_ticks + n1 - n0))
    total_base_ticks=$((total_base_ticks + b1 - b0))
  done
  awk -v b="$total_base" -v i="$total_ingest" -v r="$rounds" -v it="$total_ingest_ticks" -v nt="$total_nats_ticks" \
      -v bt="$total_base_ticks" -v n="$total_ok" -v bn="$total_base_ok" -v k="$tck" 'BEGIN {
    printf "TOTAL baseline %.0f/s | ingest %.0f accepted/s | ratio %.2f | ingest CPU %.1f µs/batch | nats-server CPU %.1f µs/batch | baseline CPU %.1f µs/req\n",
      b / r, i / r, i / b, it * 1e6 / k / n, nt * 1e6 / k / n, bt * 1e6 / k / bn }'
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "${WRK_PERF:-0}" = syscalls ]; then
    echo "ingest system calls per accepted batch (last round):"
    awk -F, -v n="$ok" '/syscalls:/ {sub("syscalls:sys_enter_", "", $3); printf "  %-12s %.2f\n", $3, $1 / n}' "$CP_RUN_DIR/syscalls.csv"
  fi
  if [ "${WRK_PERF:-0}" = 1 ]; then
    cp "$CP_RUN_DIR/perf.data" /tmp/cp-ingest-perf.data
    echo "perf profile of ingest: /tmp/cp-ingest-perf.data (perf report -i /tmp/cp-ingest-perf.data --no-children)"
  fi
  exit 0
fi

# ---- phase 1: start the baseline and the stack, then run phase 2 inside it ----
command -v wrk >/dev/null || { echo "!! wrk is missing: run deploy/local/deps.sh --bench" >&2; exit 1; }
for bin in ingest api ingest-baseline; do
  [ -x "${CP_BIN_DIR:-target/release}/$bin" ] || { echo "!! ${CP_BIN_DIR:-target/release}/$bin is missing: cargo build --release --bins" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/cp-bench-wrk.XXXXXX)
cleanup() { [ -n "${base_pid:-}" ] && kill "$base_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

export BENCH_BASELINE_ADDR=127.0.0.1:18190 \
  CP_API_METRICS_ADDR=127.0.0.1:19180 CP_INGEST_METRICS_ADDR=127.0.0.1:19181 CP_AGGREGATOR_METRICS_ADDR=127.0.0.1:19182
"${CP_BIN_DIR:-target/release}"/ingest-baseline "$BENCH_BASELINE_ADDR" >/dev/null &
base_pid=$!

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); nats-server $(nats-server --version | awk '{print $NF}')"
export CP_RUN_DIR="$dir" NATS_URL=nats://127.0.0.1:14322 MONGODB_DB=convertpulse_bench_wrk \
  CP_API_ADDR=127.0.0.1:18180 CP_INGEST_ADDR=127.0.0.1:18181 CP_AGGREGATOR_ADDR=127.0.0.1:18182 \
  CP_TRUSTED_PROXIES=127.0.0.1 CP_RATE_LIMIT_KEY_PER_SEC=1000000 CP_RATE_LIMIT_KEY_BURST=1000000 \
  CP_STREAM_MAX_MSGS_PER_SITE=1000000000 \
  RUST_LOG=${BENCH_RUST_LOG:-info} CP_SKIP_AGGREGATOR=1
# No aggregator drains the stream during the bench: room for a few million batches, so that
# a full stream (503), or the one site's share of it (429, lifted above), does not end the
# measurement early.
export CP_STREAM_MAX_BYTES=$((8 << 30))
if [ -z "${MONGODB_URI:-}" ]; then export CP_BENCH_NX_PORT=27217; fi
export CP_AFTER_START="deploy/local/bench-wrk.sh --measure"
set +e
# run.sh prints its welcome banner; only the measurements matter here.
deploy/local/run.sh | grep -Ev '^$|^ {2,}(ConvertPulse is running|Landing page|Dashboard|Demo|Ingest|Metrics|Logs in)'
exit "${PIPESTATUS[0]}"
