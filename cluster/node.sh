# shellcheck shell=bash
# The node of the local cluster. Sourced by up.sh after the control plane is up.
#
# The node lives in its own network namespace ($NODE_NETNS), joined to the host by a
# veth pair ($HOST_LINK $HOST_LINK_IP <-> eth0 $NODE_IP). containerd, the kubelet,
# kube-proxy and the NetworkPolicy agent run in that namespace (network only: they
# share the host's mount namespace, so kubelet volumes are visible to containerd).
# Pods sit on the bridge cni0 ($POD_CIDR) inside it. The namespace has no default
# route and the host does not forward, so pod traffic can never leave the machine.
# The only way out of the namespace is the apiserver: $HOST_LINK_IP:$APISERVER_PORT
# is DNAT'ed to 127.0.0.1:$APISERVER_PORT on the host.

NODE_STEPS=7
NB="$B/node"
CTR_DIR="$NB/containerd"
CTR_SOCK="$CTR_DIR/run/containerd.sock"
PAUSE_IMAGE="localhost/pause:3.10"
COREDNS_VERSION="v1.14.7"
COREDNS_IMAGE="localhost/coredns:$COREDNS_VERSION"
NETPOL_VERSION="v0.8.0"
TOOLS_BIN="$CACHE_ROOT/tools"
NODE_TEMPLATES="$CLUSTER_DIR/node"

