package asruntime

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
)

const (
	workerClientID = "team.worker"
	workerSA       = "system:serviceaccount:team:worker"
)

// fakeReviewer stands for the API server's TokenReview in tests that are
// about the protocol; tokenexchange_envtest_test.go uses the real one.
type fakeReviewer struct {
	mu    sync.Mutex
	users map[string]string // token → user name
	calls int
}

func (f *fakeReviewer) Review(_ context.Context, token, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if u, ok := f.users[token]; ok {
		return u, nil
	}
	return "", errTokenNotAuthenticated
}

// publicClient is the registration document of a service-account client.
func publicClient(id, serviceAccount string) map[string]any {
	return map[string]any{
		"client_id":                  id,
		"token_endpoint_auth_method": AuthMethodNone,
		"grant_types":                []string{GrantTypeTokenExchange, GrantTypeRefreshToken},
		"service_account":            serviceAccount,
		"scope":                      "read write",
		"tls_client_certificate_bound_access_tokens": true,
	}
}

func withReviewer(r TokenReviewer) asOption {
	return func(_ *testAS, cfg *Config) { cfg.TokenReviewer = r }
}

// startPublicAS runs a server with the worker client and a fake reviewer
// that knows "worker-token" (the worker's) and "other-token" (another
// service account's).
func startPublicAS(t *testing.T, opts ...asOption) *testAS {
	t.Helper()
	reviewer := &fakeReviewer{users: map[string]string{
		"worker-token": workerSA,
		"other-token":  "system:serviceaccount:team:other",
	}}
	return startAS(t, map[string]map[string]any{"worker.json": publicClient(workerClientID, workerSA)},
		append([]asOption{withReviewer(reviewer)}, opts...)...)
}

func exchangeForm(clientID, subjectToken string, kv ...string) url.Values {
	f := url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"client_id":          {clientID},
		"subject_token":      {subjectToken},
		"subject_token_type": {tokenTypeJWT},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func refreshForm(clientID, refreshToken string) url.Values {
	return url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {clientID}, "refresh_token": {refreshToken}}
}

// exchange performs a successful token exchange and returns the response.
func (as *testAS) exchange(t *testing.T, cert *tls.Certificate, subjectToken string) tokenResponse {
	t.Helper()
	resp := as.post(t, as.client(cert), as.mtlsURL, exchangeForm(workerClientID, subjectToken))
	if resp.status != http.StatusOK {
		t.Fatalf("token exchange: %d %s", resp.status, resp.raw)
	}
	return resp
}

func TestTokenExchangeIssuesACertificateBoundToken(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "made by the pod")
	resp := as.exchange(t, &cert, "worker-token")

	for member, want := range map[string]any{
		"token_type":        "Bearer",
		"issued_token_type": tokenTypeAccessToken,
		"expires_in":        float64(DefaultAccessTokenTTL / time.Second),
		"scope":             "read write",
	} {
		if got := resp.body[member]; got != want {
			t.Errorf("%s = %v, want %v", member, got, want)
		}
	}
	if rt, _ := resp.body["refresh_token"].(string); rt == "" {
		t.Error("no refresh_token for a client registered for the refresh_token grant")
	}
	claims := as.claims(t, resp.body["access_token"].(string))
	if claims["sub"] != workerSA || claims["client_id"] != workerClientID || claims["aud"] != as.publicURL {
		t.Errorf("sub, client_id, aud = %v, %v, %v", claims["sub"], claims["client_id"], claims["aud"])
	}
	cnf, _ := claims["cnf"].(map[string]any)
	if cnf[certbinding.ConfirmationKey] != certbinding.Thumbprint(cert.Leaf.Raw) {
		t.Errorf("cnf = %v, want the thumbprint of the presented certificate", cnf)
	}
	if resp.header.Get("Cache-Control") != "no-store" {
		t.Error("token response is cacheable")
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "pod")
	withCert := as.client(&cert)
	for name, c := range map[string]struct {
		client *http.Client
		base   string
		form   url.Values
		status int
		code   string
	}{
		"no certificate on the mTLS listener":   {as.client(nil), as.mtlsURL, exchangeForm(workerClientID, "worker-token"), 401, "invalid_client"},
		"the conventional listener":             {withCert, as.publicURL, exchangeForm(workerClientID, "worker-token"), 401, "invalid_client"},
		"a client secret besides":               {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "client_secret", "x"), 401, "invalid_client"},
		"no client_id":                          {withCert, as.mtlsURL, exchangeForm("", "worker-token"), 401, "invalid_client"},
		"an unknown client_id":                  {withCert, as.mtlsURL, exchangeForm("team.nobody", "worker-token"), 401, "invalid_client"},
		"no subject_token":                      {withCert, as.mtlsURL, exchangeForm(workerClientID, ""), 400, "invalid_request"},
		"no subject_token_type":                 {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "subject_token_type", ""), 400, "invalid_request"},
		"an access token as subject_token":      {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "subject_token_type", tokenTypeAccessToken), 400, "invalid_request"},
		"an id_token requested":                 {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "requested_token_type", "urn:ietf:params:oauth:token-type:id_token"), 400, "invalid_request"},
		"delegation (actor_token)":              {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "actor_token", "x", "actor_token_type", tokenTypeJWT), 400, "invalid_request"},
		"a token the API server refuses":        {withCert, as.mtlsURL, exchangeForm(workerClientID, "forged"), 400, "invalid_grant"},
		"another service account's token":       {withCert, as.mtlsURL, exchangeForm(workerClientID, "other-token"), 400, "invalid_grant"},
		"more scope than registered":            {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "scope", "read admin"), 400, "invalid_scope"},
		"a resource not registered":             {withCert, as.mtlsURL, exchangeForm(workerClientID, "worker-token", "resource", "https://elsewhere"), 400, "invalid_target"},
		"client_credentials by a public client": {withCert, as.mtlsURL, ccForm(workerClientID), 400, "unauthorized_client"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := as.post(t, c.client, c.base, c.form)
			if resp.status != c.status || resp.errorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", resp.status, resp.raw, c.status, c.code)
			}
		})
	}
}

