package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

// challengeSyntax is one RFC 7235 §2.1 challenge in auth-param form: an
// auth-scheme token, then comma-separated token=(token / quoted-string)
// parameters.
var challengeSyntax = regexp.MustCompile(`^[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+ ` +
	`[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+=(?:"(?:[^"\\]|\\.)*"|[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+)` +
	`(?:, ?[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+=(?:"(?:[^"\\]|\\.)*"|[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+))*$`)

// TestEvery401CarriesAChallenge: RFC 7235 §3.1 requires WWW-Authenticate on
// every 401, and RFC 6749 §5.2 a Basic one when the client tried Basic.
// Attempts without the Authorization header get the MutualTLS challenge,
// whatever the client_id names, so the header reveals nothing either.
func TestEvery401CarriesAChallenge(t *testing.T) {
	min := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	pki := pkiClient("pki", "tls_client_auth_san_dns", "pki.example")
	pki["min_certificate_not_before"] = min.UTC().Format(time.RFC3339)
	_, jwk := selfSigned(t, "self")
	as := startAS(t, map[string]map[string]any{
		"pki.json":   pki,
		"self.json":  selfSignedClient("self", map[string]any{"jwks": jwksJSON(t, jwk)}),
		"basic.json": secretClient("basic", AuthMethodClientSecretBasic, nil),
		"post.json":  secretClient("post", AuthMethodClientSecretPost, nil),
	})
	basicChallenge := `Basic realm="` + as.publicURL + `", charset="UTF-8"`
	mtlsChallenge := `MutualTLS realm="` + as.publicURL + `"`

	wrong := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"other.example"}})
	preRegistration := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}, NotBefore: min.Add(-time.Hour)})
	otherSelfSigned, _ := selfSigned(t, "self")

	type attempt struct {
		cert   *tls.Certificate
		base   func() string
		form   url.Values
		mutate []func(*http.Request)
		want   string
	}
	mtls := func() string { return as.mtlsURL }
	public := func() string { return as.publicURL }
	cases := map[string]attempt{
		"tls_client_auth without a certificate":           {nil, mtls, ccForm("pki"), nil, mtlsChallenge},
		"tls_client_auth with the wrong certificate":      {&wrong, mtls, ccForm("pki"), nil, mtlsChallenge},
		"tls_client_auth with a pre-registration cert":    {&preRegistration, mtls, ccForm("pki"), nil, mtlsChallenge},
		"self_signed_tls_client_auth, unregistered cert":  {&otherSelfSigned, mtls, ccForm("self"), nil, mtlsChallenge},
		"an unknown client with a certificate":            {&wrong, mtls, ccForm("nobody"), nil, mtlsChallenge},
		"an unknown client without a certificate":         {nil, public, ccForm("nobody"), nil, mtlsChallenge},
		"no client identification":                        {nil, public, ccForm(""), nil, mtlsChallenge},
		"client_secret_post with a wrong secret":          {nil, public, ccForm("post", "client_secret", "nope"), nil, mtlsChallenge},
		"client_secret_basic with a wrong secret":         {nil, public, ccForm(""), []func(*http.Request){basic("basic", "nope")}, basicChallenge},
		"an unknown client over Basic":                    {nil, public, ccForm(""), []func(*http.Request){basic("nobody", "x")}, basicChallenge},
		"tls_client_auth client over Basic":               {&wrong, mtls, ccForm(""), []func(*http.Request){basic("pki", "x")}, basicChallenge},
		"a certificate-holding client with a body secret": {&wrong, mtls, ccForm("pki", "client_secret", "x"), nil, mtlsChallenge},
		"tls_client_auth, certificate from an untrusted CA": {func() *tls.Certificate {
			c := newCA(t, "rogue").leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
			return &c
		}(), mtls, ccForm("pki"), nil, mtlsChallenge},
	}
	for _, path := range []string{tokenPath, introspectionPath, revocationPath} {
		for name, c := range cases {
			t.Run(path+": "+name, func(t *testing.T) {
				form := url.Values{}
				for k, v := range c.form {
					form[k] = v
				}
				if path != tokenPath {
					form.Del("grant_type")
					form.Set("token", "x")
				}
				got := postForm(t, as.client(c.cert), c.base()+path, form, c.mutate...)
				if got.status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", got.status, got.body)
				}
				challenges := got.header.Values("WWW-Authenticate")
				if len(challenges) != 1 {
					t.Fatalf("WWW-Authenticate = %q, want exactly one challenge", challenges)
				}
				if !challengeSyntax.MatchString(challenges[0]) {
					t.Fatalf("WWW-Authenticate %q is not an RFC 7235 challenge", challenges[0])
				}
				if challenges[0] != c.want {
					t.Fatalf("WWW-Authenticate = %q, want %q", challenges[0], c.want)
				}
			})
		}
	}
}

func TestChallengeRealmIsQuoted(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://as.example":            `MutualTLS realm="https://as.example"`,
		`https://as.example/a"b`:        `MutualTLS realm="https://as.example/a\"b"`,
		`https://as.example/back\slash`: `MutualTLS realm="https://as.example/back\\slash"`,
	} {
		c := newChallenges(issuer)
		if c.mtls != want {
			t.Errorf("%s: %q, want %q", issuer, c.mtls, want)
		}
		if !challengeSyntax.MatchString(c.mtls) || !challengeSyntax.MatchString(c.basic) {
			t.Errorf("%s: %q / %q are not RFC 7235 challenges", issuer, c.mtls, c.basic)
		}
	}
}
