package asruntime

import (
	"crypto/x509"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// replicaOf makes a server another replica of first: same issuer, signing
// keys and client CA, with the given revocation store.
func replicaOf(first *testAS, store RevocationStore) asOption {
	return func(as *testAS, cfg *Config) {
		cfg.Issuer = first.publicURL
		cfg.SigningKeys = first.srv.keys
		cfg.TrustAnchors = first.clientCA.pool()
		cfg.Revocations = store
		as.clientCA = first.clientCA
	}
}

func withRevocations(store RevocationStore) asOption {
	return func(_ *testAS, cfg *Config) { cfg.Revocations = store }
}

func openStore(t testing.TB, dir string, max int) *DirectoryRevocationStore {
	t.Helper()
	s, err := OpenDirectoryRevocationStore(dir, max, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRevocationIsSeenByEveryReplicaAndSurvivesARestart(t *testing.T) {
	state := t.TempDir()
	first := startAS(t, twoClients(), withRevocations(openStore(t, state, 0)))
	second := startAS(t, twoClients(), replicaOf(first, openStore(t, state, 0)))
	billing := first.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	revoked, kept := first.tokenFor(t, &billing, "billing"), first.tokenFor(t, &billing, "billing")
	requireActive(t, second.introspect(t, &billing, "billing", revoked))

	if a := second.revokeToken(t, &billing, "billing", revoked); a.status != http.StatusOK || a.body != "" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke: %d %q %v", a.status, a.body, a.header)
	}
	// No waiting: the store has no cache, an acknowledged revocation is
	// visible to the next lookup of every replica.
	requireInactive(t, first.introspect(t, &billing, "billing", revoked))
	requireInactive(t, second.introspect(t, &billing, "billing", revoked))
	requireActive(t, first.introspect(t, &billing, "billing", kept))

	first.stop()
	second.stop()
	restarted := startAS(t, twoClients(), replicaOf(first, openStore(t, state, 0)))
	requireInactive(t, restarted.introspect(t, &billing, "billing", revoked))
	requireActive(t, restarted.introspect(t, &billing, "billing", kept))
	if got := counterValue(t, second.srv.Metrics(), "certbound_as_revocation_requests_total", "outcome", "revoked"); got != 1 {
		t.Errorf("revocations counted %v, want 1", got)
	}
}

func TestRevocationRules(t *testing.T) {
	as := startAS(t, twoClients())
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	payroll := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"payroll.example"}})
	token := as.tokenFor(t, &billing, "billing")

	t.Run("a client revoking another client's token is refused and changes nothing", func(t *testing.T) {
		a := as.revokeToken(t, &payroll, "payroll", token)
		if a.status != http.StatusBadRequest || a.json(t)["error"] != "unauthorized_client" {
			t.Fatalf("%d %s, want 400 unauthorized_client (RFC 7009 §2.1)", a.status, a.body)
		}
		requireActive(t, as.introspect(t, &billing, "billing", token))
	})
	t.Run("unknown and invalid tokens answer 200", func(t *testing.T) {
		for _, tok := range []string{"nonsense", token[:len(token)-4] + "AAAA"} {
			if a := as.revokeToken(t, &payroll, "payroll", tok); a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
		}
		requireActive(t, as.introspect(t, &billing, "billing", token))
	})
	t.Run("an unauthenticated revocation is refused", func(t *testing.T) {
		a := postForm(t, as.client(nil), as.publicURL+revocationPath, map[string][]string{"client_id": {"billing"}, "token": {token}})
		if a.status != http.StatusUnauthorized || a.json(t)["error"] != "invalid_client" {
			t.Fatalf("%d %s", a.status, a.body)
		}
		requireActive(t, as.introspect(t, &billing, "billing", token))
	})
	t.Run("a revocation without a token is invalid_request", func(t *testing.T) {
		a := postForm(t, as.client(&billing), as.mtlsURL+revocationPath, map[string][]string{"client_id": {"billing"}, "token_type_hint": {"access_token"}})
		if a.status != http.StatusBadRequest || a.json(t)["error"] != "invalid_request" {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("the owner revokes, with any hint", func(t *testing.T) {
		a := postForm(t, as.client(&billing), as.mtlsURL+revocationPath,
			map[string][]string{"client_id": {"billing"}, "token": {token}, "token_type_hint": {"refresh_token"}})
		if a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.body)
		}
		requireInactive(t, as.introspect(t, &billing, "billing", token))
		if a := as.revokeToken(t, &billing, "billing", token); a.status != http.StatusOK {
			t.Fatalf("revoking twice: %d %s", a.status, a.body)
		}
	})
}

