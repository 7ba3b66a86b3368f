package asruntime

import (
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
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
	s, err := OpenDirectoryRevocationStore(dir, max, time.Now())
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
		"memory":    func(*testing.T) RevocationStore { return NewMemoryRevocationStore(1) },
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
		"memory":    NewMemoryRevocationStore(0),
	} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			for jti, exp := range map[string]time.Time{"old": now.Add(-time.Minute), "new": now.Add(time.Minute)} {
				if err := s.Revoke(t.Context(), jti, exp); err != nil {
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
	if err := openStore(t, t.TempDir(), 0).Revoke(t.Context(), "../escape", time.Now()); err == nil {
		t.Fatal("a jti that is not base64url must not name a file")
	}
}
