#!/usr/bin/env bash
# cluster/restart.sh [--kill] [--down SECONDS] [--set --FLAG=VALUE]... <component>...
#
# Stops recorded cluster processes (SIGTERM, or SIGKILL with --kill), waits --down
# seconds (default 0), and starts each again exactly as it ran: the same command line,
# environment, working directory and network namespace, read from /proc before the
# stop. Then waits until each answers its health check. Components are the names under
# build/cluster/pids: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd, kubelet, kube-proxy, network-policies. Used by the fault-injection suite
# (chaos/, docs/reliability.md); prints one line per component with the time it was
# down (stop to healthy). --set replaces (or adds) one flag of the recorded command
# line, e.g. to give a running cluster a flag cluster/up.sh has gained since it started:
#   cluster/restart.sh --set --kube-api-qps=100 --set --kube-api-burst=200 kube-controller-manager
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap - ERR
CTR_SOCK="$B/node/containerd/run/containerd.sock"
signal=TERM down=0 components=() overrides=()
while (($#)); do
  case "$1" in
    --kill) signal=KILL ;;
    --down) down="$2"; shift ;;
    --set) [[ ${2:-} == --*=* ]] || die "--set takes --FLAG=VALUE (got '${2:-}')"; overrides+=("$2"); shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown flag $1 (see --help)" ;;
    *) components+=("$1") ;;
  esac
  shift
done
((${#components[@]})) || die "name a component to restart (see --help)"
need_root

# healthy component — the check up.sh and node.sh wait for.
healthy() {
  case "$1" in
    etcd) curl -sf --max-time 1 http://127.0.0.1:2381/health ;;
    kube-apiserver) apiserver_ready ;;
    kube-controller-manager) curl -skf --max-time 1 https://127.0.0.1:10257/healthz ;;
    kube-scheduler) curl -skf --max-time 1 https://127.0.0.1:10259/healthz ;;
    containerd) ctr --address "$CTR_SOCK" version ;;
    kubelet) nsenter --net="/run/netns/$NODE_NETNS" -- curl -sf --max-time 1 http://127.0.0.1:10248/healthz ;;
    kube-proxy) nsenter --net="/run/netns/$NODE_NETNS" -- curl -sf --max-time 1 http://127.0.0.1:10256/healthz ;;
    network-policies) nsenter --net="/run/netns/$NODE_NETNS" -- curl -sf --max-time 1 http://127.0.0.1:9080/metrics ;;
    *) die "no health check for $1" ;;
  esac
}

declare -A argv_of env_of cwd_of netns_of started_at
for name in "${components[@]}"; do
  pid_alive "$name" || die "$name is not running (cluster/status.sh)"
  pid="$(cat "$PIDS/$name.pid")"
  argv_of[$name]="$(tr '\0' '\n' < "/proc/$pid/cmdline" | base64 -w0)"
  env_of[$name]="$(tr '\0' '\n' < "/proc/$pid/environ" | base64 -w0)"
  cwd_of[$name]="$(readlink "/proc/$pid/cwd")"
  netns_of[$name]=""
  if [[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]]; then
    netns_of[$name]="/run/netns/$NODE_NETNS"
  fi
done

for name in "${components[@]}"; do
  pid="$(cat "$PIDS/$name.pid")"
  started_at[$name]=$(date +%s.%N)
  say "  stopping $name (pid $pid, SIG$signal)"
  kill -"$signal" "$pid" 2>/dev/null || true
  # kube-apiserver stops listening within a second of SIGTERM but may linger for 40 s.
  for ((i = 0; i < 100; i++)); do running "$pid" || break; sleep 0.1; done
  running "$pid" && { warn "$name did not exit 10 s after SIGTERM; killing it"; kill -KILL "$pid"; sleep 0.5; }
done
sleep "$down"

# In the order given, each healthy before the next starts: the kubelet exits at once
# when containerd does not answer yet.
status=0
for name in "${components[@]}"; do
  mapfile -t argv < <(base64 -d <<< "${argv_of[$name]}")
  for flag in "${overrides[@]}"; do
    kept=()
    for arg in "${argv[@]}"; do [[ $arg == "${flag%%=*}="* ]] || kept+=("$arg"); done
    argv=("${kept[@]}" "$flag")
  done
  mapfile -t envs < <(base64 -d <<< "${env_of[$name]}")
  prefix=(env -i "${envs[@]}")
  [[ -n "${netns_of[$name]}" ]] && prefix=(nsenter --net="${netns_of[$name]}" -- "${prefix[@]}")
  # A process that exits at once (containerd answers before its CRI service is
  # initialized, and the kubelet gives up on it) is started again, five times at most.
  for attempt in 1 2 3 4 5; do
    (cd "${cwd_of[$name]}" && start_proc "$name" "${prefix[@]}" "${argv[@]}")
    say "  started $name again (pid $(cat "$PIDS/$name.pid"), attempt $attempt)"
    if wait_alive "$name" "$name to be healthy" 120 healthy "$name"; then
      printf '%s down for %.1f s\n' "$name" "$(echo "$(date +%s.%N) - ${started_at[$name]}" | bc)"
      continue 2
    fi
    pid_alive "$name" && break
    sleep 2
  done
  status=1
done
exit "$status"
