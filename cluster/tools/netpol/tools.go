//go:build tools

// Package tools pins sigs.k8s.io/kube-network-policies, the NetworkPolicy agent of
// the local cluster's node. cluster/node.sh builds its ./cmd from the module source
// at this version with local-node.patch applied (see the patch's comment).
package tools

import _ "sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
