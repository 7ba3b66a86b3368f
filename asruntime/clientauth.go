package asruntime

// Client authentication at the token endpoint. Each registered client has one
// method; the request must use exactly that one. Whatever fails, the caller
// sees the same RFC 6749 §5.2 invalid_client answer; the reason is only
// logged and counted, so a prober learns nothing about which check failed.

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"sync/atomic"
	"time"
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
	// failCertBeforeRegistration: the certificate would authenticate the
	// client, but it was issued (NotBefore) before the client's
	// min_certificate_not_before, i.e. before its current registration.
	failCertBeforeRegistration authFailure = "certificate_before_registration"
)

var authFailures = []authFailure{
	failMissingClientID, failUnknownClient, failMethodMismatch, failNoCertificate,
	failUntrustedChain, failExpiredChain, failWrongKeyUsage, failInvalidChain,
	failSubjectMismatch, failCertNotRegistered, failJWKSUnavailable,
	failSecretMismatch, failConflictingClientID, failMalformedCertHeader,
	failCertBeforeRegistration,
}

// clientAuthError is the one place that decides what a caller whose
// authentication failed is told. Every failure answers the same
// invalid_client, so a prober learns nothing about which check failed,
// with one exception: a certificate that proved itself but predates the
// client's current registration is named as such, because only the
// holder of that (superseded) certificate can see it and it tells the
// workload exactly what to do — present its current certificate.
func clientAuthError(f authFailure, basic bool) *oauthError {
	switch {
	case f == failCertBeforeRegistration:
		return errInvalidClientStaleCert
	case basic:
		return errInvalidClientBasic
	default:
		return errInvalidClient
	}
}

// authResult is an authenticated client and, for the mTLS methods, the
// certificate it authenticated with (the one its token is bound to).
type authResult struct {
	client *Client
	cert   *x509.Certificate
}

// authenticate identifies and authenticates the client of req. certs are
// the peer certificates of the TLS connection (nil on the conventional
// listener or when the client sent none). A failure of a registered client
// is handed to a registry that reports it back (authfailures.go).
func (s *Server) authenticate(ctx context.Context, req *tokenRequest, certs []*x509.Certificate) (authResult, authFailure) {
	res, f := s.authenticateClient(ctx, req, certs)
	if f != "" && res.client != nil {
		if rec, ok := s.registry.(authFailureRecorder); ok {
			rec.recordAuthFailure(res.client.ID, f)
		}
	}
	return res, f
}

// authenticateClient is authenticate without the failure report.
func (s *Server) authenticateClient(ctx context.Context, req *tokenRequest, certs []*x509.Certificate) (authResult, authFailure) {
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
		// Checked after the method's own checks, so only a certificate
		// that would otherwise authenticate learns that it is stale.
		if f := certificateCurrent(client, certs[0]); f != "" {
			s.log.Info("client certificate predates the client's current registration", "client_id", client.ID,
				"certificate_not_before", certs[0].NotBefore.UTC().Format(time.RFC3339),
				"min_certificate_not_before", client.minCertNotBefore.UTC().Format(time.RFC3339))
			return res, f
		}
		res.cert = certs[0]
	case AuthMethodNone:
		// A public client (RFC 6749 §2.1) names itself with client_id and
		// nothing else; its grant proves who it is. RFC 8705 §4: the
		// certificate is not validated against anything — it must only be
		// there, its key proven by the handshake, for tokens to bind to.
		if req.basicPresent || req.clientSecret != "" {
			return res, failMethodMismatch
		}
		if len(certs) == 0 {
			return res, failNoCertificate
		}
		res.cert = certs[0]
	case AuthMethodClientSecretBasic:
		if !req.basicPresent || req.clientSecret != "" {
			return res, failMethodMismatch
		}
		if !client.secret.matches(ctx, req.basicSecret) {
			return res, failSecretMismatch
		}
	case AuthMethodClientSecretPost:
		if req.basicPresent {
			return res, failMethodMismatch
		}
		if !client.secret.matches(ctx, req.clientSecret) {
			return res, failSecretMismatch
		}
	}
	return res, ""
}

// certificateCurrent enforces min_certificate_not_before: a certificate
// issued before it belongs to an earlier registration of the client (a
// previous holder of the same client_id, or a certificate since replaced)
// and never authenticates, whatever the method.
func certificateCurrent(client *Client, leaf *x509.Certificate) authFailure {
	if !client.minCertNotBefore.IsZero() && leaf.NotBefore.Before(client.minCertNotBefore) {
		return failCertBeforeRegistration
	}
	return ""
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
	s.writeOAuthError(w, clientAuthError(failure, req.basicPresent))
	return nil, false
}
