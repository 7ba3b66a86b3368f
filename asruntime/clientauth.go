package asruntime

// Client authentication at the token endpoint. Each registered client has one
// method; the request must use exactly that one. Whatever fails, the caller
// sees the same RFC 6749 §5.2 invalid_client answer; the reason is only
// logged and counted, so a prober learns nothing about which check failed.

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// authFailure is the metric label and log value of one failed client
// authentication.
type authFailure string

const (
	failMissingClientID     authFailure = "missing_client_id"
	failUnknownClient       authFailure = "unknown_client"
	failMethodMismatch      authFailure = "method_mismatch"
	failNoCertificate       authFailure = "no_certificate"
	failUntrustedChain      authFailure = "untrusted_chain"
	failExpiredChain        authFailure = "expired_chain"
	failWrongKeyUsage       authFailure = "wrong_key_usage"
	failInvalidChain        authFailure = "invalid_chain"
	failSubjectMismatch     authFailure = "subject_mismatch"
	failCertNotRegistered   authFailure = "certificate_not_registered"
	failJWKSUnavailable     authFailure = "jwks_uri_unavailable"
	failSecretMismatch      authFailure = "secret_mismatch"
	failConflictingClientID authFailure = "conflicting_client_id"
	// failMalformedCertHeader: a trusted proxy forwarded a client
	// certificate header that does not parse.
	failMalformedCertHeader authFailure = "malformed_certificate_header"
)

var authFailures = []authFailure{
	failMissingClientID, failUnknownClient, failMethodMismatch, failNoCertificate,
	failUntrustedChain, failExpiredChain, failWrongKeyUsage, failInvalidChain,
	failSubjectMismatch, failCertNotRegistered, failJWKSUnavailable,
	failSecretMismatch, failConflictingClientID, failMalformedCertHeader,
}

// authResult is an authenticated client and, for the mTLS methods, the
// certificate it authenticated with (the one its token is bound to).
type authResult struct {
	client *Client
	cert   *x509.Certificate
}

// authenticate identifies and authenticates the client of req. certs are
// the peer certificates of the TLS connection (nil on the conventional
// listener or when the client sent none).
func (s *Server) authenticate(ctx context.Context, req *tokenRequest, certs []*x509.Certificate) (authResult, authFailure) {
	id := req.clientID
	if req.basicPresent {
		if id != "" && id != req.basicID {
			return authResult{}, failConflictingClientID
		}
		id = req.basicID
	}
	if id == "" {
		return authResult{}, failMissingClientID
	}
	client, ok := s.registry.Clients().Lookup(id)
	if !ok {
		return authResult{}, failUnknownClient
	}
	res := authResult{client: client}
	switch client.AuthMethod {
	case AuthMethodTLSClientAuth, AuthMethodSelfSignedTLSClientAuth:
		// RFC 8705 §2: client_id travels in the body; a secret alongside
		// the certificate is a second method, which RFC 6749 §2.3 forbids.
		if req.basicPresent || req.clientSecret != "" {
			return res, failMethodMismatch
		}
		if len(certs) == 0 {
			return res, failNoCertificate
		}
		var f authFailure
		if client.AuthMethod == AuthMethodTLSClientAuth {
			f = s.pki.authenticate(ctx, client, certs)
		} else {
			f = s.selfSigned.authenticate(ctx, client, certs[0])
		}
		if f != "" {
			return res, f
		}
		res.cert = certs[0]
	case AuthMethodClientSecretBasic:
		if !req.basicPresent || req.clientSecret != "" {
			return res, failMethodMismatch
		}
		if !secretEqual(client.secret, req.basicSecret) {
			return res, failSecretMismatch
		}
	case AuthMethodClientSecretPost:
		if req.basicPresent {
			return res, failMethodMismatch
		}
		if !secretEqual(client.secret, req.clientSecret) {
			return res, failSecretMismatch
		}
	}
	return res, ""
}

// secretEqual compares in time that depends only on the lengths.
func secretEqual(registered []byte, presented string) bool {
	return subtle.ConstantTimeCompare(registered, []byte(presented)) == 1
}

// subjectKind names the RFC 8705 §2.1.2 client metadata member a
// tls_client_auth client registered its subject with.
type subjectKind string

const (
	subjectDN       subjectKind = "tls_client_auth_subject_dn"
	subjectSANDNS   subjectKind = "tls_client_auth_san_dns"
	subjectSANURI   subjectKind = "tls_client_auth_san_uri"
	subjectSANIP    subjectKind = "tls_client_auth_san_ip"
	subjectSANEmail subjectKind = "tls_client_auth_san_email"
)

