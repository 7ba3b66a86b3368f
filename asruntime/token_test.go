package asruntime

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func secretClient(id, method string, extra map[string]any) map[string]any {
	doc := map[string]any{
		"client_id":                  id,
		"client_secret":              "s3cret+/=-correct-horse-battery-staple",
		"token_endpoint_auth_method": method,
		"grant_types":                []string{GrantTypeClientCredentials},
		"scope":                      "read write admin",
	}
	for k, v := range extra {
		doc[k] = v
	}
	return doc
}

func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func TestClientSecretMethods(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"basic.json": secretClient("basic", AuthMethodClientSecretBasic, nil),
		"post.json":  secretClient("post", AuthMethodClientSecretPost, nil),
	})
	c := as.client(nil)
	for name, tc := range map[string]struct {
		form   url.Values
		mutate []func(*http.Request)
		status int
	}{
		"basic with the right secret":                 {ccForm(""), []func(*http.Request){basic("basic", "s3cret+/=-correct-horse-battery-staple")}, 200},
		"basic with a wrong secret":                   {ccForm(""), []func(*http.Request){basic("basic", "s3cret")}, 401},
		"basic client sending its secret in the body": {ccForm("basic", "client_secret", "s3cret+/=-correct-horse-battery-staple"), nil, 401},
		"post with the right secret":                  {ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple"), nil, 200},
		"post with a wrong secret":                    {ccForm("post", "client_secret", "nope"), nil, 401},
		"post client using basic":                     {ccForm(""), []func(*http.Request){basic("post", "s3cret+/=-correct-horse-battery-staple")}, 401},
		"both basic and a body secret":                {ccForm("", "client_secret", "s3cret+/=-correct-horse-battery-staple"), []func(*http.Request){basic("basic", "s3cret+/=-correct-horse-battery-staple")}, 401},
		"basic and a different client_id in the body": {ccForm("post"), []func(*http.Request){basic("basic", "s3cret+/=-correct-horse-battery-staple")}, 401},
		"an unknown client":                           {ccForm("nobody", "client_secret", "x"), nil, 401},
		"no client identification at all":             {ccForm(""), nil, 401},
	} {
		t.Run(name, func(t *testing.T) {
			resp := as.post(t, c, as.publicURL, tc.form, tc.mutate...)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.status, resp.raw)
			}
			if tc.status == 401 && resp.errorCode() != "invalid_client" {
				t.Fatalf("error %q, want invalid_client", resp.errorCode())
			}
			if tc.status == 200 {
				claims := as.claims(t, resp.body["access_token"].(string))
				if _, bound := claims["cnf"]; bound {
					t.Fatal("a secret client without certificate got a bound token")
				}
			}
		})
	}
	t.Run("a failed Basic attempt gets a WWW-Authenticate challenge", func(t *testing.T) {
		resp := as.post(t, c, as.publicURL, ccForm(""), basic("basic", "wrong"))
		if !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("WWW-Authenticate = %q", resp.header.Get("WWW-Authenticate"))
		}
	})
}

// TestInvalidClientRevealsNothing compares the bodies of different failures.
func TestInvalidClientRevealsNothing(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"pki.json":  pkiClient("pki", "tls_client_auth_san_dns", "pki.example"),
		"post.json": secretClient("post", AuthMethodClientSecretPost, nil),
	})
	wrong := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"other.example"}})
	bodies := []string{
		as.post(t, as.client(&wrong), as.mtlsURL, ccForm("pki")).raw,
		as.post(t, as.client(nil), as.mtlsURL, ccForm("pki")).raw,
		as.post(t, as.client(nil), as.publicURL, ccForm("nobody")).raw,
		as.post(t, as.client(nil), as.publicURL, ccForm("post", "client_secret", "x")).raw,
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("failure bodies differ: %q vs %q", bodies[0], b)
		}
	}
}

func TestMTLSRequestWithoutClientID(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"pki.json": pkiClient("pki", "tls_client_auth_san_dns", "pki.example")})
	cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm(""))
	if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failMissingClientID)); n != 1 {
		t.Fatalf("missing_client_id counted %v times", n)
	}
}

