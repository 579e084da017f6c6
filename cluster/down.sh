#!/usr/bin/env bash
# Stop the local cluster and remove what cluster/up.sh made: processes (by recorded
# PID), containers, mounts, the node's network namespace, cgroups, iptables rules and
# build/cluster itself. Safe to run twice. Cached binaries are kept.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
trap - ERR
set +e

CTR_SOCK="$B/node/containerd/run/containerd.sock"

# Machine-wide pieces (node namespace, veth, DNAT rule, cgroups) are removed only when
# this checkout made them, never under another checkout's running cluster.
OURS=1
if [[ -f "$OWNER_FILE" && "$(cat "$OWNER_FILE")" != "$B" ]]; then
  OURS=0
  say "the node namespace and host rules belong to $(cat "$OWNER_FILE"); leaving them alone"
fi

# 1. Node agents first, so nothing restarts containers while they are removed.
for p in network-policies kube-proxy kubelet; do stop_proc "$p" 10; done

# 2. Containers: kill every task containerd runs for us, then containerd itself,
#    then any shim that still points at our containerd socket.
if pid_alive containerd && [[ -S "$CTR_SOCK" ]]; then
  for ns in k8s.io default; do
    for t in $(ctr --address "$CTR_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CTR_SOCK" -n "$ns" tasks kill -s SIGKILL "$t" >/dev/null 2>&1
    done
  done
  sleep 0.5
fi
stop_proc containerd 15
if [[ -d "$B/node" ]]; then
  for proc in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null)" || continue
    case "$cmd" in
      *containerd-shim*"$CTR_SOCK"*) kill -KILL "${proc#/proc/}" 2>/dev/null ;;
    esac
  done
fi

# 3. Control plane.
for p in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_proc "$p" 15; done

# 4. Anything left running from our pid files (e.g. helpers added later).
if [[ -d "$PIDS" ]]; then
  for f in "$PIDS"/*.pid; do
    [[ -e "$f" ]] || continue
    stop_proc "$(basename "$f" .pid)" 5
  done
fi

# 5. Mounts under build/cluster (deepest first), then the node namespace.
if [[ -d "$B" ]]; then
  for i in 1 2 3; do
    mapfile -t mnts < <(awk -v b="$B/" 'index($2, b) == 1 {print $2}' /proc/self/mounts | sort -r)
    ((${#mnts[@]})) || break
    for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
fi
if ((OURS)); then
  [[ -e "/run/netns/$NODE_NETNS" ]] && ip netns del "$NODE_NETNS" 2>/dev/null
  ip link del "$HOST_LINK" 2>/dev/null
fi

# 6. Host-side rules that let the node reach the apiserver on 127.0.0.1.
while ((OURS)) && iptables -t nat -D PREROUTING -i "$HOST_LINK" -d "$HOST_LINK_IP" -p tcp --dport "$APISERVER_PORT" \
  -m comment --comment plugin-operator-local-apiserver -j DNAT --to-destination "127.0.0.1:$APISERVER_PORT" 2>/dev/null; do :; done

# 7. cgroups the kubelet and runc made under our cgroup root (cgroup v1 hierarchies).
for ctl in /sys/fs/cgroup/*/; do
  ((OURS)) || break
  d="${ctl%/}$CGROUP_ROOT"
  [[ -d "$d" ]] || continue
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  [[ -d "$d" ]] && warn "could not remove cgroup $d (processes still in it?)"
done

# 8. Data, logs, config.
if [[ -d "$B" ]]; then
  if awk -v b="$B/" 'index($2, b) == 1 {found=1} END {exit !found}' /proc/self/mounts; then
    warn "some mounts under $B are still busy; leaving the directory in place"
  else
    rm -rf "$B"
  fi
fi
if ((OURS)); then rm -f "$OWNER_FILE"; fi
say "cluster stopped and removed"
exit 0
