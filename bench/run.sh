#!/usr/bin/env bash
# `make bench`: every benchmark, side by side in one run, from a fresh clone.
#
#   1. tools: haproxy, nginx, wrk (apt), oha (cargo install), if missing
#   2. release build of plugin-operator and the benchmark programs
#   3. broker: direct vs broker vs HAProxy vs nginx; direct vs broker vs HAProxy with the
#      chat API over https; the broker with 2,000 idle plugin connections (bench/broker.sh)
#   4. operator: the floor (bench/convergence/floor.rs), then the operator
#      (bench/convergence/operator.rs) on the local cluster, 1,000 Plugins each, in rounds;
#      the kube-controller-manager's client limit in force is read and reported
#   5. drift: a NetworkPolicy opened by hand 20 times, each timed until the operator has
#      put it back (bench/convergence/drift.rs)
#   6. ready: apply → Ready with real pods (bench/convergence/ready.rs): 50 bare
#      Deployments of the operator's pod template (the floor) and 50 Plugins, at once, in
#      rounds; then 20 single Plugins one after another. The broker and sample plugin
#      images are built statically and loaded into the node as
#      localhost/{plugin-operator,sample-plugin}:$BENCH_IMAGE_TAG (default bench) first.
#   7. the tables (bench/report.py) into build/bench/latest.md
#
# BENCH_ONLY=broker|operator|drift|ready runs one part; BENCH_PLUGINS (1000), BENCH_SECONDS (10),
# BENCH_STEADY_SECONDS (60), BENCH_ROUNDS (broker, 3) and BENCH_OPERATOR_ROUNDS (2)
# change the sizes (the ready part: BENCH_READY_PLUGINS (50), BENCH_READY_ROUNDS (2),
# BENCH_READY_TRIES (20)). Repeated rounds take turns, and the report gives medians. The
# operator's results go to build/bench/plugins-N/, so a run at 1,000 and one at 10,000
# (BENCH_PLUGINS=10000 BENCH_STEADY_SECONDS=120) both show in the report.
# BROKER_BASELINE_BIN=<a broker binary> adds it as a fifth variant, "baseline" (before
# and after a change, in the same rounds). If a step has to start the local cluster, the
# cluster is stopped again at the end (BENCH_KEEP_CLUSTER=1 keeps it); the ready part
# adds the local node (real pods) to a cluster that has none.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ONLY=${BENCH_ONLY:-all}
PLUGINS=${BENCH_PLUGINS:-1000}
STEADY=${BENCH_STEADY_SECONDS:-60}
OPERATOR_ROUNDS=${BENCH_OPERATOR_ROUNDS:-2}
OUT=$ROOT/build/bench
RELEASE=${CARGO_TARGET_DIR:-$ROOT/target}/release
export KUBECONFIG=${KUBECONFIG:-$ROOT/build/cluster/kubeconfig}
mkdir -p "$OUT"

source "$ROOT/scripts/steps.sh"
STEP_TOTAL=7
STEP_OUTER=1

# A cluster this script starts is stopped again when it ends, on success or failure;
# BENCH_KEEP_CLUSTER=1 leaves it running. A cluster that was already up is left alone.
STARTED_CLUSTER=0
stop_started_cluster() {
  if ((STARTED_CLUSTER)) && [[ ${BENCH_KEEP_CLUSTER:-0} != 1 ]]; then
    echo "   stopping the local cluster this benchmark started (make cluster-down)" >&2
    make --no-print-directory cluster-down > /dev/null || echo "   make cluster-down failed; run it by hand" >&2
  fi
}
trap stop_started_cluster EXIT

step "tools"
missing=()
for tool in haproxy nginx wrk; do command -v "$tool" > /dev/null || missing+=("$tool"); done
for tool in jq bc curl taskset; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  packages=$(printf '%s\n' "${missing[@]}" | sed 's/^taskset$/util-linux/' | sort -u | tr '\n' ' ')
  echo "   installing $packages with apt-get" >&2
  SUDO=$( [[ $(id -u) == 0 ]] && echo "" || echo sudo )
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $packages > /dev/null
fi
if ! command -v oha > /dev/null && [[ ! -x $HOME/.cargo/bin/oha ]]; then
  echo "   installing oha with cargo install (a few minutes)" >&2
  cargo install oha --locked
fi
export OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
echo "   $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $("$OHA" --version)" >&2

if [[ $ONLY == broker ]]; then
  step "release build (plugin-operator)"
  cargo build --release --bin plugin-operator
else
  step "release build (plugin-operator; bench/convergence as examples bench-operator, bench-floor, bench-drift, bench-ready)"
  cargo build --release --bin plugin-operator --example bench-operator --example bench-floor --example bench-drift \
    --example bench-ready
fi

# The local cluster, started (and stopped at the end) when none answers. `ensure_cluster
# node` (the ready part: real pods) also adds the local node to a cluster without one.
ensure_cluster() {
  local node=0
  [[ ${1:-} == node ]] && node=1
  KUBECTL=$(ls "$HOME"/.cache/plugin-operator/k8s-*/bin/kubectl 2> /dev/null | tail -n 1 || true)
  if [[ ! -f $KUBECONFIG || -z $KUBECTL ]] || ! "$KUBECTL" get --raw /readyz > /dev/null 2>&1; then
    echo "   no cluster answers; starting the local cluster (make cluster-up NODE=$node)" >&2
    STARTED_CLUSTER=1
    make --no-print-directory cluster-up NODE=$node
  elif ((node)) && [[ -z $("$KUBECTL" get nodes -o name 2> /dev/null) ]]; then
    echo "   the cluster has no node to run pods on; adding the local node (make cluster-up NODE=1)" >&2
    make --no-print-directory cluster-up NODE=1
  fi
}

