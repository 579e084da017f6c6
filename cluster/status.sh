#!/usr/bin/env bash
# What the local cluster runs: recorded processes, readiness, node and pods.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap - ERR
set +e
if [[ ! -d "$PIDS" ]]; then
  say "no local cluster in $B (start one with: make cluster-up [NODE=1])"
  exit 1
fi
for f in "$PIDS"/*.pid; do
  n="$(basename "$f" .pid)"
  if pid_alive "$n"; then s=running; else s=STOPPED; fi
  printf '  %-24s pid %-8s %-8s log %s\n' "$n" "$(cat "$f")" "$s" "$LOGS/$n.log"
done
if apiserver_ready; then say "  apiserver /readyz: ok (https://127.0.0.1:$APISERVER_PORT)"; else say "  apiserver /readyz: NOT ready"; fi
kc get nodes -o wide 2>/dev/null
kc get pods -A 2>/dev/null
say "export KUBECONFIG=$KUBECONFIG_PATH"
