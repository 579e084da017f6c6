#!/usr/bin/env bash
# Builds the node tests' image, localhost/po-echo:test (cluster/images/po-echo.rs, std
# only, compiled statically with rustc), and imports it into the node's containerd.
# Called by tests/cluster/node.rs; cheap when nothing changed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC="$CLUSTER_DIR/images/po-echo.rs"
IMAGE="localhost/po-echo:test"
out="$B/images/po-echo-$(sha256sum "$SRC" | cut -c1-12)"
if [[ ! -x "$out/po-echo" ]]; then
  mkdir -p "$out.tmp"
  rustc --edition 2021 -O -C strip=symbols -C target-feature=+crt-static \
    --target x86_64-unknown-linux-gnu "$SRC" -o "$out.tmp/po-echo"
  rm -rf "$out"; mv "$out.tmp" "$out"
fi
CTR_SOCK="$B/node/containerd/run/containerd.sock"
if [[ -S "$CTR_SOCK" ]] && ctr --address "$CTR_SOCK" -n k8s.io images ls -q | grep -qx "$IMAGE" &&
  [[ -f "$out/imported" ]]; then
  exit 0
fi
"$CLUSTER_DIR/image.sh" --binary "$out/po-echo" --name "$IMAGE" --entrypoint /po-echo
touch "$out/imported"
