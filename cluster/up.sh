#!/usr/bin/env bash
# Start the local cluster: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler on 127.0.0.1; with NODE=1 also one real node (containerd, kubelet,
# kube-proxy, CoreDNS, NetworkPolicy agent) inside its own network namespace.
# Safe to run twice: a healthy cluster is left alone.
# See docs/local-cluster.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$CLUSTER_DIR/pki.sh"
source "$CLUSTER_DIR/node.sh"

NODE="${NODE:-0}"
[[ "$NODE" == 1 || "$NODE" == 0 ]] || die "NODE must be 0 or 1 (got '$NODE')"

need_root
START=$SECONDS
trap on_step_failure ERR

control_plane_healthy() {
  pid_alive etcd && pid_alive kube-apiserver && pid_alive kube-controller-manager &&
    pid_alive kube-scheduler && apiserver_ready
}

print_done() {
  mkdir -p "$B/bin"
  ln -sfn "$K8S_BIN/kubectl" "$B/bin/kubectl"
  [[ -x "$HELM_BIN/helm" ]] && ln -sfn "$HELM_BIN/helm" "$B/bin/helm"
  say ""
  say "cluster is up ($((SECONDS - START))s). Use it with:"
  say "  export KUBECONFIG=$KUBECONFIG_PATH"
  say "  export PATH=$B/bin:\$PATH    # kubectl $K8S_VERSION and helm $HELM_VERSION"
}

STEP_TOTAL=6
[[ "$NODE" == 1 ]] && STEP_TOTAL=$((STEP_TOTAL + NODE_STEPS))

if control_plane_healthy; then
  if [[ "$NODE" == 0 ]] || node_healthy; then
    say "cluster already running and healthy; nothing to do"
    print_done
    exit 0
  fi
  say "control plane already running; adding the node"
  STEP_NO=6
else
  if compgen -G "$PIDS/*.pid" >/dev/null; then
    say "found a stopped or unhealthy cluster in $B; cleaning it up first"
    "$CLUSTER_DIR/down.sh" >/dev/null
  fi

  if other="$(owner_other)"; then
    die "another checkout's cluster is running ($other); stop it first: make -C ${other%/build/cluster} cluster-down"
  fi
  mkdir -p "$B" "$LOGS" "$PIDS" "$CONF"
  printf '%s\n' "$B" >"$OWNER_FILE"

  step "binaries: Kubernetes $K8S_VERSION, etcd, helm $HELM_VERSION (cache: $CACHE_ROOT)" "$CACHE_ROOT/build-k8s-$K8S_VERSION.log"
  ensure_cmds openssl:openssl curl:curl flock:util-linux nsenter:util-linux ip:iproute2 jq:jq ss:iproute2
  ensure_k8s_bins
  STEP_LOG="$CACHE_ROOT/build-helm-$HELM_VERSION.log"
  ensure_helm

  step "certificates and kubeconfigs (openssl)" "$B/pki"
  make_pki
  write_kubeconfig "$KUBECONFIG_PATH" admin admin
  write_kubeconfig "$CONF/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  write_kubeconfig "$CONF/scheduler.kubeconfig" system:kube-scheduler scheduler

  for port in 2379 2380 2381 "$APISERVER_PORT" 10257 10259; do
    if ss -Hltn "sport = :$port" | grep -q .; then
      die "step [$STEP_NO/$STEP_TOTAL]: port $port is already in use (another cluster running? see: ss -ltnp)"
    fi
  done

  step "starting etcd" "$LOGS/etcd.log"
  mkdir -p "$B/etcd"
  chmod 700 "$B/etcd"
  start_proc etcd "$K8S_BIN/etcd" \
    --name=default --data-dir="$B/etcd" \
    --listen-client-urls=https://127.0.0.1:2379 --advertise-client-urls=https://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=default=http://127.0.0.1:2380 --initial-cluster-state=new \
    --listen-metrics-urls=http://127.0.0.1:2381 \
    --cert-file="$PKI/etcd-server.crt" --key-file="$PKI/etcd-server.key" \
    --trusted-ca-file="$PKI/ca.crt" --client-cert-auth=true \
    --unsafe-no-fsync=true --log-level=warn
  wait_for "etcd health" 30 curl -sf --max-time 1 http://127.0.0.1:2381/health

  step "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT" "$LOGS/kube-apiserver.log"
  start_proc kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --advertise-address="$HOST_LINK_IP" \
    --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$PKI/ca.crt" \
    --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,NodeRestriction,PodSecurity,DefaultStorageClass,DefaultTolerationSeconds,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy \
    --allow-privileged=true \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --api-audiences="$SA_ISSUER" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-node-port-range=30000-32767 \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-username-headers=X-Remote-User \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false \
    --v=1
  wait_for "kube-apiserver /readyz (log: $LOGS/kube-apiserver.log)" 60 apiserver_ready

  step "starting kube-controller-manager and kube-scheduler" "$LOGS/kube-controller-manager.log"
  # The client limit is raised from the default 20 requests/s (burst 30): with it, the
  # deployment controller took minutes to report a thousand new Deployments, and a
  # Plugin's Ready follows that report (docs/benchmarks.md).
  start_proc kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$CONF/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CONF/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --root-ca-file="$PKI/ca.crt" \
    --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kube-api-qps=100 --kube-api-burst=200 \
    --leader-elect=false --profiling=false --v=1
  start_proc kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$CONF/scheduler.kubeconfig" \
    --authentication-kubeconfig="$CONF/scheduler.kubeconfig" \
    --authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 \
    --leader-elect=false --profiling=false --v=1
  STEP_LOG="$LOGS/kube-controller-manager.log"
  wait_for "kube-controller-manager /healthz" 30 curl -skf --max-time 1 https://127.0.0.1:10257/healthz
  STEP_LOG="$LOGS/kube-scheduler.log"
  wait_for "kube-scheduler /healthz" 30 curl -skf --max-time 1 https://127.0.0.1:10259/healthz

  step "waiting for the control plane to settle" "$LOGS/kube-apiserver.log"
  # The default namespace and its ServiceAccount mean the controllers are working.
  wait_for "namespace default" 30 kc get namespace default
  wait_for "ServiceAccount default/default" 30 kc -n default get serviceaccount default
  wait_for "/readyz" 10 kc get --raw=/readyz
fi

if [[ "$NODE" == 1 ]]; then
  node_up
fi

print_done
