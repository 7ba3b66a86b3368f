#!/usr/bin/env bash
# Builds controller-gen, kube-apiserver and etcd into bin/ from the pinned
# hack/tools module. A stamp file records the hash of hack/tools/go.mod and
# go.sum: when the pins change every tool is rebuilt; otherwise only a tool
# that is missing or does not run (a broken or truncated binary) is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
stamp="$bin/.tools-stamp"
mkdir -p "$bin"
want=$(cat "$root/hack/tools/go.mod" "$root/hack/tools/go.sum" | sha256sum | cut -d' ' -f1)
pins_current=false
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && pins_current=true

cd "$root/hack/tools"
built=0
ensure() {
  local out=$1 pkg=$2
  if $pins_current && "$bin/$out" --version >/dev/null 2>&1; then
    return 0
  fi
  echo "building bin/$out from $pkg${3:+ ($3)}..." >&2
  if ! GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$bin/$out.tmp" "$pkg"; then
    rm -f "$bin/$out.tmp" "$stamp"
    echo "FAILED to build bin/$out from $pkg (the go output above says why); the tests cannot run without it" >&2
    exit 1
  fi
  mv "$bin/$out.tmp" "$bin/$out"
  built=$((built + 1))
}
ensure controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
ensure etcd go.etcd.io/etcd/server/v3
ensure kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "about 4 minutes and 3 GB of memory on 2 cores"
echo "$want" > "$stamp"
[ "$built" = 0 ] || echo "tools ready in bin/ ($built built)" >&2
