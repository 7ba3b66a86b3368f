#!/usr/bin/env bash
# Runs every fuzz target in the module for the given budget (a duration such as
# 5m, or an execution count such as 20000x; the Makefile default is a count):
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