func TestBoundTokenPolicy(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"pki.json":        pkiClient("pki", "tls_client_auth_san_dns", "pki.example"),
		"bound-post.json": secretClient("bound-post", AuthMethodClientSecretPost, map[string]any{"tls_client_certificate_bound_access_tokens": true}),
		"plain-post.json": secretClient("plain-post", AuthMethodClientSecretPost, nil),
	})
	cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})

	t.Run("an mTLS client on the conventional listener is refused", func(t *testing.T) {
		resp := as.post(t, as.client(&cert), as.publicURL, ccForm("pki"))
		if resp.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
	})
	t.Run("a bound-token secret client without a certificate gets an error, not an unbound token", func(t *testing.T) {
		resp := as.post(t, as.client(nil), as.publicURL, ccForm("bound-post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
		if resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_request" {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
		if _, ok := resp.body["access_token"]; ok {
			t.Fatal("a token was issued")
		}
	})
	t.Run("a bound-token secret client with a certificate gets a token bound to it", func(t *testing.T) {
		resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("bound-post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
		if resp.status != http.StatusOK {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
		if _, ok := as.claims(t, resp.body["access_token"].(string))["cnf"]; !ok {
			t.Fatal("token is not bound")
		}
	})
	t.Run("an unauthenticated certificate does not bind a plain secret client's token", func(t *testing.T) {
		resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("plain-post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
		if resp.status != http.StatusOK {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
		if _, ok := as.claims(t, resp.body["access_token"].(string))["cnf"]; ok {
			t.Fatal("token is bound")
		}
	})
}

func TestTokenClaimsAndResponse(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"pki.json": pkiClient("pki", "tls_client_auth_san_dns", "pki.example"),
	}, func(_ *testAS, c *Config) { c.AccessTokenTTL = 5 * time.Minute })
	cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("pki", "scope", "read"))
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	if resp.header.Get("Cache-Control") != "no-store" || resp.body["token_type"] != "Bearer" || resp.body["expires_in"] != float64(300) || resp.body["scope"] != "read" {
		t.Fatalf("response %v %s", resp.header, resp.raw)
	}
	claims := as.claims(t, resp.body["access_token"].(string))
	iat, exp := claims["iat"].(float64), claims["exp"].(float64)
	if claims["iss"] != as.publicURL || claims["sub"] != "pki" || claims["client_id"] != "pki" || claims["aud"] != as.publicURL ||
		claims["scope"] != "read" || exp-iat != 300 || claims["jti"] == "" {
		t.Fatalf("claims %v", claims)
	}
	if time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
		t.Fatalf("iat %v is not now", iat)
	}
	second := as.claims(t, as.post(t, as.client(&cert), as.mtlsURL, ccForm("pki")).body["access_token"].(string))
	if second["jti"] == claims["jti"] {
		t.Fatal("jti repeats")
	}
	if second["scope"] != "read write" {
		t.Fatalf("default scope %v, want the registered scope", second["scope"])
	}
}

func TestScopeAndResource(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"post.json": secretClient("post", AuthMethodClientSecretPost, map[string]any{
			"resources": []string{"https://api.example/orders", "https://api.example/billing"},
		}),
	})
	c := as.client(nil)
	form := func(kv ...string) url.Values {
		return ccForm("post", append([]string{"client_secret", "s3cret+/=-correct-horse-battery-staple"}, kv...)...)
	}
	for name, tc := range map[string]struct {
		form  url.Values
		error string
		scope string
		aud   any
	}{
		"a subset of the registered scope":       {form: form("scope", "write read"), scope: "write read", aud: []any{"https://api.example/orders", "https://api.example/billing"}},
		"a scope beyond the registered one":      {form: form("scope", "read delete"), error: "invalid_scope"},
		"a malformed scope":                      {form: form("scope", `read "x"`), error: "invalid_scope"},
		"one registered resource":                {form: form("resource", "https://api.example/orders"), scope: "read write admin", aud: "https://api.example/orders"},
		"two registered resources":               {form: form("resource", "https://api.example/orders", "resource", "https://api.example/billing"), scope: "read write admin", aud: []any{"https://api.example/orders", "https://api.example/billing"}},
		"a resource the client did not register": {form: form("resource", "https://evil.example/"), error: "invalid_target"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := as.post(t, c, as.publicURL, tc.form)
			if tc.error != "" {
				if resp.status != 400 || resp.errorCode() != tc.error {
					t.Fatalf("%d %s, want %s", resp.status, resp.raw, tc.error)
				}
				return
			}
			if resp.status != 200 {
				t.Fatalf("%d %s", resp.status, resp.raw)
			}
			claims := as.claims(t, resp.body["access_token"].(string))
			aud, _ := json.Marshal(claims["aud"])
			want, _ := json.Marshal(tc.aud)
			if claims["scope"] != tc.scope || string(aud) != string(want) {
				t.Fatalf("scope %v aud %s, want %q %s", claims["scope"], aud, tc.scope, want)
			}
		})
	}
}

