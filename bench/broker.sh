#!/usr/bin/env bash
# Broker benchmark: the same load through (a) no proxy, (b) the broker, (c) HAProxy and
# (d) nginx doing the broker's checks, side by side in one run, plus the broker's memory;
# then the same upstream over https through (a) no proxy, (b) a broker with an https
# chat API URL and (c) HAProxy doing TLS to it; and the broker's memory with many idle
# keep-alive plugin connections.
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
# BENCH_TLS_RATE (the https variants' fixed rate, default 1000),
# BENCH_IDLE_CONNECTIONS (idle keep-alive plugin connections held open, default 2000),
# BENCH_PROFILE=1 also records a perf profile of the broker at maximum load, and of the
# https broker and HAProxy at the https rate (after the rounds),
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
TLS_UPSTREAM_PORT=$((UPSTREAM_PORT + 11))
BROKER_TLS_PORT=$((UPSTREAM_PORT + 12))
BROKER_TLS_INBOUND=$((UPSTREAM_PORT + 13))
BROKER_TLS_ADMIN=$((UPSTREAM_PORT + 14))
BROKER_TLS_PLUGIN_PORT=$((UPSTREAM_PORT + 15))
HAPROXY_TLS_PORT=$((UPSTREAM_PORT + 16))
IDLE_PORT=$((UPSTREAM_PORT + 17))
IDLE_INBOUND=$((UPSTREAM_PORT + 18))
IDLE_ADMIN=$((UPSTREAM_PORT + 19))
IDLE_PLUGIN_PORT=$((UPSTREAM_PORT + 20))
TLS_RATE=${BENCH_TLS_RATE:-1000}
IDLE_COUNT=${BENCH_IDLE_CONNECTIONS:-2000}
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
  $BASELINE_PORT $BASELINE_INBOUND $BASELINE_ADMIN $TLS_UPSTREAM_PORT $BROKER_TLS_PORT \
  $BROKER_TLS_INBOUND $BROKER_TLS_ADMIN $HAPROXY_TLS_PORT $IDLE_PORT $IDLE_INBOUND $IDLE_ADMIN; do
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
    -e "s|@TLS_UPSTREAM_PORT@|$TLS_UPSTREAM_PORT|g" -e "s|@TLS_PROXY_PORT@|$HAPROXY_TLS_PORT|g" \
    -e "s|@TLS_DIR@|$TLS_DIR|g" -e "s|@TOKEN@|$TOKEN|g" "$ROOT/bench/broker/$1" > "$RUN/$1"
}

# wait_port PORT [URL]: until something answers there (default http://127.0.0.1:PORT/).
wait_port() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null --cacert "$TLS_DIR/ca.crt" "${2:-http://127.0.0.1:$1/}"; then return 0; fi
    sleep 0.1
  done
  echo "nothing answers on 127.0.0.1:$1" >&2
  exit 1
}

# The https upstream's certificate, made for this run: a CA and a server certificate
# for localhost (and 127.0.0.1), EC P-256.
mkdir -p "$(dirname "$OUT")/tls"
TLS_DIR=$(cd "$(dirname "$OUT")/tls" && pwd)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=plugin-operator bench CA" -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2> /dev/null
openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
  -CAcreateserial -days 2 -out "$TLS_DIR/server.crt" \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2> /dev/null

# CPU seconds (user + system) of a process and its children (nginx workers).
cpu_seconds() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "scale=3; $total / $(getconf CLK_TCK)" | bc
}

vm_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

progress "upstream: nginx, fixed 200 body, 1 worker on CPU 0, 127.0.0.1:$UPSTREAM_PORT (https: $TLS_UPSTREAM_PORT)"
render upstream-nginx.conf "$UPSTREAM_PORT"
taskset -c 0 nginx -p "$RUN" -e "$RUN/upstream-error.log" -c "$RUN/upstream-nginx.conf" &
PIDS+=($!)
wait_port "$UPSTREAM_PORT"
wait_port "$TLS_UPSTREAM_PORT" "https://localhost:$TLS_UPSTREAM_PORT/"