func TestConcurrentRevocationsOfOneToken(t *testing.T) {
	state := t.TempDir()
	first := startAS(t, twoClients(), withRevocations(openStore(t, state, 0)))
	second := startAS(t, twoClients(), replicaOf(first, openStore(t, state, 0)))
	billing := first.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	token := first.tokenFor(t, &billing, "billing")
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for i := range 16 {
		as := first
		if i%2 == 1 {
			as = second
		}
		wg.Go(func() { statuses <- as.revokeToken(t, &billing, "billing", token).status })
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a concurrent revocation answered %d", s)
		}
	}
	entries, err := os.ReadDir(filepath.Join(state, "revoked"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("store holds %d entries (%v), want 1", len(entries), err)
	}
	requireInactive(t, first.introspect(t, &billing, "billing", token))
}

func TestUnreadableRevocationStoreFailsClosed(t *testing.T) {
	state := t.TempDir()
	as := startAS(t, twoClients(), withRevocations(openStore(t, state, 0)))
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	token := as.tokenFor(t, &billing, "billing")
	ready := func() int {
		resp, err := http.Get(as.metricsURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "readiness", func() bool { return ready() == http.StatusOK })

	// The directory replaced by a file (chmod would not stop root): every
	// lookup fails with ENOTDIR.
	dir := filepath.Join(state, "revoked")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a := as.introspect(t, &billing, "billing", token)
	if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("introspection with an unreadable store: %d %s, want 503 temporarily_unavailable", a.status, a.body)
	}
	if a := as.revokeToken(t, &billing, "billing", token); a.status != http.StatusServiceUnavailable {
		t.Fatalf("revocation with an unreadable store: %d %s", a.status, a.body)
	}
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d with an unreadable store", got)
	}
	// An invalid token needs no store to be called inactive.
	requireInactive(t, as.introspect(t, &billing, "billing", "garbage"))

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	requireActive(t, as.introspect(t, &billing, "billing", token))
	if got := ready(); got != http.StatusOK {
		t.Fatalf("/readyz = %d after the store came back", got)
	}
}