node_healthy() {
  pid_alive containerd && pid_alive kubelet && pid_alive kube-proxy && pid_alive network-policies &&
    [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

in_node() { nsenter --net="/run/netns/$NODE_NETNS" -- "$@"; }
ctr_node() { ctr --address "$CTR_SOCK" -n k8s.io "$@"; }

# --- tools built once and cached -------------------------------------------

build_pause() {
  local dest="$TOOLS_BIN/pause-$(sha256sum "$CLUSTER_DIR/images/pause.c" | cut -c1-12)"
  if [[ ! -x "$dest/pause" ]]; then
    mkdir -p "$dest.tmp"
    gcc -static -Os -s -o "$dest.tmp/pause" "$CLUSTER_DIR/images/pause.c"
    rm -rf "$dest"; mv "$dest.tmp" "$dest"
  fi
  PAUSE_BIN="$dest/pause"
}

build_coredns() {
  local dest="$TOOLS_BIN/coredns-$COREDNS_VERSION"
  # The module's one main package is named after its directory: the binary is "dns".
  CGO_ENABLED=0 go_build_cached "$dest" "$CACHE_ROOT/build-coredns-$COREDNS_VERSION.log" \
    "$CLUSTER_DIR/tools/dns" -trimpath -ldflags="-s -w" .
  COREDNS_BIN="$dest/dns"
}

build_netpol() {
  local patch="$CLUSTER_DIR/tools/netpol/local-node.patch"
  local dest="$TOOLS_BIN/kube-network-policies-$NETPOL_VERSION-$(sha256sum "$patch" | cut -c1-12)"
  local log="$CACHE_ROOT/build-kube-network-policies-$NETPOL_VERSION.log"
  [[ -x "$dest/cmd" ]] && { NETPOL_BIN="$dest/cmd"; return 0; }
  local src tmpsrc
  src="$(cd "$CLUSTER_DIR/tools/netpol" && go mod download -json "sigs.k8s.io/kube-network-policies@$NETPOL_VERSION" | jq -r .Dir)"
  [[ -d "$src" ]] || die "could not download sigs.k8s.io/kube-network-policies@$NETPOL_VERSION"
  tmpsrc="$(mktemp -d "$CACHE_ROOT/src-netpol.XXXXXX")"
  cp -r "$src/." "$tmpsrc/"
  chmod -R u+w "$tmpsrc"
  patch -s -p1 -d "$tmpsrc" <"$patch"
  CGO_ENABLED=0 go_build_cached "$dest" "$log" "$tmpsrc" -trimpath -ldflags="-s -w" ./cmd ||
    { rm -rf "$tmpsrc"; die "kube-network-policies build failed; read $log"; }
  rm -rf "$tmpsrc"
  NETPOL_BIN="$dest/cmd"
}

# --- configuration ----------------------------------------------------------

# put_file path < content — replaces the file only when the content differs, by rename
# (containerd watches the CNI directory; kube-proxy exits when its config changes).
put_file() {
  local f="$1"
  cat >"$f.new"
  if cmp -s "$f.new" "$f"; then rm -f "$f.new"; else mv "$f.new" "$f"; fi
}

# put_template template path — put_file of the template rendered from the variables
# (render in lib.sh); nothing is written when a placeholder has no variable.
put_template() {
  local text
  text="$(render "$1" && printf x)" || return 1
  printf '%s' "${text%x}" | put_file "$2"
}

# The node's configuration: the templates in cluster/node/, their @NAME@ placeholders
# filled from the variables above and in lib.sh.
# shellcheck disable=SC2034 # RUNC_BIN and POD_GATEWAY are read by render
write_node_config() {
  local RUNC_BIN POD_GATEWAY
  RUNC_BIN="$(command -v runc || true)"
  POD_GATEWAY="${POD_CIDR%.*}.1"
  mkdir -p "$NB" "$CTR_DIR"/{root,run,opt} "$NB/cni/net.d" "$NB/cni/ipam" "$NB/kubelet" \
    "$NB/kubelet-plugins" "$NB/pod-logs"
  put_template "$NODE_TEMPLATES/containerd.toml" "$CTR_DIR/config.toml"
  put_template "$NODE_TEMPLATES/10-pods.conflist" "$NB/cni/net.d/10-pods.conflist"
  # Pods with dnsPolicy Default get no upstream resolver: nothing outside the machine.
  put_file "$NB/resolv.conf" <"$NODE_TEMPLATES/resolv.conf"

  write_kubeconfig "$CONF/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client "https://$HOST_LINK_IP:$APISERVER_PORT"
  write_kubeconfig "$CONF/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "https://$HOST_LINK_IP:$APISERVER_PORT"
  write_kubeconfig "$CONF/network-policies.kubeconfig" system:plugin-operator:network-policies network-policies "https://$HOST_LINK_IP:$APISERVER_PORT"

  put_template "$NODE_TEMPLATES/kubelet.yaml" "$CONF/kubelet.yaml"
  put_template "$NODE_TEMPLATES/kube-proxy.yaml" "$CONF/kube-proxy.yaml"
}

# --- network namespace -------------------------------------------------------

setup_netns() {
  if [[ ! -e "/run/netns/$NODE_NETNS" ]]; then
    ip netns add "$NODE_NETNS"
  fi
  if ! ip link show "$HOST_LINK" >/dev/null 2>&1; then
    ip link add "$HOST_LINK" type veth peer name eth0 netns "$NODE_NETNS"
  fi
  ip addr replace "$HOST_LINK_IP/$LINK_PREFIX" dev "$HOST_LINK"
  ip link set "$HOST_LINK" up
  ip -n "$NODE_NETNS" link set lo up
  ip -n "$NODE_NETNS" addr replace "$NODE_IP/$LINK_PREFIX" dev eth0
  ip -n "$NODE_NETNS" link set eth0 up
  # The host reaches pods and Service IPs only through the node namespace.
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$HOST_LINK"
  ip route replace "$SERVICE_CIDR" via "$NODE_IP" dev "$HOST_LINK"
  # The node reaches the apiserver (127.0.0.1 on the host) at $HOST_LINK_IP.
  sysctl -qw "net.ipv4.conf.$HOST_LINK.route_localnet=1"
  if ! iptables -t nat -C PREROUTING -i "$HOST_LINK" -d "$HOST_LINK_IP" -p tcp --dport "$APISERVER_PORT" \
    -m comment --comment plugin-operator-local-apiserver -j DNAT --to-destination "127.0.0.1:$APISERVER_PORT" 2>/dev/null; then
    iptables -t nat -A PREROUTING -i "$HOST_LINK" -d "$HOST_LINK_IP" -p tcp --dport "$APISERVER_PORT" \
      -m comment --comment plugin-operator-local-apiserver -j DNAT --to-destination "127.0.0.1:$APISERVER_PORT"
  fi
  # Inside the node: forward between pods and the node, bridged traffic through
  # netfilter (Services and NetworkPolicy on the bridge).
  in_node sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
    net.bridge.bridge-nf-call-ip6tables=1 net.ipv4.conf.all.route_localnet=1
  wait_for "the apiserver from inside the node namespace" 10 \
    in_node curl -sf --max-time 1 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST_LINK_IP:$APISERVER_PORT/readyz"
}

# --- RBAC and add-ons --------------------------------------------------------

apply_addons() {
  kc apply -f "$CLUSTER_DIR/manifests/network-policies-rbac.yaml" >/dev/null
  render "$CLUSTER_DIR/manifests/coredns.yaml" | kc apply -f - >/dev/null
}

# The kubelet's cgroup root must exist in every v1 hierarchy (cgroupfs driver).
make_cgroup_root() {
  local ctl d
  for ctl in /sys/fs/cgroup/*/; do
    ctl="${ctl%/}"
    [[ "$ctl" == */unified ]] && continue
    [[ -e "$ctl/cgroup.procs" ]] || continue
    d="$ctl$CGROUP_ROOT"
    mkdir -p "$d"
    if [[ -e "$d/cpuset.cpus" ]]; then
      [[ -n "$(cat "$d/cpuset.cpus")" ]] || cat "$ctl/cpuset.cpus" >"$d/cpuset.cpus"
      [[ -n "$(cat "$d/cpuset.mems")" ]] || cat "$ctl/cpuset.mems" >"$d/cpuset.mems"
    fi
  done
}

