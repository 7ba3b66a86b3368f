package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// printReport writes the Markdown section of the run.
func printReport(w io.Writer, o options, placement string, pinned bool, raw map[jose.SignatureAlgorithm]float64, results []result) {
	title := "pinned"
	if !pinned {
		title = "UNPINNED"
	}
	fmt.Fprintf(w, "## Token endpoint, %s (`go run ./hack/bench-token --workers %d --duration %s`)\n\n", title, o.workers, o.duration)
	fmt.Fprintf(w, "Placement: **%s**. The real `certbound authorization-server` binary with the standalone registry\n", placement)
	fmt.Fprintf(w, "(`--clients-dir`), %d workers posting `client_credentials` requests to the mTLS alias for %s per scenario\n", o.workers, o.duration)
	fmt.Fprintln(w, "after a 1 s warm-up. Every response must be 200; each worker verifies its first token and every")
	fmt.Fprintf(w, "%d-th after it (signature by the server's key, `client_id`, `cnf` `x5t#S256` of the client certificate).\n", o.sample)
	fmt.Fprintln(w, "The ratio is to the raw signing rate of the server's core for the server's algorithm, measured in the same run")
	fmt.Fprintln(w, "(crypto/ecdsa or crypto/ed25519 over a token's JWS signing input, the signature alone, one goroutine). p50/p99 are of every successful request's latency.")
	fmt.Fprintln(w, "Server CPU is the server process's CPU time over the measured time: near 1.00 pinned, its core was saturated;")
	fmt.Fprintln(w, "well below, the load driver set the rate. Resumed is the fraction of new connections that resumed a TLS session.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| raw signing, server's core | signatures/s |")
	fmt.Fprintln(w, "|---|---|")
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
		fmt.Fprintf(w, "| %s | %.0f |\n", alg, raw[alg])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | what | signing | tokens/s | ÷ raw signing | p50 | p99 | errors | resumed | server CPU |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		resumed := "—"
		if r.conn != keptAlive {
			resumed = fmt.Sprintf("%.2f (%d of %d connections)", float64(r.resumedConns)/float64(max(r.newConns, 1)), r.resumedConns, r.newConns)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.2f | %s | %s | %d | %s | %.2f |\n", r.name, r.what, r.server.alg, r.rate, r.ratio,
			ms(r.p50), ms(r.p99), r.errors, resumed, r.serverCPU)
	}
	for _, r := range results {
		if r.server.crl {
			fmt.Fprintf(w, "\nScenario %s: the server made %.0f revocation checks that found the chain good (warm-up included; metric %s).\n",
				r.name, r.revocationChecks, revocationChecksMetric)
		}
	}
	for _, r := range results {
		if r.firstError != nil {
			fmt.Fprintf(w, "\nScenario %s failed %d requests; first: %s\n", r.name, r.errors, strings.ReplaceAll(r.firstError.Error(), "\n", " "))
		}
	}
	fmt.Fprintf(w, "\nDriver: Go %s, %s/%s.\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
