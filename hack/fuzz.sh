#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time (default 10s):
# go test -fuzz accepts one target per run, so this finds them by name.
set -euo pipefail
fuzztime=${1:-10s}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
found=0
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "fuzz $pkg $name for $fuzztime"
  go test "$pkg" -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime"
  found=$((found + 1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . | grep -v '^./hack/tools/' | sort)
echo "$found fuzz targets ran"
