#!/usr/bin/env bash
# Builds Prometheus from its Go module (ensure_prometheus in lib.sh, cached), imports it
# into the node's containerd as localhost/prometheus:<version> and prints that name.
# Called by tests/e2e/prometheus.rs; cheap when the image is already there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_prometheus >&2
IMAGE="localhost/prometheus:$PROMETHEUS_VERSION"
CTR_SOCK="$B/node/containerd/run/containerd.sock"
[[ -S "$CTR_SOCK" ]] || die "the node is not running (make cluster-up NODE=1): no $CTR_SOCK"
if ! ctr --address "$CTR_SOCK" -n k8s.io images ls -q | grep -qxF "$IMAGE"; then
  "$CLUSTER_DIR/image.sh" --binary "$PROMETHEUS_BIN/prometheus" --name "$IMAGE" --entrypoint /prometheus >&2
fi
printf '%s\n' "$IMAGE"
