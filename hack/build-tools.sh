#!/usr/bin/env bash
# Provides controller-gen, kube-apiserver and etcd in bin/, built from the
# pinned hack/tools module.
#
# Built binaries are kept per user under a cache directory keyed by the hash
# of hack/tools/go.mod and go.sum (like setup-envtest keeps its binaries under
# the user's data directory), so a second clone or a clean CI checkout on the
# same machine reuses them instead of spending minutes rebuilding. bin/ links
# to the cached copies. A tool that is missing or does not run (a broken or
# truncated binary) is rebuilt; a failed build names the tool and leaves no
# half-written binary behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
pins=$(cat "$root/hack/tools/go.mod" "$root/hack/tools/go.sum" | sha256sum | cut -c1-16)
cache_root=${CERTBOUND_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certbound/tools}
cache="$cache_root/$pins"
mkdir -p "$bin" "$cache"

cd "$root/hack/tools"
start=$SECONDS
built=0
# progress prints the elapsed time every 30 s while a long build runs, so a
# first-time user sees that something is happening. sleep must not hold the
# script's output open: after the ticker is killed it would keep a pipe
# reading our output (make | tee, CI, tests) waiting up to 30 s. The ticker
# also stops by itself once the script is gone (e.g. after Ctrl-C, which
# background jobs of a script ignore).
progress() {
  local what=$1
  while sleep 30 </dev/null >/dev/null 2>&1 && kill -0 $$ 2>/dev/null; do
    echo "  ... still building $what ($((SECONDS - start)) s elapsed)" >&2
  done
}
ensure() {
  local out=$1 pkg=$2 note=${3:-}
  if ! "$cache/$out" --version >/dev/null 2>&1; then
    echo "building $out from $pkg${note:+ ($note)} into $cache ..." >&2
    progress "$out" &
    local ticker=$!
    if ! GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$cache/$out.tmp.$$" "$pkg"; then
      kill "$ticker" 2>/dev/null || true
      rm -f "$cache/$out.tmp.$$"
      echo "FAILED to build $out from $pkg (the go output above says why); the tests cannot run without it" >&2
      exit 1
    fi
    kill "$ticker" 2>/dev/null || true
    mv "$cache/$out.tmp.$$" "$cache/$out"
    built=$((built + 1))
    echo "built $out ($((SECONDS - start)) s elapsed)" >&2
  fi
  ln -sfn "$cache/$out" "$bin/$out"
}
ensure controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
ensure etcd go.etcd.io/etcd/server/v3
ensure kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "about 4 minutes and 3 GB of memory on 2 cores"
if [ "$built" = 0 ]; then
  echo "tools: reusing $cache" >&2
else
  echo "tools ready in $cache ($built built in $((SECONDS - start)) s)" >&2
fi