func TestRequestedAccessTokenTypeIsAccepted(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "pod")
	resp := as.post(t, as.client(&cert), as.mtlsURL, exchangeForm(workerClientID, "worker-token", "requested_token_type", tokenTypeAccessToken, "scope", "read"))
	if resp.status != http.StatusOK || resp.body["scope"] != "read" {
		t.Fatalf("got %d %s", resp.status, resp.raw)
	}
}

// A server without a way to review service account tokens offers neither
// grant, and says so in its metadata.
func TestPublicClientGrantsNeedATokenReviewer(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"worker.json": publicClient(workerClientID, workerSA)})
	cert, _ := selfSigned(t, "pod")
	resp := as.post(t, as.client(&cert), as.mtlsURL, exchangeForm(workerClientID, "worker-token"))
	if resp.status != http.StatusBadRequest || resp.errorCode() != "unsupported_grant_type" {
		t.Fatalf("got %d %s", resp.status, resp.raw)
	}
	md := fetchMetadata(t, as)
	if contains(md.GrantTypes, GrantTypeTokenExchange) || contains(md.GrantTypes, GrantTypeRefreshToken) || contains(md.AuthMethods, AuthMethodNone) {
		t.Errorf("metadata offers the public client grants: %+v", md)
	}

	with := startPublicAS(t)
	md = fetchMetadata(t, with)
	if !contains(md.GrantTypes, GrantTypeTokenExchange) || !contains(md.GrantTypes, GrantTypeRefreshToken) || !contains(md.AuthMethods, AuthMethodNone) {
		t.Errorf("metadata does not offer the public client grants: %+v", md)
	}
}

type publicMetadata struct {
	GrantTypes  []string `json:"grant_types_supported"`
	AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
}

func fetchMetadata(t *testing.T, as *testAS) publicMetadata {
	t.Helper()
	resp, err := as.client(nil).Get(as.publicURL + metadataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md publicMetadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	return md
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "pod")
	c := as.client(&cert)
	first := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)

	resp := as.post(t, c, as.mtlsURL, refreshForm(workerClientID, first))
	if resp.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", resp.status, resp.raw)
	}
	second, _ := resp.body["refresh_token"].(string)
	if second == "" || second == first {
		t.Fatalf("the refresh token was not rotated: %q", second)
	}
	if _, ok := resp.body["issued_token_type"]; ok {
		t.Error("a refresh response carries issued_token_type")
	}
	claims := as.claims(t, resp.body["access_token"].(string))
	if cnf, _ := claims["cnf"].(map[string]any); cnf[certbinding.ConfirmationKey] != certbinding.Thumbprint(cert.Leaf.Raw) || claims["sub"] != workerSA {
		t.Errorf("refreshed token claims: %v", claims)
	}

	// The first token again: a replay. The family is revoked, so the
	// newest token stops working too.
	if resp := as.post(t, c, as.mtlsURL, refreshForm(workerClientID, first)); resp.errorCode() != "invalid_grant" {
		t.Fatalf("replayed refresh token: %d %s", resp.status, resp.raw)
	}
	if resp := as.post(t, c, as.mtlsURL, refreshForm(workerClientID, second)); resp.errorCode() != "invalid_grant" {
		t.Fatalf("newest token of a revoked family: %d %s", resp.status, resp.raw)
	}
	if got := counterValue(t, as.srv.Metrics(), "certbound_as_refreshes_total", "outcome", string(refreshReused)); got != 1 {
		t.Errorf("reused refreshes counted %v, want 1", got)
	}
}