func TestGrantTypes(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"post.json":    secretClient("post", AuthMethodClientSecretPost, nil),
		"nogrant.json": secretClient("nogrant", AuthMethodClientSecretPost, map[string]any{"grant_types": nil}),
	})
	c := as.client(nil)
	resp := as.post(t, c, as.publicURL, url.Values{"grant_type": {"password"}, "client_id": {"post"}, "client_secret": {"s3cret+/=-correct-horse-battery-staple"}})
	if resp.status != 400 || resp.errorCode() != "unsupported_grant_type" {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	resp = as.post(t, c, as.publicURL, url.Values{"client_id": {"post"}, "client_secret": {"s3cret+/=-correct-horse-battery-staple"}})
	if resp.status != 400 || resp.errorCode() != "invalid_request" {
		t.Fatalf("missing grant_type: %d %s", resp.status, resp.raw)
	}
	// RFC 7591 §2: grant_types defaults to authorization_code.
	resp = as.post(t, c, as.publicURL, ccForm("nogrant", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
	if resp.status != 400 || resp.errorCode() != "unauthorized_client" {
		t.Fatalf("client without client_credentials: %d %s", resp.status, resp.raw)
	}
}

func TestMalformedTokenRequests(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"post.json": secretClient("post", AuthMethodClientSecretPost, nil)})
	c := as.client(nil)
	good := "grant_type=client_credentials&client_id=post&client_secret=s3cret%2B%2F%3D-correct-horse-battery-staple"
	for name, tc := range map[string]struct {
		method, contentType, body string
		header                    map[string]string
		status                    int
	}{
		"the well-formed request itself":    {"POST", "application/x-www-form-urlencoded", good, nil, 200},
		"a charset parameter of UTF-8":      {"POST", "application/x-www-form-urlencoded; charset=UTF-8", good, nil, 200},
		"GET":                               {"GET", "", "", nil, 405},
		"PUT":                               {"PUT", "application/x-www-form-urlencoded", good, nil, 405},
		"a JSON body":                       {"POST", "application/json", `{"grant_type":"client_credentials"}`, nil, 400},
		"no content type":                   {"POST", "", good, nil, 400},
		"a Latin-1 charset":                 {"POST", "application/x-www-form-urlencoded; charset=iso-8859-1", good, nil, 400},
		"a repeated client_id":              {"POST", "application/x-www-form-urlencoded", good + "&client_id=post", nil, 400},
		"a repeated grant_type":             {"POST", "application/x-www-form-urlencoded", "grant_type=client_credentials&" + good, nil, 400},
		"a broken percent escape":           {"POST", "application/x-www-form-urlencoded", good + "&scope=%zz", nil, 400},
		"invalid UTF-8":                     {"POST", "application/x-www-form-urlencoded", good + "&scope=%ff", nil, 400},
		"an oversize body":                  {"POST", "application/x-www-form-urlencoded", good + "&pad=" + strings.Repeat("a", maxTokenRequestBody), nil, 413},
		"a Bearer authorization header":     {"POST", "application/x-www-form-urlencoded", good, map[string]string{"Authorization": "Bearer abc"}, 400},
		"a Basic header that is not base64": {"POST", "application/x-www-form-urlencoded", "grant_type=client_credentials", map[string]string{"Authorization": "Basic %%%"}, 400},
		"unknown parameters are ignored":    {"POST", "application/x-www-form-urlencoded", good + "&foo=bar&foo=baz", nil, 200},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, as.publicURL+tokenPath, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body is not JSON: %q", raw)
			}
			if tc.status != 200 && body["error"] != "invalid_request" {
				t.Fatalf("error %v, want invalid_request", body["error"])
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	as := startAS(t, nil)
	for _, base := range []string{as.publicURL, as.mtlsURL} {
		resp, err := as.client(nil).Get(base + metadataPath)
		if err != nil {
			t.Fatal(err)
		}
		var md map[string]any
		err = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		aliases, _ := md["mtls_endpoint_aliases"].(map[string]any)
		methods, _ := json.Marshal(md["token_endpoint_auth_methods_supported"])
		if md["issuer"] != as.publicURL || md["token_endpoint"] != as.publicURL+tokenPath || md["jwks_uri"] != as.publicURL+jwksPath ||
			md["tls_client_certificate_bound_access_tokens"] != true ||
			aliases["token_endpoint"] != as.mtlsURL+tokenPath || aliases["jwks_uri"] != as.mtlsURL+jwksPath ||
			!strings.Contains(string(methods), `"tls_client_auth"`) || !strings.Contains(string(methods), `"self_signed_tls_client_auth"`) {
			t.Fatalf("metadata from %s: %v", base, md)
		}
		if gt, _ := md["grant_types_supported"].([]any); !slices.Contains(gt, any("client_credentials")) {
			t.Fatalf("grant_types_supported %v", md["grant_types_supported"])
		}
	}
	resp, err := as.client(nil).Post(as.publicURL+metadataPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST metadata: %d", resp.StatusCode)
	}
	resp, err = as.client(nil).Get(as.mtlsURL + jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(raw), `"d"`) || !strings.Contains(string(raw), `"kty":"EC"`) {
		t.Fatalf("published JWKS %s", raw)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"post.json": secretClient("post", AuthMethodClientSecretPost, nil)})
	as.post(t, as.client(nil), as.publicURL, ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": `certbound_as_token_requests_total{outcome="issued"} 1`,
	} {
		resp, err := http.Get(as.metricsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(raw), want) {
			t.Fatalf("%s: %d, no %q in\n%s", path, resp.StatusCode, want, raw)
		}
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_clients_loaded", "", ""); n != 1 {
		t.Fatalf("clients_loaded = %v", n)
	}
}