# start_broker NAME BINARY OUTBOUND INBOUND ADMIN PLUGIN_PORT [FLAG...]: a broker on
# CPU 1, its chat API the plain upstream unless FLAGs give --chat-api-url, its audit
# lines in $RUN/NAME-audit.log; sets STARTED_PID.
start_broker() {
  progress "$1: $2 on CPU 1, outbound 127.0.0.1:$3 ${*:7}"
  local url=()
  [[ " ${*:7} " == *" --chat-api-url "* ]] || url=(--chat-api-url "http://127.0.0.1:$UPSTREAM_PORT")
  taskset -c 1 "$2" broker \
    --outbound-bind "127.0.0.1:$3" --inbound-bind "127.0.0.1:$4" \
    --admin-bind "127.0.0.1:$5" "${url[@]}" \
    --plugin-port "$6" --token-file "$RUN/token" --policy-file "$RUN/policy.json" \
    --plugin-id bench/plugin --log-format json "${@:7}" > "$RUN/$1-audit.log" 2> "$RUN/$1-stderr.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_port "$3"
}

cp "$ROOT/bench/broker/policy.json" "$RUN/policy.json"
printf '%s' "$TOKEN" > "$RUN/token"
start_broker broker "$BIN" "$BROKER_PORT" "$BROKER_INBOUND" "$BROKER_ADMIN" "$PLUGIN_PORT"
BROKER_PID=$STARTED_PID
TLS_FLAGS=(--chat-api-url "https://localhost:$TLS_UPSTREAM_PORT" --chat-api-ca-file "$TLS_DIR/ca.crt")
start_broker broker-https "$BIN" "$BROKER_TLS_PORT" "$BROKER_TLS_INBOUND" "$BROKER_TLS_ADMIN" \
  "$BROKER_TLS_PLUGIN_PORT" "${TLS_FLAGS[@]}"
BROKER_TLS_PID=$STARTED_PID

progress "haproxy $(haproxy -v | head -1 | awk '{print $3}') on CPU 1, 127.0.0.1:$HAPROXY_PORT (to https: $HAPROXY_TLS_PORT)"
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

