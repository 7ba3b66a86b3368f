package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// answer is a raw endpoint response.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("HTTP %d body is not JSON: %q", a.status, a.body)
	}
	return m
}

// postForm posts form to base+path.
func postForm(t testing.TB, c *http.Client, target string, form url.Values, mutate ...func(*http.Request)) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mutate {
		m(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// tokenFor gets an access token for a tls_client_auth client over mTLS.
func (as *testAS) tokenFor(t testing.TB, cert *tls.Certificate, clientID string) string {
	t.Helper()
	resp := as.post(t, as.client(cert), as.mtlsURL, ccForm(clientID))
	if resp.status != http.StatusOK {
		t.Fatalf("token: %d %s", resp.status, resp.raw)
	}
	return resp.body["access_token"].(string)
}

// introspect asks as about token with the caller's cert over mTLS.
func (as *testAS) introspect(t testing.TB, cert *tls.Certificate, clientID, token string) answer {
	t.Helper()
	return postForm(t, as.client(cert), as.mtlsURL+introspectionPath, url.Values{"client_id": {clientID}, "token": {token}})
}

func (as *testAS) revokeToken(t testing.TB, cert *tls.Certificate, clientID, token string) answer {
	t.Helper()
	return postForm(t, as.client(cert), as.mtlsURL+revocationPath, url.Values{"client_id": {clientID}, "token": {token}})
}

func requireInactive(t testing.TB, a answer) {
	t.Helper()
	if a.status != http.StatusOK || a.body != `{"active":false}` {
		t.Fatalf("want exactly {\"active\":false}, got %d %q", a.status, a.body)
	}
}

func requireActive(t testing.TB, a answer) map[string]any {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("introspection: %d %s", a.status, a.body)
	}
	m := a.json(t)
	if m["active"] != true {
		t.Fatalf("want an active token, got %s", a.body)
	}
	return m
}

// ledgerAPI is the resource billing's tokens are issued for, and the one
// the resource client serves.
const ledgerAPI = "https://ledger.example/api"

// twoClients is a registry of two tls_client_auth clients, billing (whose
// tokens are for ledgerAPI) and payroll (whose tokens name the issuer), and
// a client_secret_basic one, resource, registered as ledgerAPI's resource
// server.
func twoClients() map[string]map[string]any {
	billing := pkiClient("billing", "tls_client_auth_san_dns", "billing.example")
	billing["resources"] = []string{ledgerAPI}
	return map[string]map[string]any{
		"billing.json":  billing,
		"payroll.json":  pkiClient("payroll", "tls_client_auth_san_dns", "payroll.example"),
		"resource.json": secretClient("resource", AuthMethodClientSecretBasic, map[string]any{"introspection_resources": []string{ledgerAPI}}),
	}
}

func TestMayIntrospect(t *testing.T) {
	owner := &Client{ID: "billing"}
	ledger := &Client{ID: "ledger", introspectionResources: []string{"https://ledger.example/api", "urn:example:audit"}}
	for name, tc := range map[string]struct {
		caller      *Client
		tokenClient string
		audience    []string
		want        bool
	}{
		"a client sees its own token":                                     {owner, "billing", []string{"https://issuer.example"}, true},
		"a client sees its own token whatever its audience":               {owner, "billing", nil, true},
		"another client without introspection resources sees nothing":     {owner, "payroll", []string{"https://ledger.example/api"}, false},
		"a resource server sees a token for its resource":                 {ledger, "billing", []string{"https://ledger.example/api"}, true},
		"a resource server sees a token naming its resource among others": {ledger, "billing", []string{"https://vault.example/api", "urn:example:audit"}, true},
		"a resource server does not see a token for another resource":     {ledger, "billing", []string{"https://vault.example/api"}, false},
		"resources compare exactly":                                       {ledger, "billing", []string{"https://ledger.example/api/"}, false},
		"a token without an audience is its owner's alone":                {ledger, "billing", nil, false},
		"a client_id that merely contains the caller's is another client": {owner, "billing.x", nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := mayIntrospect(tc.caller, tc.tokenClient, tc.audience); got != tc.want {
				t.Fatalf("mayIntrospect = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOnlyTheOwnerAndItsResourceServersSeeAToken: over real mTLS, client
// payroll learns nothing of billing's token ({"active":false}, exactly as
// for a revoked one), billing sees its own, and the resource server
// registered for the token's audience sees it; the same resource server
// learns nothing of payroll's token, issued for the issuer alone.
func TestOnlyTheOwnerAndItsResourceServersSeeAToken(t *testing.T) {
	clients := twoClients()
	clients["vault.json"] = secretClient("vault", AuthMethodClientSecretBasic, map[string]any{"introspection_resources": []string{"https://vault.example/api"}})
	as := startAS(t, clients)
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	payroll := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"payroll.example"}})
	billingToken, payrollToken := as.tokenFor(t, &billing, "billing"), as.tokenFor(t, &payroll, "payroll")
	bySecret := func(id, token string) answer {
		return postForm(t, as.client(nil), as.publicURL+introspectionPath, url.Values{"token": {token}}, basic(id, "s3cret+/=-correct-horse-battery-staple"))
	}

	if m := requireActive(t, as.introspect(t, &billing, "billing", billingToken)); m["client_id"] != "billing" {
		t.Errorf("billing's own token introspects as %v", m)
	}
	requireInactive(t, as.introspect(t, &payroll, "payroll", billingToken))
	if m := requireActive(t, bySecret("resource", billingToken)); m["aud"] != ledgerAPI {
		t.Errorf("the ledger's resource server sees aud %v, want %s", m["aud"], ledgerAPI)
	}
	requireInactive(t, bySecret("vault", billingToken))

	requireActive(t, as.introspect(t, &payroll, "payroll", payrollToken))
	requireInactive(t, bySecret("resource", payrollToken))
	requireInactive(t, as.introspect(t, &billing, "billing", payrollToken))

	if got := counterValue(t, as.srv.Metrics(), "certbound_as_introspection_requests_total", "outcome", "not_permitted"); got != 4 {
		t.Errorf("not_permitted introspections counted %v, want 4", got)
	}
}

func TestIntrospectionOfABoundToken(t *testing.T) {
	as := startAS(t, twoClients())
	billing := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "b"}, DNSNames: []string{"billing.example"}})
	token := as.tokenFor(t, &billing, "billing")

	t.Run("the binding and the claims are returned to an mTLS caller", func(t *testing.T) {
		a := as.introspect(t, &billing, "billing", token)
		m := requireActive(t, a)
		cnf, _ := m["cnf"].(map[string]any)
		if cnf == nil || cnf["x5t#S256"] != certbinding.Thumbprint(billing.Leaf.Raw) {
			t.Fatalf("cnf = %v, want the thumbprint of the client certificate", m["cnf"])
		}
		claims := as.claims(t, token)
		for _, k := range []string{"client_id", "sub", "scope", "iss", "aud", "exp", "iat"} {
			if m[k] == nil || m[k] != claims[k] {
				t.Errorf("%s = %v, want the token's %v", k, m[k], claims[k])
			}
		}
		if m["token_type"] != "Bearer" {
			t.Errorf("token_type = %v", m["token_type"])
		}
		if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", a.header)
		}
	})
	t.Run("a resource server authenticating with a secret on the public listener gets the same", func(t *testing.T) {
		a := postForm(t, as.client(nil), as.publicURL+introspectionPath,
			url.Values{"token": {token}, "token_type_hint": {"refresh_token_or_whatever"}}, basic("resource", "s3cret+/=-correct-horse-battery-staple"))
		m := requireActive(t, a)
		if m["cnf"].(map[string]any)["x5t#S256"] != certbinding.Thumbprint(billing.Leaf.Raw) {
			t.Fatalf("cnf %v", m["cnf"])
		}
	})

	other := startAS(t, twoClients())
	otherCert := other.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	foreign := other.tokenFor(t, &otherCert, "billing")
	parts := strings.Split(token, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for name, tok := range map[string]string{
		"a token of another server":     foreign,
		"a token with a bad signature":  tampered,
		"a token that is not a JWT":     "not-a-token",
		"a JWT with its payload erased": parts[0] + ".." + parts[2],
	} {
		t.Run(name+" is inactive", func(t *testing.T) {
			requireInactive(t, as.introspect(t, &billing, "billing", tok))
		})
	}

	t.Run("refusals", func(t *testing.T) {
		mtls := as.client(&billing)
		for name, c := range map[string]struct {
			a      answer
			status int
			code   string
		}{
			"no token": {postForm(t, mtls, as.mtlsURL+introspectionPath, url.Values{"client_id": {"billing"}}), 400, "invalid_request"},
			"a repeated token": {postForm(t, mtls, as.mtlsURL+introspectionPath,
				url.Values{"client_id": {"billing"}, "token": {token, token}}), 400, "invalid_request"},
			"an unauthenticated caller": {postForm(t, as.client(nil), as.publicURL+introspectionPath, url.Values{"token": {token}}), 401, "invalid_client"},
			"a wrong secret": {postForm(t, as.client(nil), as.publicURL+introspectionPath, url.Values{"token": {token}},
				basic("resource", "nope")), 401, "invalid_client"},
			"a JSON body": {postForm(t, mtls, as.mtlsURL+introspectionPath, url.Values{"token": {token}},
				func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }), 400, "invalid_request"},
			"a body over the limit": {postForm(t, mtls, as.mtlsURL+introspectionPath,
				url.Values{"client_id": {"billing"}, "token": {strings.Repeat("a", maxTokenRequestBody)}}), 413, "invalid_request"},
		} {
			if c.a.status != c.status || c.a.json(t)["error"] != c.code {
				t.Errorf("%s: %d %s, want %d %s", name, c.a.status, c.a.body, c.status, c.code)
			}
		}
		resp, err := mtls.Get(as.mtlsURL + introspectionPath + "?token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
		if got := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", "secret_mismatch"); got != 1 {
			t.Errorf("secret_mismatch failures = %v, want 1", got)
		}
	})

	t.Run("an expired token is inactive", func(t *testing.T) {
		as.clock.advance(DefaultAccessTokenTTL + time.Second)
		defer as.clock.advance(-(DefaultAccessTokenTTL + time.Second))
		requireInactive(t, as.introspect(t, &billing, "billing", token))
	})
	if got := counterValue(t, as.srv.Metrics(), "certbound_as_introspection_requests_total", "outcome", "active"); got != 2 {
		t.Errorf("active introspections counted %v, want 2", got)
	}
}