// TestIssuerWithPath serves the endpoints below the issuer's path and the
// metadata at the RFC 8414 §3 location, and the mTLS aliases below an
// explicitly configured base URL.
func TestIssuerWithPath(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"post.json": secretClient("post", AuthMethodClientSecretPost, nil)},
		func(as *testAS, c *Config) {
			c.Issuer = as.publicURL + "/tenant"
			c.MTLSBaseURL = as.mtlsURL + "/mtls"
		})
	resp, err := as.client(nil).Get(as.publicURL + metadataPath + "/tenant")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Issuer        string            `json:"issuer"`
		TokenEndpoint string            `json:"token_endpoint"`
		Aliases       map[string]string `json:"mtls_endpoint_aliases"`
	}
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	if md.Issuer != as.publicURL+"/tenant" || md.TokenEndpoint != as.publicURL+"/tenant/token" || md.Aliases["token_endpoint"] != as.mtlsURL+"/mtls/token" {
		t.Fatalf("metadata %+v", md)
	}
	for _, endpoint := range []string{md.TokenEndpoint, md.Aliases["token_endpoint"]} {
		r := as.post(t, as.client(nil), strings.TrimSuffix(endpoint, tokenPath), ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", endpoint, r.status, r.raw)
		}
	}
}

// TestAudience documents the aud rule (RFC 8707, RFC 9068 §3): a requested
// resource must be registered and then is the whole audience; without a
// request the audience is the registered resources; the issuer is the
// audience only of a client that registered no resources, and never added
// to a client's registered ones.
func TestAudience(t *testing.T) {
	const orders, billing = "https://api.example/orders", "https://api.example/billing"
	as := startAS(t, map[string]map[string]any{
		"scoped.json": secretClient("scoped", AuthMethodClientSecretPost, map[string]any{"resources": []string{orders, billing}}),
		"plain.json":  secretClient("plain", AuthMethodClientSecretPost, nil),
	})
	form := func(id string, resources ...string) url.Values {
		f := ccForm(id, "client_secret", "s3cret+/=-correct-horse-battery-staple")
		for _, r := range resources {
			f.Add("resource", r)
		}
		return f
	}
	for name, c := range map[string]struct {
		form url.Values
		aud  any // nil: invalid_target
	}{
		"registered resources, one requested":        {form: form("scoped", billing), aud: billing},
		"registered resources, none requested":       {form: form("scoped"), aud: []any{orders, billing}},
		"registered resources, the issuer requested": {form: form("scoped", as.publicURL)},
		"registered resources, an unregistered one":  {form: form("scoped", orders, "https://api.example/other")},
		"no registered resources, none requested":    {form: form("plain"), aud: as.publicURL},
		"no registered resources, one requested":     {form: form("plain", orders)},
		"no registered resources, the issuer":        {form: form("plain", as.publicURL)},
	} {
		t.Run(name, func(t *testing.T) {
			resp := as.post(t, as.client(nil), as.publicURL, c.form)
			if c.aud == nil {
				if resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_target" {
					t.Fatalf("%d %s, want invalid_target", resp.status, resp.raw)
				}
				return
			}
			if resp.status != http.StatusOK {
				t.Fatalf("%d %s", resp.status, resp.raw)
			}
			got, _ := json.Marshal(as.claims(t, resp.body["access_token"].(string))["aud"])
			want, _ := json.Marshal(c.aud)
			if string(got) != string(want) {
				t.Fatalf("aud %s, want %s", got, want)
			}
		})
	}
}
