#!/usr/bin/env bash
# Broker benchmark: the same load through (a) no proxy, (b) the broker, (c) HAProxy and
# (d) nginx doing the broker's checks, side by side in one run, plus the broker's memory.
#
# Every proxy runs pinned to CPU 1 (taskset -c 1); the load generator and the upstream
# (nginx returning a fixed 200 body) run on CPU 0. Loads: fixed rates with oha
# (--latency-correction, so queueing is not hidden) and a closed-loop maximum with wrk.
#
# Every measurement is repeated in BENCH_ROUNDS rounds (default 3), the variants taking
# turns within each round, so a slow moment of a shared machine hits all of them alike;
# the report gives medians over the rounds.
#
# Environment: BROKER_BIN (default target/release/plugin-operator), BENCH_SECONDS (per
# run, default 10), BENCH_RATES (default "1000 5000"), BENCH_ROUNDS (default 3),
# BENCH_OUT (JSON lines file),
# BENCH_PROFILE=1 also records a perf profile of the broker at maximum load,
# BROKER_BASELINE_BIN adds a second broker build (variant "baseline", e.g. the build
# before a change) that takes its turn in every round like the others.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BROKER_BIN:-$ROOT/target/release/plugin-operator}
DURATION=${BENCH_SECONDS:-10}
RATES=${BENCH_RATES:-1000 5000}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-$ROOT/build/bench/broker.jsonl}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
CONNECTIONS_FIXED=16
CONNECTIONS_MAX=32

UPSTREAM_PORT=${BENCH_PORT_BASE:-28080}
BROKER_PORT=$((UPSTREAM_PORT + 1))
BROKER_INBOUND=$((UPSTREAM_PORT + 2))
BROKER_ADMIN=$((UPSTREAM_PORT + 3))
HAPROXY_PORT=$((UPSTREAM_PORT + 4))
NGINX_PORT=$((UPSTREAM_PORT + 5))
PLUGIN_PORT=$((UPSTREAM_PORT + 6))
BASELINE_PORT=$((UPSTREAM_PORT + 7))
BASELINE_INBOUND=$((UPSTREAM_PORT + 8))
BASELINE_ADMIN=$((UPSTREAM_PORT + 9))
BASELINE_PLUGIN_PORT=$((UPSTREAM_PORT + 10))
BASELINE_BIN=${BROKER_BASELINE_BIN:-}
if [[ -n $BASELINE_BIN && ! -x $BASELINE_BIN ]]; then
  echo "BROKER_BASELINE_BIN=$BASELINE_BIN is not an executable file" >&2
  exit 1
fi
TOKEN=bench-broker-token-0123456789abcdef

REQ_PATH=/api/v1/channels/C123/messages?limit=10
HEADERS=(-H "Authorization: Bearer plugin-own-secret" -H "Cookie: session=plugin-cookie" -H "Accept: application/json")

source "$ROOT/scripts/steps.sh"

for port in $UPSTREAM_PORT $BROKER_PORT $BROKER_INBOUND $BROKER_ADMIN $HAPROXY_PORT $NGINX_PORT \
  $BASELINE_PORT $BASELINE_INBOUND $BASELINE_ADMIN; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    echo "port $port on 127.0.0.1 is in use; set BENCH_PORT_BASE to a free range" >&2
    exit 1
  fi
done

RUN=$(mktemp -d /tmp/bench-broker.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT

render() {
  sed -e "s|@RUN@|$RUN|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@PROXY_PORT@|$2|g" \
    -e "s|@TOKEN@|$TOKEN|g" "$ROOT/bench/broker/$1" > "$RUN/$1"
}

wait_port() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
    sleep 0.1
  done
  echo "nothing answers on 127.0.0.1:$1" >&2
  exit 1
}

# CPU seconds (user + system) of a process and its children (nginx workers).
cpu_seconds() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "scale=3; $total / $(getconf CLK_TCK)" | bc
}

vm_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

progress "upstream: nginx, fixed 200 body, 1 worker on CPU 0, 127.0.0.1:$UPSTREAM_PORT"
render upstream-nginx.conf "$UPSTREAM_PORT"
taskset -c 0 nginx -p "$RUN" -e "$RUN/upstream-error.log" -c "$RUN/upstream-nginx.conf" &
PIDS+=($!)
wait_port "$UPSTREAM_PORT"

# start_broker NAME BINARY OUTBOUND INBOUND ADMIN PLUGIN_PORT: a broker on CPU 1, its
# audit lines in $RUN/NAME-audit.log; sets STARTED_PID.
start_broker() {
  progress "$1: $2 on CPU 1, outbound 127.0.0.1:$3"
  taskset -c 1 "$2" broker \
    --outbound-bind "127.0.0.1:$3" --inbound-bind "127.0.0.1:$4" \
    --admin-bind "127.0.0.1:$5" --chat-api-url "http://127.0.0.1:$UPSTREAM_PORT" \
    --plugin-port "$6" --token-file "$RUN/token" --policy-file "$RUN/policy.json" \
    --plugin-id bench/plugin --log-format json > "$RUN/$1-audit.log" 2> "$RUN/$1-stderr.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_port "$3"
}

cp "$ROOT/bench/broker/policy.json" "$RUN/policy.json"
printf '%s' "$TOKEN" > "$RUN/token"
start_broker broker "$BIN" "$BROKER_PORT" "$BROKER_INBOUND" "$BROKER_ADMIN" "$PLUGIN_PORT"
BROKER_PID=$STARTED_PID

progress "haproxy $(haproxy -v | head -1 | awk '{print $3}') on CPU 1, 127.0.0.1:$HAPROXY_PORT"
render haproxy.cfg "$HAPROXY_PORT"
taskset -c 1 haproxy -db -f "$RUN/haproxy.cfg" > "$RUN/haproxy.log" 2>&1 &
PIDS+=($!)
HAPROXY_PID=$!
wait_port "$HAPROXY_PORT"

progress "nginx $(nginx -v 2>&1 | awk -F/ '{print $2}') as proxy on CPU 1, 127.0.0.1:$NGINX_PORT"
render proxy-nginx.conf "$NGINX_PORT"
taskset -c 1 nginx -p "$RUN" -e "$RUN/proxy-nginx-error.log" -c "$RUN/proxy-nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT"

declare -A PORT=([direct]=$UPSTREAM_PORT [broker]=$BROKER_PORT [haproxy]=$HAPROXY_PORT [nginx]=$NGINX_PORT)
declare -A PID=([direct]=$(cat "$RUN/upstream.pid") [broker]=$BROKER_PID [haproxy]=$HAPROXY_PID [nginx]=$NGINX_PID)
VARIANTS=(direct broker haproxy nginx)

if [[ -n $BASELINE_BIN ]]; then
  start_broker baseline "$BASELINE_BIN" "$BASELINE_PORT" "$BASELINE_INBOUND" "$BASELINE_ADMIN" \
    "$BASELINE_PLUGIN_PORT"
  PORT[baseline]=$BASELINE_PORT
  PID[baseline]=$STARTED_PID
  VARIANTS=(direct broker baseline haproxy nginx)
fi

progress "checking that each does the same thing: the granted call 200, an ungranted one 403"
for v in "${VARIANTS[@]}"; do
  ok=$(curl -s -o /dev/null -w '%{http_code}' "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}$REQ_PATH")
  denied=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "http://127.0.0.1:${PORT[$v]}/api/v1/channels/C123/messages")
  unknown=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$v]}/admin/secrets")
  progress "  $v: granted $ok, not granted $denied, unknown route $unknown"
  if [[ $ok != 200 ]]; then echo "$v does not forward the granted call" >&2; exit 1; fi
  if [[ $v != direct && ( $denied != 403 || $unknown != 403 ) ]]; then
    echo "$v does not deny as the broker does" >&2; exit 1
  fi
done

BROKER_IDLE_RSS=$(vm_kib "$BROKER_PID" VmRSS)
progress "broker idle: VmRSS ${BROKER_IDLE_RSS} KiB"

mkdir -p "$(dirname "$OUT")"
: > "$OUT"
record() { printf '%s\n' "$1" >> "$OUT"; }