func TestFullRevocationStore(t *testing.T) {
	for name, store := range map[string]func(t *testing.T) RevocationStore{
		"directory": func(t *testing.T) RevocationStore { return openStore(t, t.TempDir(), 1) },
		"memory":    func(*testing.T) RevocationStore { return NewMemoryRevocationStore(1, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			as := startAS(t, twoClients(), withRevocations(store(t)))
			billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
			first, second := as.tokenFor(t, &billing, "billing"), as.tokenFor(t, &billing, "billing")
			if a := as.revokeToken(t, &billing, "billing", first); a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
			a := as.revokeToken(t, &billing, "billing", second)
			if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" {
				t.Fatalf("revocation into a full store: %d %s, want 503 (RFC 7009 §2.2.1: retry later)", a.status, a.body)
			}
			// Re-revoking the recorded token still succeeds.
			if a := as.revokeToken(t, &billing, "billing", first); a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
}

func TestPruneDropsOnlyExpiredRevocations(t *testing.T) {
	for name, s := range map[string]RevocationStore{
		"directory": openStore(t, t.TempDir(), 0),
		"memory":    NewMemoryRevocationStore(0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			for jti, exp := range map[string]time.Time{"old": now.Add(-time.Minute), "new": now.Add(time.Minute)} {
				if err := s.Revoke(t.Context(), "billing", jti, exp); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := s.Prune(now); err != nil || n != 1 {
				t.Fatalf("Prune = %d, %v; want 1 left", n, err)
			}
			if ok, err := s.IsRevoked(t.Context(), "new", now.Add(time.Minute)); !ok || err != nil {
				t.Fatalf("the unexpired entry was dropped: %v %v", ok, err)
			}
			if ok, _ := s.IsRevoked(t.Context(), "old", now.Add(-time.Minute)); ok {
				t.Fatal("the expired entry was kept")
			}
		})
	}
	if err := openStore(t, t.TempDir(), 0).Revoke(t.Context(), "billing", "../escape", time.Now()); err == nil {
		t.Fatal("a jti that is not base64url must not name a file")
	}
}

// requireRefused checks a revocation refused by a limit: 503
// temporarily_unavailable (RFC 7009 §2.2.1), a Retry-After of at least a
// second, and a description naming the limit.
func requireRefused(t testing.TB, a answer, limit string) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("want 503 temporarily_unavailable, got %d %s", a.status, a.body)
	}
	if retry, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || retry < 1 {
		t.Errorf("Retry-After %q, want whole seconds", a.header.Get("Retry-After"))
	}
	if d, _ := a.json(t)["error_description"].(string); !strings.Contains(d, limit) {
		t.Errorf("error_description %q does not name the %s", d, limit)
	}
}

// TestOneClientsQuotaLeavesOthersRoomToRevoke: a client that has used up
// its quota of revoked, unexpired tokens gets 503 and its token stays
// active, while another client still revokes; the quota frees up as the
// revoked tokens expire and are pruned.
func TestOneClientsQuotaLeavesOthersRoomToRevoke(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) RevocationStore{
		"directory": func(t *testing.T) RevocationStore {
			s, err := OpenDirectoryRevocationStore(t.TempDir(), 100, 2, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"memory": func(*testing.T) RevocationStore { return NewMemoryRevocationStore(100, 2) },
	} {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			as := startAS(t, twoClients(), withRevocations(store))
			billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
			payroll := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"payroll.example"}})
			for range 2 {
				if a := as.revokeToken(t, &billing, "billing", as.tokenFor(t, &billing, "billing")); a.status != http.StatusOK {
					t.Fatalf("revocation within the quota: %d %s", a.status, a.body)
				}
			}
			over := as.tokenFor(t, &billing, "billing")
			requireRefused(t, as.revokeToken(t, &billing, "billing", over), "quota")
			requireActive(t, as.introspect(t, &billing, "billing", over))

			payrollToken := as.tokenFor(t, &payroll, "payroll")
			if a := as.revokeToken(t, &payroll, "payroll", payrollToken); a.status != http.StatusOK {
				t.Fatalf("another client's revocation was refused: %d %s", a.status, a.body)
			}
			requireInactive(t, as.introspect(t, &payroll, "payroll", payrollToken))
			if got := counterValue(t, as.srv.Metrics(), "certbound_as_revocation_refusals_total", "limit", "client_quota"); got != 1 {
				t.Errorf("client_quota refusals counted %v, want 1", got)
			}

			as.clock.advance(DefaultAccessTokenTTL + time.Second)
			if _, err := store.Prune(as.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if a := as.revokeToken(t, &billing, "billing", as.tokenFor(t, &billing, "billing")); a.status != http.StatusOK {
				t.Fatalf("the quota did not free up once the revoked tokens expired: %d %s", a.status, a.body)
			}
		})
	}
}

