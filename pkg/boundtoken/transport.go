package boundtoken

// HTTP to protected resources: every request carries the current bound
// token over a connection that presents the certificate it is bound to.
// Connections are pooled per certificate, so a request never pairs a token
// with a connection made with another certificate.

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Transport is an http.RoundTripper that authenticates requests with the
// Source's bound token (Authorization: Bearer) over mutual TLS with the
// certificate the token is bound to.
type Transport struct {
	source    *Source
	tlsConfig *tls.Config

	mu        sync.Mutex
	id        *identity
	transport *http.Transport
}

// Transport returns a RoundTripper for protected resources. tlsConfig
// verifies the resources' servers (RootCAs, ServerName, ...); its client
// certificate settings are replaced. Nil: the system roots.
func (s *Source) Transport(tlsConfig *tls.Config) *Transport {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &Transport{source: s, tlsConfig: tlsConfig.Clone()}
}

// Client returns an *http.Client using Source.Transport(tlsConfig).
func (s *Source) Client(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Transport: s.Transport(tlsConfig)}
}

// RoundTrip sends req with the bound token, over a connection presenting
// its certificate.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	bound, err := t.source.BoundToken(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("bound token for %s: %w", req.URL.Redacted(), err)
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+bound.AccessToken)
	return t.transportFor(bound.id).RoundTrip(out)
}

// transportFor returns the connection pool presenting id's certificate,
// retiring the previous one when the certificate has been renewed.
func (t *Transport) transportFor(id *identity) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.id == id {
		return t.transport
	}
	cfg := t.tlsConfig.Clone()
	cert := id.cert
	cfg.Certificates = nil
	cfg.GetCertificate = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	next := &http.Transport{
		TLSClientConfig:     cfg,
		Proxy:               http.ProxyFromEnvironment,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 16,
	}
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
	t.id, t.transport = id, next
	return next
}

// CloseIdleConnections closes the idle connections of the pool.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
}
