#!/usr/bin/env bash
# make demo: a local one-node cluster, the operator (Helm chart), the sample chat API and
# the sample "weather" plugin; waits until the plugin is Ready, then shows one call the
# broker allowed and one it refused, from the broker's audit log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source cluster/lib.sh

# Steps as in cluster/lib.sh (scripts/steps.sh), set apart from those of cluster/up.sh.
STEP_TOTAL=7
STEP_OUTER=1
trap on_step_failure ERR

export KUBECONFIG="$KUBECONFIG_PATH"
kubectl() { "$K8S_BIN/kubectl" "$@"; }
DEMO_NS=demo

step "local cluster with a node (make cluster-up NODE=1)" "build/cluster/logs/"
NODE=1 cluster/up.sh

step "operator, sample chat API and sample plugin images (make images)" "the cargo output above"
make --no-print-directory images

step "the Plugin, PluginPolicy and ScopeCatalog CRDs" ""
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
# A CRD created a moment ago has no conditions yet and `kubectl wait` fails on that
# rather than waiting: try again for a while, then once more to show its error.
CRDS="crd/plugins.plugins.chat.dev crd/pluginpolicies.plugins.chat.dev crd/scopecatalogs.plugins.chat.dev"
for _ in $(seq 1 30); do
  kubectl wait --for=condition=Established $CRDS --timeout=2s >/dev/null 2>&1 && break
  sleep 1
done
kubectl wait --for=condition=Established $CRDS --timeout=10s >/dev/null

step "the sample chat API in namespace chat-system" "kubectl -n chat-system logs deploy/chat-api"
kubectl apply --server-side --force-conflicts -f deploy/examples/sample-chat-api.yaml >/dev/null
kubectl -n chat-system rollout status deploy/chat-api --timeout=120s

step "the operator, with its Helm chart, in namespace plugin-operator-system" \
  "kubectl -n plugin-operator-system logs deploy/plugin-operator"
ensure_helm
HELM="$HELM_BIN/helm"
kubectl create namespace "$DEMO_NS" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl label namespace "$DEMO_NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
# The demo namespace is under the example PluginPolicy team-a, not the chart's default.
kubectl label namespace "$DEMO_NS" plugins.chat.dev/policy=team-a --overwrite >/dev/null
# The demo's operator watches only the demo namespace (a Role there, no cluster-wide access).
"$HELM" upgrade --install plugin-operator charts/plugin-operator \
  --namespace plugin-operator-system --create-namespace --set "watchNamespaces={$DEMO_NS}" \
  --wait --timeout 180s >/dev/null
kubectl -n plugin-operator-system rollout status deploy/plugin-operator --timeout=120s
kubectl apply --server-side --force-conflicts -f deploy/examples/plugin-policy.yaml >/dev/null

step "the sample plugin 'weather' in namespace $DEMO_NS (restricted Pod Security)" \
  "kubectl -n $DEMO_NS describe plugin weather"
kubectl -n "$DEMO_NS" apply --server-side -f deploy/examples/weather.yaml >/dev/null
kubectl -n "$DEMO_NS" wait --for=condition=Ready plugin/weather --timeout=180s
kubectl -n "$DEMO_NS" get plugins

step "one call the broker allows and one it refuses" "kubectl -n $DEMO_NS logs deploy/plugin-weather -c broker"
POD=$(kubectl -n "$DEMO_NS" get pods -l plugins.chat.dev/plugin=weather -o jsonpath='{.items[0].metadata.name}')
echo "-- the plugin reads channel C123 (granted: messages:read):"
kubectl -n "$DEMO_NS" exec "$POD" -c plugin -- /sample-plugin call GET /api/v1/channels/C123/messages
echo "-- the plugin posts to channel C456 (messages:write is granted for C123 only):"
kubectl -n "$DEMO_NS" exec "$POD" -c plugin -- /sample-plugin call POST /api/v1/channels/C456/messages '{"text":"hi"}'
sleep 1
echo "-- the broker's audit log for these two calls:"
kubectl -n "$DEMO_NS" logs "$POD" -c broker | grep '"decision"' | grep -E 'C123/messages|C456/messages' | tail -n 2

trap - ERR
cat <<TXT

The plugin is Ready. To go on:
  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$B/bin:\$PATH      # kubectl and helm of the local cluster
  kubectl get plugins -A                       # status of every plugin
  kubectl -n $DEMO_NS describe plugin weather     # conditions and events
  kubectl -n $DEMO_NS logs $POD -c broker   # every decision of the broker
  edit deploy/examples/weather.yaml and apply it again: grants change without a restart
  make cluster-down                            # stop everything
TXT