func TestRefreshTokenIsBoundToTheCertificate(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "pod")
	thief, _ := selfSigned(t, "pod")
	rt := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)

	resp := as.post(t, as.client(&thief), as.mtlsURL, refreshForm(workerClientID, rt))
	if resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_grant" {
		t.Fatalf("refresh with another certificate: %d %s", resp.status, resp.raw)
	}
	// The thief changed nothing: the token is still current for its holder.
	if resp := as.post(t, as.client(&cert), as.mtlsURL, refreshForm(workerClientID, rt)); resp.status != http.StatusOK {
		t.Fatalf("holder's refresh after the thief's attempt: %d %s", resp.status, resp.raw)
	}
}

func TestRefreshTokenLimits(t *testing.T) {
	as := startPublicAS(t, func(_ *testAS, cfg *Config) {
		cfg.RefreshTokenTTL, cfg.RefreshTokenMaxLifetime, cfg.RefreshFamiliesPerClient = time.Hour, 3*time.Hour, 2
	})
	cert, _ := selfSigned(t, "pod")
	c := as.client(&cert)
	refresh := func(rt string) tokenResponse {
		t.Helper()
		return as.post(t, c, as.mtlsURL, refreshForm(workerClientID, rt))
	}

	// Idle TTL: unused for an hour, the token is dead.
	idle := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	as.clock.advance(time.Hour)
	if resp := refresh(idle); resp.errorCode() != "invalid_grant" {
		t.Fatalf("token unused for its TTL: %d %s", resp.status, resp.raw)
	}

	// Max lifetime: used every 50 minutes, the family still ends 3 h after
	// its exchange.
	rt := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	for range 3 {
		as.clock.advance(50 * time.Minute)
		resp := refresh(rt)
		if resp.status != http.StatusOK {
			t.Fatalf("refresh within the limits: %d %s", resp.status, resp.raw)
		}
		rt = resp.body["refresh_token"].(string)
	}
	as.clock.advance(30 * time.Minute)
	if resp := refresh(rt); resp.errorCode() != "invalid_grant" {
		t.Fatalf("family past its maximum lifetime: %d %s", resp.status, resp.raw)
	}

	// Quota: a client keeps two families; a third exchange evicts the
	// oldest.
	one := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	two := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	three := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	if resp := refresh(one); resp.errorCode() != "invalid_grant" {
		t.Fatalf("evicted family: %d %s", resp.status, resp.raw)
	}
	for _, rt := range []string{two, three} {
		if resp := refresh(rt); resp.status != http.StatusOK {
			t.Fatalf("family within the quota: %d %s", resp.status, resp.raw)
		}
	}
}

func TestRefreshRefusals(t *testing.T) {
	as := startPublicAS(t)
	cert, _ := selfSigned(t, "pod")
	c := as.client(&cert)
	rt := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	id, _ := refreshFamilyID(rt)
	for name, c := range map[string]struct {
		form url.Values
		code string
	}{
		"no refresh_token":                 {refreshForm(workerClientID, ""), "invalid_request"},
		"not a refresh token":              {refreshForm(workerClientID, "abc"), "invalid_grant"},
		"an unknown family":                {refreshForm(workerClientID, strings.Repeat("A", refreshFamilyIDLen)+"."+strings.Repeat("B", refreshSecretLen)), "invalid_grant"},
		"more scope than the family":       {url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {workerClientID}, "refresh_token": {rt}, "scope": {"admin"}}, "invalid_scope"},
		"another audience than the family": {url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {workerClientID}, "refresh_token": {rt}, "resource": {"https://elsewhere"}}, "invalid_target"},
	} {
		t.Run(name, func(t *testing.T) {
			if resp := as.post(t, as.client(&cert), as.mtlsURL, c.form); resp.errorCode() != c.code {
				t.Fatalf("got %d %s, want %s", resp.status, resp.raw, c.code)
			}
		})
	}
	// None of the refusals touched the family.
	if resp := as.post(t, c, as.mtlsURL, refreshForm(workerClientID, rt)); resp.status != http.StatusOK {
		t.Fatalf("refresh after refusals: %d %s (family %s)", resp.status, resp.raw, id)
	}
}