if [[ $ONLY == all || $ONLY == broker ]]; then
  step "broker: direct, broker, HAProxy, nginx; ${BENCH_RATES:-1000 5000}/s fixed and closed-loop max; https chat API; idle connections"
  BROKER_BIN=$RELEASE/plugin-operator BENCH_OUT=$OUT/broker.jsonl bench/broker.sh
else
  step "broker: skipped (BENCH_ONLY=$ONLY)"
fi

if [[ $ONLY == all || $ONLY == operator ]]; then
  step "operator: $PLUGINS Plugins, floor then operator (KUBECONFIG=$KUBECONFIG)"
  ensure_cluster
  # The deployment controller's client limit decides when the Plugins can be Ready;
  # docs/local-cluster.md says how the local cluster gets 100/200.
  kcm=$(pgrep -x kube-controller || true)
  limit=$( [[ -n $kcm ]] && tr '\0' '\n' < "/proc/${kcm%%$'\n'*}/cmdline" | grep -E '^--kube-api-(qps|burst)=' | tr '\n' ' ' )
  echo "   kube-controller-manager client limit: ${limit:-the defaults (qps 20, burst 30)}" >&2
  PLUGINS_OUT=$OUT/plugins-$PLUGINS
  mkdir -p "$PLUGINS_OUT"
  rm -f "$PLUGINS_OUT"/floor-*.json "$PLUGINS_OUT"/operator-*.json
  for round in $(seq 1 "$OPERATOR_ROUNDS"); do
    echo "   round $round/$OPERATOR_ROUNDS, floor: $PLUGINS Plugins and their children written directly, 8 at a time" >&2
    "$RELEASE/examples/bench-floor" --plugins "$PLUGINS" > "$PLUGINS_OUT/floor-$round.json"
    # The steady-state window is counted once, in the last round.
    steady=$( ((round == OPERATOR_ROUNDS)) && echo "$STEADY" || echo 0 )
    echo "   round $round/$OPERATOR_ROUNDS, operator (release build), --max-concurrent-reconciles 8" >&2
    "$RELEASE/examples/bench-operator" --binary "$RELEASE/plugin-operator" --plugins "$PLUGINS" \
      --steady-seconds "$steady" > "$PLUGINS_OUT/operator-$round.json"
  done
else
  step "operator: skipped (BENCH_ONLY=$ONLY)"
fi

if [[ $ONLY == all || $ONLY == drift ]]; then
  step "drift: a NetworkPolicy opened by hand ${BENCH_DRIFT_EDITS:-20} times, each timed until put back"
  ensure_cluster
  "$RELEASE/examples/bench-drift" --binary "$RELEASE/plugin-operator" \
    --edits "${BENCH_DRIFT_EDITS:-20}" > "$OUT/drift.json"
else
  step "drift: skipped (BENCH_ONLY=$ONLY)"
fi

if [[ $ONLY == all || $ONLY == ready ]]; then
  READY_PLUGINS=${BENCH_READY_PLUGINS:-50}
  TAG=${BENCH_IMAGE_TAG:-bench}
  step "ready: apply → Ready with real pods, $READY_PLUGINS at once in ${BENCH_READY_ROUNDS:-2} rounds (floor, operator), then ${BENCH_READY_TRIES:-20} one at a time"
  ensure_cluster node
  # Pulling is not what is measured: the images are in the node before the clock starts.
  echo "   images localhost/plugin-operator:$TAG and localhost/sample-plugin:$TAG (static build, loaded into the node)" >&2
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile image --target x86_64-unknown-linux-gnu \
    --package plugin-operator --bin plugin-operator --package plugin-operator-samples --bin sample-plugin
  IMAGE_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/image
  cluster/image.sh --binary "$IMAGE_DIR/plugin-operator" --name "localhost/plugin-operator:$TAG" \
    --entrypoint /plugin-operator > /dev/null
  cluster/image.sh --binary "$IMAGE_DIR/sample-plugin" --name "localhost/sample-plugin:$TAG" \
    --entrypoint /sample-plugin > /dev/null
  "$RELEASE/examples/bench-ready" --binary "$RELEASE/plugin-operator" \
    --broker-image "localhost/plugin-operator:$TAG" --plugin-image "localhost/sample-plugin:$TAG" \
    --plugins "$READY_PLUGINS" --rounds "${BENCH_READY_ROUNDS:-2}" --tries "${BENCH_READY_TRIES:-20}" \
    > "$OUT/ready.json"
else
  step "ready: skipped (BENCH_ONLY=$ONLY)"
fi

step "report: $OUT/latest.md"
{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);" \
    "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), " \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)."
  echo
  python3 bench/report.py "$OUT"
} > "$OUT/latest.md"
cat "$OUT/latest.md"