func TestMetadataAdvertisesIntrospectionAndRevocation(t *testing.T) {
	as := startAS(t, twoClients())
	resp, err := as.client(nil).Get(as.publicURL + metadataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Introspection        string            `json:"introspection_endpoint"`
		IntrospectionMethods []string          `json:"introspection_endpoint_auth_methods_supported"`
		Revocation           string            `json:"revocation_endpoint"`
		RevocationMethods    []string          `json:"revocation_endpoint_auth_methods_supported"`
		Aliases              map[string]string `json:"mtls_endpoint_aliases"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md.Introspection != as.publicURL+introspectionPath || md.Revocation != as.publicURL+revocationPath ||
		md.Aliases["introspection_endpoint"] != as.mtlsURL+introspectionPath || md.Aliases["revocation_endpoint"] != as.mtlsURL+revocationPath ||
		len(md.IntrospectionMethods) != 4 || len(md.RevocationMethods) != 4 {
		t.Fatalf("metadata %+v", md)
	}
}

// TestTokenOfAnUnregisteredClientIsInactive: once a client's registration
// is gone, its tokens are no longer active, though unexpired and never
// revoked; registered again, they are (the registration, not the token,
// was what went away).
func TestTokenOfAnUnregisteredClientIsInactive(t *testing.T) {
	as := startAS(t, twoClients())
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	token := as.tokenFor(t, &billing, "billing")
	introspect := func() answer {
		return postForm(t, as.client(nil), as.publicURL+introspectionPath, url.Values{"token": {token}}, basic("resource", "s3cret+/=-correct-horse-battery-staple"))
	}
	requireActive(t, introspect())

	if err := os.Remove(filepath.Join(as.dir, "billing.json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "billing to leave the registry", func() bool {
		_, ok := as.registry.Clients().Lookup("billing")
		return !ok
	})
	requireInactive(t, introspect())

	writeClient(t, as.dir, "billing.json", twoClients()["billing.json"])
	waitFor(t, "billing to come back", func() bool {
		_, ok := as.registry.Clients().Lookup("billing")
		return ok
	})
	requireActive(t, introspect())
}

// TestTokenOfAnEarlierRegistrationIsInactive: when a client_id is
// registered anew (a new holder, or a new subject) its
// min_certificate_not_before moves past the old tokens' iat, and those
// tokens, bound to certificates that can no longer authenticate, are
// inactive; tokens of the current registration stay active.
func TestTokenOfAnEarlierRegistrationIsInactive(t *testing.T) {
	as := startAS(t, twoClients())
	old := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	oldToken := as.tokenFor(t, &old, "billing")
	introspect := func(token string) answer {
		return postForm(t, as.client(nil), as.publicURL+introspectionPath, url.Values{"token": {token}}, basic("resource", "s3cret+/=-correct-horse-battery-staple"))
	}
	requireActive(t, introspect(oldToken))

	// The new hold starts in the next whole second.
	held := as.clock.Now().Add(time.Second).Truncate(time.Second)
	doc := twoClients()["billing.json"]
	doc["min_certificate_not_before"] = held.UTC().Format(time.RFC3339)
	writeClient(t, as.dir, "billing.json", doc)
	waitFor(t, "the new registration", func() bool {
		c, ok := as.registry.Clients().Lookup("billing")
		return ok && !c.minCertNotBefore.IsZero()
	})
	requireInactive(t, introspect(oldToken))

	as.clock.advance(2 * time.Second)
	current := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}, NotBefore: held})
	requireActive(t, introspect(as.tokenFor(t, &current, "billing")))
}
