# shellcheck shell=bash
# Certificates for the local cluster, made with openssl. Sourced by up.sh.
# ECDSA P-256 keys (fast to make); the service-account signing key is RSA 2048.

new_ca() { # new_ca name CN
  local name="$1" cn="$2"
  [[ -f "$PKI/$name.crt" ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$name.key" -sha256 -days 3650 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -out "$PKI/$name.crt" 2>/dev/null
}

# new_cert name ca "subject" usage [san]
#   usage: server | client | both;  san: "DNS:a,IP:1.2.3.4"
new_cert() {
  local name="$1" ca="$2" subj="$3" usage="$4" san="${5:-}" eku ext
  [[ -f "$PKI/$name.crt" ]] && return 0
  case "$usage" in
    server) eku="serverAuth" ;;
    client) eku="clientAuth" ;;
    both) eku="serverAuth,clientAuth" ;;
  esac
  ext="$PKI/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -sha256 -days 825 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  new_ca ca "plugin-operator-local-ca"
  new_ca front-proxy-ca "plugin-operator-local-front-proxy-ca"
  new_cert etcd-server ca "/CN=etcd-server" both "DNS:localhost,IP:127.0.0.1"
  new_cert apiserver-etcd-client ca "/CN=kube-apiserver-etcd-client" client
  new_cert apiserver ca "/CN=kube-apiserver" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,IP:$HOST_LINK_IP"
  new_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" client
  new_cert admin ca "/O=system:masters/CN=admin" client
  new_cert controller-manager ca "/CN=system:kube-controller-manager" client
  new_cert scheduler ca "/CN=system:kube-scheduler" client
  new_cert kubelet-client ca "/O=system:nodes/CN=system:node:$NODE_NAME" client
  new_cert kubelet-serving ca "/O=system:nodes/CN=system:node:$NODE_NAME" server \
    "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP"
  new_cert kube-proxy ca "/CN=system:kube-proxy" client
  new_cert network-policies ca "/CN=system:plugin-operator:network-policies" client
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  chmod 600 "$PKI"/*.key
}

# write_kubeconfig file user cert-name [server]
write_kubeconfig() {
  local file="$1" user="$2" cert="$3" server="${4:-https://127.0.0.1:$APISERVER_PORT}"
  local tmp="$file.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plugin-operator-local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
- name: $user@plugin-operator-local
  context:
    cluster: plugin-operator-local
    user: $user
current-context: $user@plugin-operator-local
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}