// subjectMatcher is the one registered subject value of a tls_client_auth
// client, prepared for comparison at load time.
type subjectMatcher struct {
	kind  subjectKind
	dn    DistinguishedName
	value string
	ip    net.IP
}

// key identifies the subject value for the "one subject, one client" rule.
func (m *subjectMatcher) key() string {
	switch m.kind {
	case subjectDN:
		return string(m.kind) + "=" + m.dn.String()
	case subjectSANIP:
		return string(m.kind) + "=" + m.ip.To16().String()
	case subjectSANEmail:
		local, domain, _ := strings.Cut(m.value, "@")
		return string(m.kind) + "=" + local + "@" + strings.ToLower(domain)
	default:
		return string(m.kind) + "=" + m.value
	}
}

// matches compares the registered value with the certificate. subject is
// the certificate's subject in RFC 4514 order, computed by the caller (and
// cached per connection) only when a DN is needed.
func (m *subjectMatcher) matches(cert *x509.Certificate, subject func() (DistinguishedName, error)) bool {
	switch m.kind {
	case subjectDN:
		dn, err := subject()
		return err == nil && m.dn.Equal(dn)
	case subjectSANDNS:
		for _, name := range cert.DNSNames {
			if strings.EqualFold(strings.TrimSuffix(name, "."), m.value) {
				return true
			}
		}
	case subjectSANURI:
		for _, u := range cert.URIs {
			if u.String() == m.value {
				return true
			}
		}
	case subjectSANIP:
		for _, ip := range cert.IPAddresses {
			if ip.Equal(m.ip) {
				return true
			}
		}
	case subjectSANEmail:
		for _, e := range cert.EmailAddresses {
			if emailEqual(e, m.value) {
				return true
			}
		}
	}
	return false
}

// emailEqual compares rfc822Names as RFC 5280 §4.2.1.6 says: the local part
// exactly, the domain without regard to case.
func emailEqual(a, b string) bool {
	al, ad, ok1 := strings.Cut(a, "@")
	bl, bd, ok2 := strings.Cut(b, "@")
	return ok1 && ok2 && al == bl && strings.EqualFold(ad, bd)
}

// connKey is the context key of the per-connection state that
// http.Server.ConnContext attaches.
type connKey struct{}

// connState remembers, for one TLS connection, the outcome of verifying its
// peer's chain. The peer certificates of a connection never change (Go's
// TLS server does not renegotiate), so a keep-alive client pays for chain
// verification once per connection instead of once per token.
type connState struct {
	verified atomic.Pointer[verifiedPeer]
}

func withConnState(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}

func connStateFrom(ctx context.Context) *connState {
	cs, _ := ctx.Value(connKey{}).(*connState)
	return cs
}

// clientCertificates returns the client's certificates: those of the TLS
// connection, or those a trusted proxy forwarded (RFC 8705 §6.5). For
// forwarded certificates the returned context carries no per-connection
// state, since one proxy connection carries many clients' requests.
func (s *Server) clientCertificates(r *http.Request) ([]*x509.Certificate, context.Context, authFailure) {
	certs, forwarded, err := s.certSource.Certificates(r)
	if err != nil {
		s.log.Info("malformed forwarded client certificate", "remote", r.RemoteAddr, "error", err)
		return nil, r.Context(), failMalformedCertHeader
	}
	if forwarded {
		return certs, context.WithValue(r.Context(), connKey{}, (*connState)(nil)), ""
	}
	return certs, r.Context(), ""
}

// authenticateCaller authenticates the client of an introspection or
// revocation request; on failure it has answered invalid_client.
func (s *Server) authenticateCaller(w http.ResponseWriter, r *http.Request, req *tokenRequest) (*Client, bool) {
	certs, ctx, failure := s.clientCertificates(r)
	var auth authResult
	if failure == "" {
		auth, failure = s.authenticate(ctx, req, certs)
	}
	if failure == "" {
		return auth.client, true
	}
	s.metrics.clientAuthFailed(failure)
	clientID := req.clientID
	if clientID == "" {
		clientID = req.basicID
	}
	s.log.Info("client authentication failed", "client_id", clientID, "reason", string(failure),
		"remote", r.RemoteAddr, "certificate", len(certs) > 0, "path", r.URL.Path)
	e := errInvalidClient
	if req.basicPresent {
		e = errInvalidClientBasic
	}
	writeOAuthError(w, e)
	return nil, false
}