# --- bring the node up -------------------------------------------------------

node_up() {
  step "node prerequisites: packages, pause, CoreDNS and NetworkPolicy agent builds" "$CACHE_ROOT"
  ensure_cmds containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
    iptables:iptables conntrack:conntrack nft:nftables gcc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
    patch:patch jq:jq ss:iproute2
  if [[ ! -d /sys/fs/cgroup/memory ]]; then
    warn "no cgroup v1 memory hierarchy found; the kubelet is configured for cgroup v1 (cgroupfs)"
  fi
  STEP_LOG="$CACHE_ROOT/build-pause.log"; build_pause
  STEP_LOG="$CACHE_ROOT/build-coredns-$COREDNS_VERSION.log"; build_coredns
  STEP_LOG="$CACHE_ROOT/build-kube-network-policies-$NETPOL_VERSION.log"; build_netpol

  step "network namespace $NODE_NETNS ($NODE_IP) and configuration" "$LOGS"
  write_node_config
  make_cgroup_root
  setup_netns

  step "starting containerd and importing the pause and CoreDNS images" "$LOGS/containerd.log"
  if ! pid_alive containerd; then
    start_in_node containerd containerd --config "$CTR_DIR/config.toml" --log-level warn
  fi
  wait_alive containerd "containerd socket" 30 ctr --address "$CTR_SOCK" version
  "$CLUSTER_DIR/image.sh" --binary "$PAUSE_BIN" --name "$PAUSE_IMAGE" --entrypoint /pause --user 65535:65535 \
    --out "$B/images/pause.oci.tar" >/dev/null
  "$CLUSTER_DIR/image.sh" --binary "$COREDNS_BIN" --name "$COREDNS_IMAGE" --entrypoint /coredns \
    --cmd -conf --cmd /etc/coredns/Corefile --out "$B/images/coredns.oci.tar" >/dev/null

  step "starting kubelet (node $NODE_NAME)" "$LOGS/kubelet.log"
  if ! pid_alive kubelet; then
    start_in_node kubelet "$K8S_BIN/kubelet" --config="$CONF/kubelet.yaml" \
      --kubeconfig="$CONF/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
      --root-dir="$NB/kubelet" --cert-dir="$NB/kubelet/pki" --v=1
  fi
  wait_alive kubelet "node $NODE_NAME to register" 60 kc get node "$NODE_NAME"

  step "starting kube-proxy (iptables mode)" "$LOGS/kube-proxy.log"
  if ! pid_alive kube-proxy; then
    start_in_node kube-proxy "$K8S_BIN/kube-proxy" --config="$CONF/kube-proxy.yaml" --v=1
  fi
  wait_alive kube-proxy "kube-proxy healthz" 30 in_node curl -sf --max-time 1 http://127.0.0.1:10256/healthz

  step "starting the NetworkPolicy agent (kube-network-policies $NETPOL_VERSION)" "$LOGS/network-policies.log"
  kc apply -f "$CLUSTER_DIR/manifests/network-policies-rbac.yaml" >/dev/null
  if ! pid_alive network-policies; then
    start_in_node network-policies "$NETPOL_BIN" --kubeconfig="$CONF/network-policies.kubeconfig" \
      --hostname-override="$NODE_NAME" --metrics-bind-address=127.0.0.1:9080 --disable-nri=true \
      --nfqueue-id=100 --v=1
  fi
  wait_alive network-policies "NetworkPolicy agent metrics" 30 in_node curl -sf --max-time 1 http://127.0.0.1:9080/metrics

  step "waiting for node $NODE_NAME to be Ready and CoreDNS to answer" "$LOGS/kubelet.log"
  kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=90s >/dev/null
  apply_addons
  STEP_LOG="$LOGS/kubelet.log (and: kubectl -n kube-system logs deploy/coredns)"
  kc -n kube-system rollout status deploy/coredns --timeout=90s >/dev/null
}
