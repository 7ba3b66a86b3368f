package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

func (r result) row() string {
	tokens := "–"
	if r.mode != modeCertManager {
		tokens = fmt.Sprintf("%s / %s (%d sampled", ms(percentile(r.tokenLatencies, 0.5)), ms(percentile(r.tokenLatencies, 0.99)), len(r.tokenLatencies))
		if len(r.tokenFailures) > 0 {
			tokens += fmt.Sprintf(", %d without a token", len(r.tokenFailures))
		}
		tokens += ")"
	}
	return fmt.Sprintf("| %s | %d | %d | %.1f s | %.1f s | %.1f | %.1f | %.1f | %s | %s → %s | %s |",
		r.mode, r.clients, r.unrelatedSecrets, r.created.Seconds(), r.allReady.Seconds(),
		r.operatorWrites/float64(r.clients), float64(r.audit.operatorTotal())/float64(r.clients),
		float64(r.audit.certManager)/float64(r.clients),
		mib(r.operatorPeak), mib(r.asBefore), mib(r.asAfter), tokens)
}

func (a auditCounts) operatorTotal() int {
	total := 0
	for _, n := range a.operator {
		total += n
	}
	return total
}

func printReport(w io.Writer, command string, results []result) {
	fmt.Fprintf(w, "## Operator at scale (`%s`)\n\n", command)
	fmt.Fprintln(w, "A fresh local dev cluster per row (real kube-apiserver and etcd, cert-manager's controllers in the bench process,")
	fmt.Fprintln(w, "the operator binary, the authorization server as a local process), all on the same cores. Modes: certmanager =")
	fmt.Fprintln(w, "the same Certificates created directly, no OAuthClients (the floor); operator = tls_client_auth OAuthClients")
	fmt.Fprintln(w, "through cert-manager; selfsigned = self_signed_tls_client_auth OAuthClients with their own jwks (no cert-manager).")
	fmt.Fprintln(w, "Writes per client: the operator's client-go write requests (POST/PUT/PATCH/DELETE), and the same counted by")
	fmt.Fprintln(w, "the API server's audit log; from creation to all Ready. Token time: from a sampled client's Certificate turning")
	fmt.Fprintf(w, "Ready (selfsigned: its OAuthClient created) to its first token at the mTLS token endpoint, retried every %s.\n\n", tokenRetry)
	fmt.Fprintln(w, "| mode | clients | unrelated Secrets | created in | all Ready after | operator writes/client (client-go) | operator writes/client (audit) | cert-manager writes/client | operator peak RSS | AS RSS before → with clients | Ready → first token p50 / p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Fprintln(w, r.row())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### The operator's writes per client by verb and resource (audit log)")
	fmt.Fprintln(w)
	keys := map[writeKey]bool{}
	for _, r := range results {
		for k := range r.audit.operator {
			keys[k] = true
		}
	}
	sorted := slices.SortedFunc(maps.Keys(keys), func(a, b writeKey) int {
		if a.String() < b.String() {
			return -1
		}
		if a.String() > b.String() {
			return 1
		}
		return 0
	})
	fmt.Fprint(w, "| write |")
	for _, r := range results {
		fmt.Fprintf(w, " %s, %d |", r.mode, r.clients)
	}
	fmt.Fprint(w, "\n|---|")
	for range results {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, k := range sorted {
		fmt.Fprintf(w, "| %s |", k)
		for _, r := range results {
			fmt.Fprintf(w, " %.2f |", float64(r.audit.operator[k])/float64(r.clients))
		}
		fmt.Fprintln(w)
	}
	for _, r := range results {
		for _, err := range r.tokenFailures[:min(len(r.tokenFailures), 3)] {
			fmt.Fprintf(w, "\n%s, %d clients: %v\n", r.mode, r.clients, err)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func mib(kib int) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }
