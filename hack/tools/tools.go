//go:build tools

// Package tools pins the binaries that `make tools` builds into bin/:
// controller-gen, kube-apiserver and etcd. It is a module of its own so the
// project's go.mod never carries k8s.io/kubernetes or its replace directives.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
