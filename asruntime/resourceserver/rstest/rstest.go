// Package rstest provides what tests of protected resources need, the way
// net/http/httptest does for handlers: a stand-in authorization server on
// real loopback TLS that publishes RFC 8414 metadata and a JWK Set and signs
// RFC 9068 access tokens, and a small certificate authority for client and
// serving certificates.
package rstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// NewCA returns a fresh self-signed CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, key: key}
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// ClientCertificate issues a client-authentication certificate for cn.
func (ca *CA) ClientCertificate(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ServingCertificate issues a server certificate for 127.0.0.1 and
// localhost.
func (ca *CA) ServingCertificate(t testing.TB) tls.Certificate {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

func (ca *CA) issue(t testing.TB, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("serial number: %v", err)
	}
	return n
}

// Authority is a stand-in authorization server: it serves
// /.well-known/oauth-authorization-server and /jwks over TLS on loopback and
// signs access tokens like the certbound authorization server does.
type Authority struct {
	// Issuer is the issuer identifier, the server's https URL.
	Issuer string
	// CA signed the server's TLS certificate; trust CA.Pool().
	CA *CA

	server      *httptest.Server
	jwksFetches atomic.Int64

	mu        sync.Mutex
	signing   jose.JSONWebKey   // private key that signs new tokens
	published []jose.JSONWebKey // public keys served at /jwks
	keyPrefix string            // random, so two Authorities never share a kid
	nextKeyID int
}

// NewAuthority starts an Authority with one ES256 signing key; it stops when
// the test ends.
func NewAuthority(t testing.TB) *Authority {
	t.Helper()
	a := &Authority{CA: NewCA(t, "rstest authorization server CA"), keyPrefix: rand.Text()[:8]}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"issuer": a.Issuer, "jwks_uri": a.Issuer + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		a.jwksFetches.Add(1)
		a.mu.Lock()
		set := jose.JSONWebKeySet{Keys: a.published}
		a.mu.Unlock()
		writeJSON(w, set)
	})
	a.server = httptest.NewUnstartedServer(mux)
	a.server.TLS = &tls.Config{Certificates: []tls.Certificate{a.CA.ServingCertificate(t)}}
	a.server.StartTLS()
	t.Cleanup(a.server.Close)
	a.Issuer = a.server.URL
	a.RotateKey(t, false)
	return a
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// RotateKey makes a new ES256 key the signing key and publishes it. With
// keepOld the previous keys stay published, as in a graceful rotation;
// without, they are withdrawn.
func (a *Authority) RotateKey(t testing.TB, keepOld bool) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextKeyID++
	key := newKey(t)
	a.signing = jose.JSONWebKey{Key: key, KeyID: fmt.Sprintf("%s-%d", a.keyPrefix, a.nextKeyID), Algorithm: string(jose.ES256), Use: "sig"}
	if !keepOld {
		a.published = nil
	}
	a.published = append(a.published, a.signing.Public())
}

// KeyID is the kid of the current signing key.
func (a *Authority) KeyID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.signing.KeyID
}

// JWKSFetches counts the requests served at /jwks.
func (a *Authority) JWKSFetches() int { return int(a.jwksFetches.Load()) }

// Claims returns the claims of a valid access token for clientID and
// audience, bound to cert when cert is not nil. Tests change them to make
// invalid tokens.
func (a *Authority) Claims(clientID, audience string, cert *tls.Certificate) map[string]any {
	now := time.Now()
	claims := map[string]any{
		"iss":       a.Issuer,
		"sub":       clientID,
		"client_id": clientID,
		"aud":       audience,
		"scope":     "read write",
		"iat":       now.Unix(),
		"exp":       now.Add(10 * time.Minute).Unix(),
		"jti":       rand.Text(),
	}
	if cert != nil {
		claims["cnf"] = map[string]string{certbinding.ConfirmationKey: certbinding.Thumbprint(cert.Certificate[0])}
	}
	return claims
}

// Sign signs claims with the current key, typ at+jwt.
func (a *Authority) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return a.SignWithType(t, "at+jwt", claims)
}

// SignWithType is Sign with another typ header, none when empty.
func (a *Authority) SignWithType(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	a.mu.Lock()
	key := a.signing
	a.mu.Unlock()
	return SignWith(t, jose.SigningKey{Algorithm: jose.ES256, Key: key}, typ, claims)
}

// Token is Sign(Claims(clientID, audience, cert)).
func (a *Authority) Token(t testing.TB, clientID, audience string, cert *tls.Certificate) string {
	t.Helper()
	return a.Sign(t, a.Claims(clientID, audience, cert))
}

// SignWith signs claims with any key and typ header (none when empty), for
// tokens the Authority would never issue.
func SignWith(t testing.TB, key jose.SigningKey, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return token
}