progress "warm-up: 3 s closed loop through each"
for v in "${VARIANTS[@]}"; do
  taskset -c 0 wrk -t1 -c$CONNECTIONS_MAX -d3s "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}$REQ_PATH" > /dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for rate in $RATES; do
    for v in "${VARIANTS[@]}"; do
      progress "round $round/$ROUNDS: fixed rate $rate/s for ${DURATION}s: $v"
      cpu0=$(cpu_seconds "${PID[$v]}")
      json=$(taskset -c 0 "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$rate" \
        -c $CONNECTIONS_FIXED --latency-correction "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}$REQ_PATH")
      cpu1=$(cpu_seconds "${PID[$v]}")
      rss=$( [[ $v == broker ]] && vm_kib "$BROKER_PID" VmRSS || echo null)
      record "$(jq -c --arg v "$v" --argjson round "$round" --arg load "$rate/s" --argjson cpu "$(echo "$cpu1 - $cpu0" | bc)" --argjson rss "$rss" '{
        variant: $v, round: $round, load: $load, tool: "oha",
        requests: ([.statusCodeDistribution[]] | add), rps: .summary.requestsPerSec,
        ok: (.statusCodeDistribution["200"] // 0),
        errors: ([.errorDistribution[]?] | add // 0),
        p50_us: (.latencyPercentiles.p50 * 1e6), p99_us: (.latencyPercentiles.p99 * 1e6),
        p999_us: (.latencyPercentiles["p99.9"] * 1e6), cpu_seconds: $cpu, rss_kib: $rss}' <<< "$json")"
    done
  done

  for v in "${VARIANTS[@]}"; do
    progress "round $round/$ROUNDS: closed-loop maximum, $CONNECTIONS_MAX connections, ${DURATION}s: $v"
    cpu0=$(cpu_seconds "${PID[$v]}")
    SAMPLERS=()
    if [[ $v == broker ]]; then
      ( sleep $((DURATION / 2)); vm_kib "$BROKER_PID" VmRSS > "$RUN/broker-load-rss" ) &
      SAMPLERS+=($!)
      if [[ ${BENCH_PROFILE:-0} == 1 && $round == 1 ]] && command -v perf > /dev/null; then
        ( sleep 2; perf record -F 999 -g -p "$BROKER_PID" -o "$(dirname "$OUT")/broker.perf.data" -- sleep 5 > /dev/null 2>&1 ) &
        SAMPLERS+=($!)
      fi
    fi
    line=$(taskset -c 0 wrk -t1 -c$CONNECTIONS_MAX -d"${DURATION}s" -s "$ROOT/bench/broker/report.lua" \
      "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}$REQ_PATH" | tail -n 1)
    cpu1=$(cpu_seconds "${PID[$v]}")
    for sampler in "${SAMPLERS[@]}"; do wait "$sampler"; done
    rss=$( [[ $v == broker ]] && cat "$RUN/broker-load-rss" || echo null)
    record "$(jq -c --arg v "$v" --argjson round "$round" --argjson cpu "$(echo "$cpu1 - $cpu0" | bc)" --argjson rss "$rss" \
      '{variant: $v, round: $round, load: "max", tool: "wrk", requests, rps, ok: (.requests - .non2xx - .errors), errors: (.errors + .non2xx),
        p50_us, p99_us, p999_us, cpu_seconds: $cpu, rss_kib: $rss}' <<< "$line")"
  done
done

record "$(jq -nc --argjson idle "$BROKER_IDLE_RSS" --argjson rss "$(vm_kib "$BROKER_PID" VmRSS)" \
  --argjson hwm "$(vm_kib "$BROKER_PID" VmHWM)" --argjson lines "$(wc -l < "$RUN/broker-audit.log")" \
  '{variant: "broker-memory", rss_idle_kib: $idle, rss_end_kib: $rss, hwm_kib: $hwm, audit_lines: $lines}')"
progress "broker memory: idle ${BROKER_IDLE_RSS} KiB, peak $(vm_kib "$BROKER_PID" VmHWM) KiB"
progress "results: $OUT"