// TestDirectoryStoreCountsEveryReplicasEntriesInTheQuota: replicas sharing
// a directory share each client's quota.
func TestDirectoryStoreCountsEveryReplicasEntriesInTheQuota(t *testing.T) {
	dir, exp := t.TempDir(), time.Now().Add(time.Minute)
	open := func() *DirectoryRevocationStore {
		s, err := OpenDirectoryRevocationStore(dir, 0, 2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first, second := open(), open()
	for _, jti := range []string{"one", "two"} {
		if err := first.Revoke(t.Context(), "billing", jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := second.Revoke(t.Context(), "billing", "three", exp); !errors.Is(err, ErrRevocationQuotaExceeded) {
		t.Fatalf("a third revocation at the other replica: %v, want ErrRevocationQuotaExceeded", err)
	}
	if err := second.Revoke(t.Context(), "billing", "two", exp); err != nil {
		t.Fatalf("re-revoking a recorded token at the quota: %v", err)
	}
	if err := second.Revoke(t.Context(), "billing/../payroll", "four", exp); err != nil {
		t.Fatalf("another client at the other replica: %v", err)
	}
}

// TestRevocationRateLimitPerClient: past its burst a client's revocation
// requests get 503 with Retry-After until its bucket refills; another
// client is not affected.
func TestRevocationRateLimitPerClient(t *testing.T) {
	as := startAS(t, twoClients(), func(_ *testAS, cfg *Config) { cfg.RevocationRate, cfg.RevocationBurst = 1, 2 })
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	payroll := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"payroll.example"}})
	token := as.tokenFor(t, &billing, "billing")
	for range 2 {
		if a := as.revokeToken(t, &billing, "billing", "not-a-token"); a.status != http.StatusOK {
			t.Fatalf("a request within the burst: %d %s", a.status, a.body)
		}
	}
	a := as.revokeToken(t, &billing, "billing", token)
	requireRefused(t, a, "rate limit")
	if a.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1 (one request a second)", a.header.Get("Retry-After"))
	}
	requireActive(t, as.introspect(t, &billing, "billing", token))
	if a := as.revokeToken(t, &payroll, "payroll", as.tokenFor(t, &payroll, "payroll")); a.status != http.StatusOK {
		t.Fatalf("another client was limited: %d %s", a.status, a.body)
	}
	if got := counterValue(t, as.srv.Metrics(), "certbound_as_revocation_refusals_total", "limit", "rate_limit"); got != 1 {
		t.Errorf("rate_limit refusals counted %v, want 1", got)
	}
	as.clock.advance(time.Second)
	if a := as.revokeToken(t, &billing, "billing", token); a.status != http.StatusOK {
		t.Fatalf("after the bucket refilled: %d %s", a.status, a.body)
	}
	requireInactive(t, as.introspect(t, &billing, "billing", token))
}

func TestRevocationLimiterForgetsIdleClients(t *testing.T) {
	l, err := newRevocationLimiter(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range minLimiterSweep {
		if _, ok := l.allow(strconv.Itoa(i), now); !ok {
			t.Fatalf("client %d's first request was refused", i)
		}
	}
	// Two seconds on, every bucket is full again but client 0's, which
	// has just been used.
	later := now.Add(2 * time.Second)
	if _, ok := l.allow("0", later); !ok {
		t.Fatal("a refilled bucket refused")
	}
	if _, ok := l.allow("new", later); !ok {
		t.Fatal("a new client's first request was refused")
	}
	if _, busy := l.buckets["0"]; !busy || len(l.buckets) != 2 {
		t.Fatalf("%d buckets kept (client 0's among them: %v), want client 0's and the new client's", len(l.buckets), busy)
	}
	if _, ok := l.allow("0", later); ok {
		t.Fatal("the kept bucket forgot it was empty")
	}
}

func TestRevocationLimiterRefusesNegativeLimits(t *testing.T) {
	for _, c := range []struct {
		rate  float64
		burst int
	}{{-1, 1}, {1, -1}, {math.Inf(1), 1}, {math.NaN(), 1}} {
		if _, err := newRevocationLimiter(c.rate, c.burst); err == nil {
			t.Errorf("rate %v burst %d was accepted", c.rate, c.burst)
		}
	}
}
