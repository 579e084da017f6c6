#!/usr/bin/env bash
# `make chaos`: the fault-injection suite (docs/reliability.md), on the local cluster
# with a node, with real processes. Not part of `make test`: it restarts the API server,
# etcd, containerd and the kubelet.
#
#   1. tools: libfaketime (apt), if missing
#   2. the local cluster with a node (NODE=1 cluster/up.sh; nothing happens if it runs)
#   3. images for the plugin pods (make images; TAG from TEST_IMAGE_TAG, default dev)
#   4. the operator (debug build) and the driver (chaos/main.rs, example `chaos`)
#   5-9. one fault each: kill, leader-skew, rollout, control-plane, node
#   10. the table (chaos/report.py) into build/chaos/latest.md
#
# CHAOS_ONLY=kill,rollout runs some faults; CHAOS_SKIP_IMAGES=1 uses the images already
# in the node. Each fault's driver takes flags of its own (sizes, rounds): CHAOS_ARGS_<FAULT>,
# e.g. CHAOS_ARGS_KILL="--plugins 100 --kills 5". CHAOS_SEED repeats a run's random moments.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/build/chaos
TAG=${TEST_IMAGE_TAG:-dev}
export TEST_IMAGE_TAG=$TAG
export KUBECONFIG=${KUBECONFIG:-$ROOT/build/cluster/kubeconfig}
DEBUG=${CARGO_TARGET_DIR:-$ROOT/target}/debug
FAULTS=(kill leader-skew rollout control-plane node)
ONLY=${CHAOS_ONLY:-$(IFS=,; echo "${FAULTS[*]}")}
mkdir -p "$OUT"

source "$ROOT/scripts/steps.sh"
STEP_TOTAL=$((4 + ${#FAULTS[@]} + 1))
STEP_OUTER=1

step "tools"
[[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]] || {
  echo "   installing libfaketime with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfaketime > /dev/null
}
for tool in ctr bc curl python3; do command -v "$tool" > /dev/null || die "$tool is missing"; done

step "local cluster with a node (NODE=1 cluster/up.sh)"
NODE=1 cluster/up.sh

step "images for the plugin pods (make images TAG=$TAG)"
if [[ ${CHAOS_SKIP_IMAGES:-0} == 1 ]]; then
  echo "   skipped (CHAOS_SKIP_IMAGES=1)"
else
  make --no-print-directory images TAG="$TAG"
fi

step "the operator and the driver (cargo build --bin plugin-operator --example chaos)"
cargo build --bin plugin-operator --example chaos

failed=()
for fault in "${FAULTS[@]}"; do
  if [[ ",$ONLY," != *",$fault,"* ]]; then
    step "fault $fault: skipped (CHAOS_ONLY=$ONLY)"
    continue
  fi
  step "fault $fault (log: $OUT/$fault.log)"
  var="CHAOS_ARGS_$(tr 'a-z-' 'A-Z_' <<< "$fault")"
  # shellcheck disable=SC2086 # the flags are split on purpose
  if ! "$DEBUG/examples/chaos" "$fault" --binary "$DEBUG/plugin-operator" ${!var:-} \
    > "$OUT/$fault.json" 2> >(tee "$OUT/$fault.log" >&2); then
    failed+=("$fault")
  fi
  cat "$OUT/$fault.json"
done

step "report: $OUT/latest.md"
{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);" \
    "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)."
  echo
  python3 chaos/report.py "$OUT" "${FAULTS[@]}"
} > "$OUT/latest.md"
cat "$OUT/latest.md"
if cluster/status.sh | grep -q STOPPED; then
  die "a cluster component is stopped after the faults (cluster/status.sh)"
fi
((${#failed[@]} == 0)) || die "faults not survived: ${failed[*]} (logs in $OUT)"
