#!/usr/bin/env bash
# Build an OCI image from static binaries without a registry or Docker, and import it
# into the local node's containerd.
#
#   cluster/image.sh --binary target/x86_64-unknown-linux-gnu/image/plugin-operator \
#                    --name localhost/plugin-operator:dev [--entrypoint /plugin-operator] \
#                    [--cmd ARG]... [--add SRC:DEST]... [--user 65532:65532] [--env K=V]... \
#                    [--out FILE.tar] [--no-import]
#
# The image holds only the given files (a "scratch" image): a sorted tar with mtime 0
# and owner 0, gzip'd, plus config.json (non-root User), manifest, index.json with
# org.opencontainers.image.ref.name and io.containerd.image.name, and oci-layout.
# The same inputs give the same image digest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

BINARY="" NAME="" ENTRYPOINT="" USER_ID="65532:65532" OUT="" IMPORT=1 WORKDIR="/"
CMD=() ADDS=() ENVS=("PATH=/")
while (($#)); do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    --entrypoint) ENTRYPOINT="$2"; shift 2 ;;
    --cmd) CMD+=("$2"); shift 2 ;;
    --add) ADDS+=("$2"); shift 2 ;;
    --user) USER_ID="$2"; shift 2 ;;
    --env) ENVS+=("$2"); shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-import) IMPORT=0; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n "$BINARY" && -n "$NAME" ]] || { echo "--binary and --name are required" >&2; usage; }
[[ -f "$BINARY" ]] || die "binary not found: $BINARY"
[[ "$NAME" == */*:* || "$NAME" == */*@* ]] || die "use a fully qualified name with a tag, e.g. localhost/foo:dev (got $NAME)"
[[ "${USER_ID%%:*}" != 0 && "${USER_ID%%:*}" != root ]] || die "the image user must not be root (got $USER_ID)"
if file -b "$BINARY" 2>/dev/null | grep -q 'dynamically linked'; then
  die "$BINARY is dynamically linked; build it statically (RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu)"
fi
ENTRYPOINT="${ENTRYPOINT:-/$(basename "$BINARY")}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/tmp" "$work/oci/blobs/sha256"
chmod 1777 "$root/tmp"
install -m 0755 "$BINARY" "$root/${ENTRYPOINT#/}"
for a in "${ADDS[@]}"; do
  src="${a%%:*}" dst="${a#*:}"
  mkdir -p "$root/$(dirname "${dst#/}")"
  cp -a "$src" "$root/${dst#/}"
done
# Minimal /etc so user lookups and name resolution behave.
mkdir -p "$root/etc"
uid="${USER_ID%%:*}" gid="${USER_ID#*:}"
printf 'root:x:0:0:root:/:/nonexistent\nnonroot:x:%s:%s:nonroot:/:/nonexistent\n' "$uid" "$gid" >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$gid" >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# Layer: reproducible tar -> diff_id; gzip -n -> blob digest.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .
diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"
layer_digest="$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)"
layer_size="$(stat -c %s "$work/layer.tar.gz")"
mv "$work/layer.tar.gz" "$work/oci/blobs/sha256/$layer_digest"

json_array() { # JSON array of the arguments (which may start with "-")
  if (($#)); then printf '%s\n' "$@" | jq -R . | jq -cs .; else echo '[]'; fi
}
config="$(jq -cn \
  --arg user "$USER_ID" --arg wd "$WORKDIR" --arg diff "sha256:$diff_id" \
  --argjson ep "$(json_array "$ENTRYPOINT")" --argjson cmd "$(json_array "${CMD[@]}")" \
  --argjson env "$(json_array "${ENVS[@]}")" \
  '{architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
    config: ({User: $user, Entrypoint: $ep, Env: $env, WorkingDir: $wd} + (if ($cmd|length) > 0 then {Cmd: $cmd} else {} end)),
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created: "1970-01-01T00:00:00Z", created_by: "cluster/image.sh"}]}')"
printf '%s' "$config" >"$work/config.json"
config_digest="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
config_size="$(stat -c %s "$work/config.json")"
mv "$work/config.json" "$work/oci/blobs/sha256/$config_digest"

manifest="$(jq -cn --arg cd "sha256:$config_digest" --argjson cs "$config_size" \
  --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]}')"
printf '%s' "$manifest" >"$work/manifest.json"
manifest_digest="$(sha256sum "$work/manifest.json" | cut -d' ' -f1)"
manifest_size="$(stat -c %s "$work/manifest.json")"
mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_digest"

tag="${NAME##*:}"
jq -n --arg md "sha256:$manifest_digest" --argjson ms "$manifest_size" --arg name "$NAME" --arg tag "$tag" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
      platform: {architecture: "amd64", os: "linux"},
      annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": $tag}}]}' \
  >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"

OUT="${OUT:-$B/images/$(printf '%s' "$NAME" | tr '/:@' '___').oci.tar}"
mkdir -p "$(dirname "$OUT")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$OUT.tmp" oci-layout index.json blobs
mv "$OUT.tmp" "$OUT"
say "image $NAME (manifest sha256:$manifest_digest) written to $OUT"

CTR_SOCK="$B/node/containerd/run/containerd.sock"
if ((IMPORT)); then
  if [[ -S "$CTR_SOCK" ]] && pid_alive containerd; then
    ctr --address "$CTR_SOCK" -n k8s.io images import --no-unpack=false "$OUT" >/dev/null
    say "imported into the node's containerd (namespace k8s.io) as $NAME; use imagePullPolicy: Never or IfNotPresent"
  else
    warn "the node is not running (make cluster-up NODE=1); image not imported. Import later with:"
    warn "  ctr --address $CTR_SOCK -n k8s.io images import $OUT"
    exit 3
  fi
fi
