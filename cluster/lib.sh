# shellcheck shell=bash
# Shared settings and helpers for cluster/up.sh, cluster/down.sh and cluster/image.sh.
# Sourced, never executed.

set -eEuo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$CLUSTER_DIR/.." && pwd)"
# Everything the cluster writes lives here; CLUSTER_BUILD_DIR points the scripts at the
# cluster of another checkout (cluster/restart.sh, the fault-injection suite).
B="${CLUSTER_BUILD_DIR:-$REPO_DIR/build/cluster}"
PKI="$B/pki"
CONF="$B/conf"
LOGS="$B/logs"
PIDS="$B/pids"
KUBECONFIG_PATH="$B/kubeconfig"

# Versions. Kubernetes and etcd are pinned by cluster/tools/k8s/go.mod.
K8S_VERSION="v1.35.4"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/plugin-operator"
K8S_BIN="$CACHE_ROOT/k8s-$K8S_VERSION/bin"

# Network layout (all private to this machine; see docs/local-cluster.md).
APISERVER_PORT=6443
SERVICE_CIDR="10.96.0.0/16"
KUBERNETES_SVC_IP="10.96.0.1"
DNS_SVC_IP="10.96.0.10"
CLUSTER_CIDR="10.244.0.0/16"
POD_CIDR="10.244.0.0/24"
NODE_NETNS="po-node"
HOST_LINK="po-host"              # host end of the veth pair to the node namespace
HOST_LINK_IP="10.201.0.1"        # the apiserver is reached from the node through this
NODE_IP="10.201.0.2"             # the node's InternalIP, inside $NODE_NETNS
LINK_PREFIX=30
NODE_NAME="po-node"
CGROUP_ROOT="/plugin-operator"   # kubelet cgroupRoot (cgroupfs driver, cgroup v1)
CLUSTER_DOMAIN="cluster.local"
SA_ISSUER="https://kubernetes.default.svc.${CLUSTER_DOMAIN}"

# The node namespace, veth, DNAT rule, cgroup root and ports are machine-wide: one
# checkout's cluster at a time. This file names the build/cluster that owns them.
OWNER_FILE="/run/plugin-operator-local-cluster.owner"

export PATH="$K8S_BIN:$PATH"

# say, warn, die and the numbered steps (step, on_step_failure) are shared with the
# other scripts. A failure also names where the logs are and how to clean up.
source "$REPO_DIR/scripts/steps.sh"
STEP_HINTS=("Logs of every component: $LOGS/" "Clean up with: make cluster-down")

need_root() { [[ $(id -u) -eq 0 ]] || die "the local cluster needs root (network namespaces, mounts, cgroups)"; }