# The https variants: the same upstream over TLS, the load generator calling it
# directly (https, verifying against the bench's CA) or through a plain-HTTP proxy that
# does TLS to it.
declare -A TLS_URL=([direct]=https://localhost:$TLS_UPSTREAM_PORT [broker]=http://127.0.0.1:$BROKER_TLS_PORT
  [haproxy]=http://127.0.0.1:$HAPROXY_TLS_PORT)
declare -A TLS_PID=([direct]=${PID[direct]} [broker]=$BROKER_TLS_PID [haproxy]=$HAPROXY_PID)
TLS_VARIANTS=(direct broker haproxy)

progress "checking that each does the same thing: the granted call 200, an ungranted one 403"
check() { # check NAME BASE_URL
  local v=${1%% *}
  ok=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.crt" "${HEADERS[@]}" "$2$REQ_PATH")
  denied=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.crt" -X POST -d '{}' "$2/api/v1/channels/C123/messages")
  unknown=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.crt" "$2/admin/secrets")
  progress "  $1: granted $ok, not granted $denied, unknown route $unknown"
  if [[ $ok != 200 ]]; then echo "$v does not forward the granted call" >&2; exit 1; fi
  if [[ $v != direct && ( $denied != 403 || $unknown != 403 ) ]]; then
    echo "$v does not deny as the broker does" >&2; exit 1
  fi
}
for v in "${VARIANTS[@]}"; do check "$v" "http://127.0.0.1:${PORT[$v]}"; done
for v in "${TLS_VARIANTS[@]}"; do check "$v https" "${TLS_URL[$v]}"; done

BROKER_IDLE_RSS=$(vm_kib "$BROKER_PID" VmRSS)
progress "broker idle: VmRSS ${BROKER_IDLE_RSS} KiB"

mkdir -p "$(dirname "$OUT")"
: > "$OUT"
record() { printf '%s\n' "$1" >> "$OUT"; }

progress "warm-up: 3 s closed loop through each"
for v in "${VARIANTS[@]}"; do
  taskset -c 0 wrk -t1 -c$CONNECTIONS_MAX -d3s "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}$REQ_PATH" > /dev/null
done
for v in "${TLS_VARIANTS[@]}"; do
  taskset -c 0 wrk -t1 -c$CONNECTIONS_MAX -d3s "${HEADERS[@]}" "${TLS_URL[$v]}$REQ_PATH" > /dev/null
done

# fixed_rate VARIANT LOAD URL PID RATE [RSS_PID]: one oha run at RATE, one JSON line.
fixed_rate() {
  local cpu0 cpu1 json rss
  cpu0=$(cpu_seconds "$4")
  json=$(taskset -c 0 "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$5" \
    -c $CONNECTIONS_FIXED --latency-correction --cacert "$TLS_DIR/ca.crt" "${HEADERS[@]}" "$3$REQ_PATH")
  cpu1=$(cpu_seconds "$4")
  rss=$( [[ -n ${6:-} ]] && vm_kib "$6" VmRSS || echo null)
  record "$(jq -c --arg v "$1" --argjson round "$round" --arg load "$2" --argjson cpu "$(echo "$cpu1 - $cpu0" | bc)" --argjson rss "$rss" '{
    variant: $v, round: $round, load: $load, tool: "oha",
    requests: ([.statusCodeDistribution[]] | add), rps: .summary.requestsPerSec,
    ok: (.statusCodeDistribution["200"] // 0),
    errors: ([.errorDistribution[]?] | add // 0),
    p50_us: (.latencyPercentiles.p50 * 1e6), p99_us: (.latencyPercentiles.p99 * 1e6),
    p999_us: (.latencyPercentiles["p99.9"] * 1e6), cpu_seconds: $cpu, rss_kib: $rss}' <<< "$json")"
}

for round in $(seq 1 "$ROUNDS"); do
  for rate in $RATES; do
    for v in "${VARIANTS[@]}"; do
      progress "round $round/$ROUNDS: fixed rate $rate/s for ${DURATION}s: $v"
      fixed_rate "$v" "$rate/s" "http://127.0.0.1:${PORT[$v]}" "${PID[$v]}" "$rate" \
        "$( [[ $v == broker ]] && echo "$BROKER_PID")"
    done
  done

  for v in "${TLS_VARIANTS[@]}"; do
    progress "round $round/$ROUNDS: fixed rate $TLS_RATE/s for ${DURATION}s, chat API over https: $v"
    fixed_rate "$v" "$TLS_RATE/s https" "${TLS_URL[$v]}" "${TLS_PID[$v]}" "$TLS_RATE" \
      "$( [[ $v == broker ]] && echo "$BROKER_TLS_PID")"
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

# The https broker and HAProxy profiled at the https rate, after the rounds (a run not
# recorded, so the profiler's cost is in no measurement).
if [[ ${BENCH_PROFILE:-0} == 1 ]] && command -v perf > /dev/null; then
  for v in broker haproxy; do
    progress "profile: $v at $TLS_RATE/s, chat API over https (perf record, 5 s)"
    ( sleep 2; perf record -F 4999 -g -p "${TLS_PID[$v]}" -o "$(dirname "$OUT")/$v-https.perf.data" -- sleep 5 > /dev/null 2>&1 ) &
    profiler=$!
    taskset -c 0 "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$TLS_RATE" -c $CONNECTIONS_FIXED \
      --latency-correction "${HEADERS[@]}" "${TLS_URL[$v]}$REQ_PATH" > /dev/null
    wait "$profiler"
  done
fi

record "$(jq -nc --argjson idle "$BROKER_IDLE_RSS" --argjson rss "$(vm_kib "$BROKER_PID" VmRSS)" \
  --argjson hwm "$(vm_kib "$BROKER_PID" VmHWM)" --argjson lines "$(wc -l < "$RUN/broker-audit.log")" \
  '{variant: "broker-memory", rss_idle_kib: $idle, rss_end_kib: $rss, hwm_kib: $hwm, audit_lines: $lines}')"
progress "broker memory: idle ${BROKER_IDLE_RSS} KiB, peak $(vm_kib "$BROKER_PID" VmHWM) KiB"

# The broker container's memory limit, as the operator sets it (src/controller/desired/pod.rs).
LIMIT=$(sed -n 's/^const BROKER_LIMITS: \[&str; 3\] = \["[^"]*", "\([0-9]*\)Mi".*/\1/p' \
  "$ROOT/src/controller/desired/pod.rs")
if [[ -z $LIMIT ]]; then echo "no Mi memory limit in BROKER_LIMITS of src/controller/desired/pod.rs" >&2; exit 1; fi

# established PORT [PID]: ESTABLISHED TCP sockets on 127.0.0.1 with local port PORT, or
# with PID: the sockets of process PID connected to PORT.
established() {
  if [[ -n ${2:-} ]]; then
    ss -Htnp state established "( dport = :$1 )" | grep -c "pid=$2," || true
  else
    ss -Htn state established "( sport = :$1 )" | wc -l
  fi
}

# idle_connections NAME OUTBOUND_PORT BROKER_PID UPSTREAM_PORT HOLD_SECONDS DEADLINE:
# opens IDLE_COUNT keep-alive connections, one completed request on each (64 at a time,
# for at most DEADLINE seconds), holds them idle, and reads the broker's VmRSS and the open sockets while they are held
# (after 2 s idle, and once more after HOLD_SECONDS). Sets IDLE_JSON.
idle_connections() {
  local ready=$RUN/$1-ready held=$RUN/$1-held rss_before rss_with hwm plugin_side upstream_side
  rss_before=$(vm_kib "$3" VmRSS)
  python3 "$ROOT/bench/broker/idle.py" "$2" "$REQ_PATH" "$IDLE_COUNT" "$ready" --window 64 \
    --deadline "$6" --hold-file "$held" > "$RUN/$1-idle.json" &
  local tool=$!
  PIDS+=("$tool")
  while [[ ! -f $ready ]]; do sleep 0.1; done
  sleep 2
  rss_with=$(vm_kib "$3" VmRSS)
  hwm=$(vm_kib "$3" VmHWM)
  plugin_side=$(established "$2")
  upstream_side=$(established "$4" "$3")
  sleep "$5"
  touch "$held"
  wait "$tool"
  IDLE_JSON=$(jq -c --argjson before "$rss_before" --argjson with "$rss_with" --argjson hwm "$hwm" \
    --argjson plugin "$plugin_side" --argjson upstream "$upstream_side" --argjson limit "$((LIMIT * 1024))" \
    --argjson hold "$5" '. + {rss_before_kib: $before, rss_with_kib: $with, hwm_kib: $hwm,
      established_plugin_side: $plugin, established_upstream_side: $upstream, limit_kib: $limit,
      still_open_after_seconds: ($hold + 2)}' < "$RUN/$1-idle.json")
}

# A fresh broker per chat API scheme, its cap and header read timeout raised so that
# IDLE_COUNT connections can be open and stay open while they are measured.
for scheme in https http; do
  flags=(--max-outbound-connections "$IDLE_COUNT" --header-read-timeout 300s)
  upstream=$UPSTREAM_PORT
  if [[ $scheme == https ]]; then flags+=("${TLS_FLAGS[@]}"); upstream=$TLS_UPSTREAM_PORT; fi
  start_broker "idle-$scheme" "$BIN" "$IDLE_PORT" "$IDLE_INBOUND" "$IDLE_ADMIN" "$IDLE_PLUGIN_PORT" "${flags[@]}"
  idle_pid=$STARTED_PID
  curl -s -o /dev/null "${HEADERS[@]}" "http://127.0.0.1:$IDLE_PORT$REQ_PATH"
  sleep 1
  progress "$IDLE_COUNT idle keep-alive connections to a fresh broker (chat API $scheme, ${flags[*]:0:4})"
  idle_connections "idle-$scheme" "$IDLE_PORT" "$idle_pid" "$upstream" 3 60
  record "$(jq -c --arg scheme "$scheme" --argjson cap "$IDLE_COUNT" \
    '{variant: "broker-idle", chat_api: $scheme, max_outbound_connections: $cap, header_read_timeout_s: 300} + .' <<< "$IDLE_JSON")"
  progress "  $IDLE_JSON"
  kill "$idle_pid"
  wait "$idle_pid" 2> /dev/null || true
done

# The same with the defaults (--max-outbound-connections 256, --header-read-timeout 10s),
# on the plain broker after its loads: how many are served, and how many of those the
# broker has closed after 12 s idle.
progress "$IDLE_COUNT idle keep-alive connections to the broker with its defaults"
idle_connections default "$BROKER_PORT" "$BROKER_PID" "$UPSTREAM_PORT" 10 5
record "$(jq -c '{variant: "broker-idle-default", chat_api: "http", max_outbound_connections: 256, header_read_timeout_s: 10} + .' <<< "$IDLE_JSON")"
progress "  $IDLE_JSON"
progress "results: $OUT"
