#!/usr/bin/env bash
# Regenerates deepcopy code, apply configurations, CRDs and RBAC, and then the OLM bundle from the
# regenerated config/, into a scratch copy of the tree and fails, naming the
# files, when the committed ones differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$root"
# Copy the sources the generators read and the outputs they write.
tar -cf - --exclude=./bin --exclude=./.git . | tar -xf - -C "$scratch"
# The apply configuration generator never deletes files; start it from
# nothing so a file for a removed type shows as stale.
rm -rf "$scratch/api/v1alpha1/applyconfiguration"
(cd "$scratch" && make -s -o tools generate manifests bundle CONTROLLER_GEN="$root/bin/controller-gen" >/dev/null)
stale=0
for dir in api config/crd config/rbac config/webhook bundle; do
  [ -d "$root/$dir" ] || [ -d "$scratch/$dir" ] || continue
  if ! diff -r -q "$root/$dir" "$scratch/$dir" >/dev/null 2>&1; then
    diff -r -u "$root/$dir" "$scratch/$dir" | head -40 >&2 || true
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  echo "generated files are stale: run 'make generate manifests bundle' and commit the result" >&2
  exit 1
fi
echo "generated files are up to date"