# apt_install pkg... — installs the Debian packages whose command is missing.
apt_install() {
  local missing=("$@")
  ((${#missing[@]})) || return 0
  say "    installing Debian packages: ${missing[*]}"
  if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# ensure_cmds "cmd:package" ...
ensure_cmds() {
  local spec cmd pkg missing=()
  for spec in "$@"; do
    cmd="${spec%%:*}"; pkg="${spec#*:}"
    if [[ "$cmd" == /* ]]; then [[ -e "$cmd" ]] || missing+=("$pkg")
    else command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg"); fi
  done
  apt_install "${missing[@]}"
}

# --- processes -------------------------------------------------------------

# running pid — true while the process exists and is not a zombie waiting to be reaped.
running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

pid_alive() { # pid_alive name
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -n "$pid" ]] && running "$pid"
}

# start_proc name cmd... — starts a long-running server in its own session,
# output to $LOGS/name.log, PID to $PIDS/name.pid.
start_proc() {
  local name="$1"; shift
  mkdir -p "$LOGS" "$PIDS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# start_in_node name cmd... — same, inside the node's network namespace only
# (the mount namespace stays the host's, so kubelet and containerd see the same mounts).
start_in_node() {
  local name="$1"; shift
  start_proc "$name" nsenter --net="/run/netns/$NODE_NETNS" -- "$@"
}

stop_proc() { # stop_proc name [timeout seconds]
  local name="$1" timeout="${2:-10}" f="$PIDS/$1.pid" pid i
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ -n "$pid" ]] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      warn "$name (pid $pid) did not stop after ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# wait_for "what" seconds cmd... — polls cmd every 0.2 s.
wait_for() {
  wait_alive "" "$@"
}

# wait_alive proc "what" seconds cmd... — like wait_for, but fails at once when the
# process recorded as proc exits (no process is watched when proc is empty).
wait_alive() {
  local proc="$1" what="$2" secs="$3"; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$proc" ]] && ! pid_alive "$proc"; then
      printf '%s exited while waiting for %s\n' "$proc" "$what" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      printf 'timed out after %ss waiting for %s\n' "$secs" "$what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# owner_other — prints the other checkout's build/cluster dir if it owns the machine-wide
# pieces and still has a live process; returns 1 when they are free or ours.
owner_other() {
  local other f pid
  [[ -f "$OWNER_FILE" ]] || return 1
  other="$(cat "$OWNER_FILE")"
  [[ -n "$other" && "$other" != "$B" ]] || return 1
  for f in "$other"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if [[ -n "$pid" ]] && running "$pid"; then
      printf '%s\n' "$other"
      return 0
    fi
  done
  return 1
}

kc() { kubectl --kubeconfig="$KUBECONFIG_PATH" "$@"; }

# render template — prints the template with each @NAME@ replaced by the value of the
# shell variable NAME; fails, printing nothing, when one is not set.
render() {
  local text name names
  names="$(grep -o '@[A-Z_][A-Z0-9_]*@' "$1" | sort -u | tr -d @)" || true
  text="$(cat "$1" && printf x)" || die "cannot read $1"
  text="${text%x}"
  for name in $names; do
    [[ -v $name ]] || die "$1: no variable $name for its @$name@"
    text="${text//"@$name@"/"${!name}"}"
  done
  printf '%s' "$text"
}

apiserver_ready() {
  curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

# --- cached Go builds -------------------------------------------------------

# go_build_cached <cache dir> <log> <module dir> <go build args...>
# Builds into a temp dir next to the cache and renames it into place with a stamp,
# so an interrupted build never looks complete. A lock keeps two builds apart.
go_build_cached() {
  local dest="$1" log="$2" moddir="$3"; shift 3
  [[ -f "$dest/.complete" ]] && return 0
  command -v go >/dev/null 2>&1 || die "Go is needed to build the cluster tools (go not found on PATH)"
  mkdir -p "$(dirname "$dest")" "$(dirname "$log")"
  exec 9>"$dest.lock"
  flock 9
  if [[ ! -f "$dest/.complete" ]]; then
    local tmp
    tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
    say "    building into $dest (log: $log); a cold build takes a long time"
    if ! (cd "$moddir" && go build -o "$tmp/" "$@") >"$log" 2>&1; then
      rm -rf "$tmp"
      flock -u 9
      return 1
    fi
    printf 'built %s from %s\n' "$(date -u +%FT%TZ)" "$moddir" >"$tmp/.complete"
    rm -rf "$dest"
    mv "$tmp" "$dest"
  fi
  flock -u 9
}

K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=35"

HELM_VERSION="$(awk '$1 == "helm.sh/helm/v3" {print $2} $1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$CLUSTER_DIR/tools/helm/go.mod" 2>/dev/null)"
HELM_BIN="$CACHE_ROOT/tools/helm-${HELM_VERSION:-unknown}"

ensure_helm() {
  CGO_ENABLED=0 go_build_cached "$HELM_BIN" "$CACHE_ROOT/build-helm-$HELM_VERSION.log" "$CLUSTER_DIR/tools/helm" \
    -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm
}

ensure_k8s_bins() {
  go_build_cached "$K8S_BIN" "$CACHE_ROOT/build-k8s-$K8S_VERSION.log" "$CLUSTER_DIR/tools/k8s" \
    -trimpath -ldflags="$K8S_LDFLAGS" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ./cmd/etcd
}

# The GitOps health helper of the end-to-end tests (tests/gitops/health): Argo CD's Lua
# interpreter and kstatus on Plugin objects. Cached by the hash of its sources.
gitops_health_bin() {
  local dir="$REPO_DIR/tests/gitops/health"
  printf '%s/tools/gitops-health-%s' "$CACHE_ROOT" \
    "$(cat "$dir/main.go" "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)"
}
ensure_gitops_health() {
  GITOPS_HEALTH_BIN="$(gitops_health_bin)"
  CGO_ENABLED=0 go_build_cached "$GITOPS_HEALTH_BIN" "$CACHE_ROOT/build-gitops-health.log" \
    "$REPO_DIR/tests/gitops/health" -trimpath -ldflags="-s -w" .
}

# Prometheus and promtool for the monitoring tests (tests/chart/monitoring.rs,
# tests/e2e/prometheus.rs), pinned by cluster/tools/prometheus/go.mod. Only the
# Kubernetes service discovery is compiled in (the module's plugins/ build tags) and no
# web UI assets: the tests use the HTTP API. Module v0.MMmm.p is Prometheus M.mm.p.
PROMETHEUS_MODULE_VERSION="$(awk '$1 == "github.com/prometheus/prometheus" {print $2}' "$CLUSTER_DIR/tools/prometheus/go.mod" 2>/dev/null)"
prometheus_release() { # v0.316.0 -> 3.16.0
  local v="${PROMETHEUS_MODULE_VERSION#v0.}" minor patch
  minor="${v%%.*}" patch="${v#*.}"
  printf '%d.%d.%s' $((10#$minor / 100)) $((10#$minor % 100)) "$patch"
}
PROMETHEUS_VERSION="v$(prometheus_release)"
PROMETHEUS_BIN="$CACHE_ROOT/tools/prometheus-$PROMETHEUS_VERSION"

# ensure_prometheus — $PROMETHEUS_BIN/prometheus and $PROMETHEUS_BIN/promtool, built on
# first use (several minutes on two cores), then cached.
ensure_prometheus() {
  [[ -f "$PROMETHEUS_BIN/.complete" ]] && return 0
  local log="$CACHE_ROOT/build-prometheus-$PROMETHEUS_VERSION.log" started=$SECONDS
  say "building prometheus and promtool $PROMETHEUS_VERSION (first time, several minutes; log: $log)"
  CGO_ENABLED=0 go_build_cached "$PROMETHEUS_BIN" "$log" "$CLUSTER_DIR/tools/prometheus" \
    -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v} -X github.com/prometheus/common/version.Branch=release -X github.com/prometheus/common/version.Revision=$PROMETHEUS_MODULE_VERSION" \
    github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool ||
    die "building prometheus $PROMETHEUS_VERSION failed; read $log"
  say "built prometheus and promtool $PROMETHEUS_VERSION in $((SECONDS - started))s"
}

# The prometheus-operator CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ...) that the
# chart's monitoring objects are checked against (tests/chart/monitoring.rs), from the
# module github.com/prometheus-operator/prometheus-operator, folder
# example/prometheus-operator-crd. v0.94.0 is the newest the module proxy serves whole.
PROMETHEUS_OPERATOR_VERSION="v0.94.0"

# ensure_prometheus_operator_crds — downloads the module into Go's module cache once (Go
# checks it against its checksum database); sets PROMETHEUS_OPERATOR_CRDS to the folder.
ensure_prometheus_operator_crds() {
  local module="github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" dir
  command -v go >/dev/null 2>&1 || die "Go is needed to fetch $module (go not found on PATH)"
  dir="$(cd / && go mod download -json "$module" | jq -r '.Dir // empty')" ||
    die "go mod download $module failed"
  PROMETHEUS_OPERATOR_CRDS="$dir/example/prometheus-operator-crd"
  [[ -f "$PROMETHEUS_OPERATOR_CRDS/monitoring.coreos.com_servicemonitors.yaml" ]] ||
    die "$module has no CRDs in example/prometheus-operator-crd"
}
