#!/usr/bin/env bash
# Runs the benchmarks and writes docs/benchmarks.md: the token endpoint
# beside the raw ES256 signing rate measured in the same run, and the
# operator at scale (CLIENTS OAuthClients, default 1000) on the local dev
# cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-1000}
benchtime=${BENCHTIME:-3s}
out=docs/benchmarks.md
mkdir -p docs
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

echo "go benchmarks (benchtime $benchtime)..." >&2
go test -short ./asruntime/ -run '^$' -bench . -benchtime "$benchtime" -count 1 | tee "$raw" >&2

# rate NAME: tokens/s of a benchmark line (the custom metric).
rate() { awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i < NF; i++) if ($(i+1) == "tokens/s") print $i }' "$raw"; }
field() { awk -v n="$1" -v u="$2" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i < NF; i++) if ($(i+1) == u) print $i }' "$raw"; }
sign1=$(rate BenchmarkES256Sign)
signN=$(rate BenchmarkES256SignParallel)
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() {
  local name=$1 what=$2 r
  r=$(rate "$name")
  [ -n "$r" ] || return 0
  printf '| %s | %s | %.0f | %s | %s | %s | %s |\n' "$what" "$name" "$r" "$(field "$name" ns/op)" "$(field "$name" allocs/op)" \
    "$(div "$r" "$sign1")" "$(div "$r" "$signN")"
}

echo "operator at scale ($clients OAuthClients)..." >&2
make -s build
operator_row=$(go run ./hack/bench-operator --clients "$clients")

cores=$(nproc)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (\`hack/bench.sh\`) on $(date -u +%Y-%m-%d), $cores cores ($cpu), Go $(go env GOVERSION)."
  echo "Client and server share the same cores in every figure; ratios are against the raw ES256 signing"
  echo "rate measured in the same run, on one core and on all $cores cores."
  echo
  echo "## Token endpoint (\`go test -short ./asruntime/ -run '^\$' -bench . -benchtime $benchtime\`)"
  echo
  echo "| what | benchmark | tokens/s | ns/op | allocs/op | ÷ ES256 1 core | ÷ ES256 $cores cores |"
  echo "|---|---|---|---|---|---|---|"
  printf '| raw ES256 signature (go-jose), 1 core | BenchmarkES256Sign | %.0f | %s | %s | 1.00 | %s |\n' "$sign1" "$(field BenchmarkES256Sign ns/op)" "$(field BenchmarkES256Sign allocs/op)" "$(div "$sign1" "$signN")"
  printf '| raw ES256 signature, all cores | BenchmarkES256SignParallel | %.0f | %s | %s | %s | 1.00 |\n' "$signN" "$(field BenchmarkES256SignParallel ns/op)" "$(field BenchmarkES256SignParallel allocs/op)" "$(div "$signN" "$sign1")"
  row BenchmarkTokenKeepAliveMTLS "(a) tls_client_auth, kept-alive mTLS, net/http client"
  row BenchmarkTokenKeepAliveMTLSLeanClient "(a) the same with a lean load client"
  row BenchmarkTokenNewHandshake "(b) tls_client_auth, new TLS handshake per token"
  row BenchmarkTokenSelfSigned "(c) self_signed_tls_client_auth, kept-alive"
  row BenchmarkTokenHandler "server handler alone (no TLS, no client)"
  echo
  echo "## Introspection and revocation (same run)"
  echo
  echo "| benchmark | introspections/s | ns/op | allocs/op | ÷ ES256 1 core |"
  echo "|---|---|---|---|---|"
  for name in BenchmarkIntrospectKeepAliveMTLS BenchmarkIntrospectHandler; do
    r=$(field "$name" introspections/s)
    [ -n "$r" ] && printf '| %s | %.0f | %s | %s | %s |\n' "$name" "$r" "$(field "$name" ns/op)" "$(field "$name" allocs/op)" "$(div "$r" "$sign1")"
  done
  echo
  echo "Revocation propagation between two authorization servers sharing a \`--state-dir\`"
  echo "(BenchmarkRevocationPropagation: revoke at one, poll introspection at the other until inactive):"
  echo "$(field BenchmarkRevocationPropagation ns/op) ns per revocation, $(field BenchmarkRevocationPropagation polls/op) polls until the other replica saw it."
  echo
  echo "allocs/op of the TLS benchmarks count client and server; BenchmarkTokenHandler is the server's own share."
  echo
  echo "## Operator at scale (\`go run ./hack/bench-operator --clients $clients\`)"
  echo
  echo "The local dev cluster (real kube-apiserver, etcd, in-process cert-manager issuing every"
  echo "certificate, the operator binary, the authorization server as a local process) on the same $cores cores."
  echo "API writes are the operator's own client-go write requests (rest_client_requests_total, POST/PUT/PATCH/DELETE)"
  echo "from creation to all Ready, divided by the number of clients; peak memory is the operator's VmHWM."
  echo
  echo "| OAuthClients | created in | all Ready after | operator API writes per client | operator peak RSS |"
  echo "|---|---|---|---|---|"
  echo "$operator_row"
} > "$out"
echo "wrote $out" >&2