func TestDecideRefresh(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	token := "fam." + strings.Repeat("s", refreshSecretLen)
	family := func(mutate func(*RefreshFamily)) *RefreshFamily {
		f := &RefreshFamily{ClientID: "c", Thumbprint: "tp", TokenHash: refreshTokenHash(token), Expires: now.Add(time.Hour), TokenExpires: now.Add(time.Minute)}
		if mutate != nil {
			mutate(f)
		}
		return f
	}
	for name, c := range map[string]struct {
		f          *RefreshFamily
		client, tp string
		want       refreshOutcome
	}{
		"current token, right certificate":      {family(nil), "c", "tp", refreshRotate},
		"no family":                             {nil, "c", "tp", refreshUnknown},
		"another client":                        {family(nil), "d", "tp", refreshClientMismatch},
		"another certificate":                   {family(nil), "c", "other", refreshCertificateMismatch},
		"an earlier token":                      {family(func(f *RefreshFamily) { f.TokenHash = refreshTokenHash("older") }), "c", "tp", refreshReused},
		"an earlier token, another certificate": {family(func(f *RefreshFamily) { f.TokenHash = refreshTokenHash("older") }), "c", "other", refreshCertificateMismatch},
		"token idle too long":                   {family(func(f *RefreshFamily) { f.TokenExpires = now }), "c", "tp", refreshExpired},
		"family too old":                        {family(func(f *RefreshFamily) { f.Expires = now }), "c", "tp", refreshExpired},
	} {
		t.Run(name, func(t *testing.T) {
			if got := decideRefresh(c.f, c.client, c.tp, token, now); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestRefreshTokenFormat(t *testing.T) {
	rt, id, err := newRefreshToken("")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := refreshFamilyID(rt); !ok || got != id {
		t.Fatalf("refreshFamilyID(%q) = %q, %v", rt, got, ok)
	}
	next, sameID, err := newRefreshToken(id)
	if err != nil || sameID != id || next == rt || !strings.HasPrefix(next, id+".") {
		t.Fatalf("rotation: %q %q %v", next, sameID, err)
	}
	for _, bad := range []string{"", ".", id, id + ".", id + ".short", "x" + rt[1:refreshFamilyIDLen] + "!" + rt[refreshFamilyIDLen+1:], rt + "A"} {
		if _, ok := refreshFamilyID(bad); ok {
			t.Errorf("refreshFamilyID accepted %q", bad)
		}
	}
}

func TestPublicClientRegistration(t *testing.T) {
	valid := func(mutate func(map[string]any)) map[string]any {
		doc := publicClient(workerClientID, workerSA)
		if mutate != nil {
			mutate(doc)
		}
		return doc
	}
	for name, c := range map[string]struct {
		doc     map[string]any
		wantErr string
	}{
		"a service-account client":           {doc: valid(nil)},
		"token exchange without refresh":     {doc: valid(func(d map[string]any) { d["grant_types"] = []string{GrantTypeTokenExchange} })},
		"no service_account":                 {doc: valid(func(d map[string]any) { delete(d, "service_account") }), wantErr: "needs service_account"},
		"a service_account that is no user":  {doc: valid(func(d map[string]any) { d["service_account"] = "team:worker" }), wantErr: "is not system:serviceaccount:"},
		"a service_account with a bad name":  {doc: valid(func(d map[string]any) { d["service_account"] = "system:serviceaccount:team:Worker" }), wantErr: "service account name"},
		"a service_account with extra parts": {doc: valid(func(d map[string]any) { d["service_account"] = "system:serviceaccount:team:a:b" }), wantErr: "service account name"},
		"unbound tokens":                     {doc: valid(func(d map[string]any) { d["tls_client_certificate_bound_access_tokens"] = false }), wantErr: "needs tls_client_certificate_bound_access_tokens"},
		"client_credentials": {doc: valid(func(d map[string]any) {
			d["grant_types"] = []string{GrantTypeTokenExchange, GrantTypeClientCredentials}
		}), wantErr: "cannot use the client_credentials grant"},
		"refresh without token exchange": {doc: valid(func(d map[string]any) { d["grant_types"] = []string{GrantTypeRefreshToken} }), wantErr: "needs the " + GrantTypeTokenExchange},
		"a subject":                      {doc: valid(func(d map[string]any) { d["tls_client_auth_subject_dn"] = "CN=worker" }), wantErr: "subject value is registered"},
		"a jwks_uri":                     {doc: valid(func(d map[string]any) { d["jwks_uri"] = "https://keys" }), wantErr: "jwks or jwks_uri is registered"},
		"a client secret":                {doc: valid(func(d map[string]any) { d["client_secret"] = "s3cret-s3cret-s3cret" }), wantErr: `is registered but token_endpoint_auth_method is "none"`},
		"service_account on a tls_client_auth client": {
			doc: func() map[string]any {
				d := pkiClient("c", "tls_client_auth_subject_dn", "CN=c")
				d["service_account"] = workerSA
				return d
			}(),
			wantErr: "service_account is registered",
		},
		"token exchange for a tls_client_auth client": {
			doc: func() map[string]any {
				d := pkiClient("c", "tls_client_auth_subject_dn", "CN=c")
				d["grant_types"] = []string{GrantTypeClientCredentials, GrantTypeTokenExchange}
				return d
			}(),
			wantErr: "are for token_endpoint_auth_method none only",
		},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(c.doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseClient(data)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestRefreshTokenIntrospectionAndRevocation(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"worker.json": publicClient(workerClientID, workerSA),
		"other.json":  publicClient("team.other", "system:serviceaccount:team:other"),
	}, withReviewer(&fakeReviewer{users: map[string]string{"worker-token": workerSA}}))
	cert, _ := selfSigned(t, "pod")
	rt := as.exchange(t, &cert, "worker-token").body["refresh_token"].(string)
	manage := func(path, clientID, token string) answer {
		t.Helper()
		return postForm(t, as.client(&cert), as.mtlsURL+path, url.Values{"client_id": {clientID}, "token": {token}, "token_type_hint": {"refresh_token"}})
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(manage(introspectionPath, workerClientID, rt).body), &got); err != nil {
		t.Fatal(err)
	}
	cnf, _ := got["cnf"].(map[string]any)
	if got["active"] != true || got["token_type"] != "refresh_token" || got["client_id"] != workerClientID || got["sub"] != workerSA ||
		got["scope"] != "read write" || got["iss"] != as.publicURL || cnf[certbinding.ConfirmationKey] != certbinding.Thumbprint(cert.Leaf.Raw) {
		t.Errorf("introspection by its client: %v", got)
	}
	if a := manage(introspectionPath, "team.other", rt); a.body != `{"active":false}` {
		t.Errorf("introspection by another client: %s", a.body)
	}
	if a := manage(revocationPath, "team.other", rt); a.status != http.StatusBadRequest || !strings.Contains(a.body, "unauthorized_client") {
		t.Errorf("revocation by another client: %d %s", a.status, a.body)
	}
	if a := manage(revocationPath, workerClientID, rt); a.status != http.StatusOK {
		t.Fatalf("revocation by its client: %d %s", a.status, a.body)
	}
	if a := manage(introspectionPath, workerClientID, rt); a.body != `{"active":false}` {
		t.Errorf("introspection after revocation: %s", a.body)
	}
	if resp := as.post(t, as.client(&cert), as.mtlsURL, refreshForm(workerClientID, rt)); resp.errorCode() != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %s", resp.status, resp.raw)
	}
}

func TestServiceAccountOfHolder(t *testing.T) {
	reg := func(sa, holderNamespace string) *v1alpha1.ClientRegistration {
		return &v1alpha1.ClientRegistration{Spec: v1alpha1.ClientRegistrationSpec{
			Holder: v1alpha1.ClientHolder{Namespace: holderNamespace, Name: "worker"},
			Client: v1alpha1.ClientMetadata{ClientID: holderNamespace + ".worker", ServiceAccount: sa},
		}}
	}
	for name, c := range map[string]struct {
		reg  *v1alpha1.ClientRegistration
		want bool
	}{
		"no service account":                     {reg("", "team"), true},
		"the holder's namespace":                 {reg(workerSA, "team"), true},
		"another namespace":                      {reg("system:serviceaccount:kube-system:worker", "team"), false},
		"a namespace that only starts the same":  {reg("system:serviceaccount:teams:worker", "team"), false},
		"not a service account user name at all": {reg("team:worker", "team"), false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := serviceAccountOfHolder(c.reg); (err == nil) != c.want {
				t.Fatalf("error %v, want accepted %v", err, c.want)
			}
		})
	}
}
