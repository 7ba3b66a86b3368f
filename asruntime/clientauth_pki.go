package asruntime

// tls_client_auth (RFC 8705 §2.1): the chain is verified by crypto/x509 to
// this server's own trust anchors only (§7.4, §7.5), for client-auth usage,
// at the injected clock's time; then the client's one registered subject
// value must match the leaf; then, when revocation checking is on, no
// certificate of the chain may be revoked.

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/certbound/certbound/asruntime/certrevocation"
	"github.com/certbound/certbound/internal/registration"
)

const (
	// failCertRevoked: a current CRL of an issuer in the chain lists a
	// certificate of the chain.
	failCertRevoked authFailure = "certificate_revoked"
	// failRevocationUnavailable: revocation checking fails closed and the
	// status of a certificate of the chain could not be established.
	failRevocationUnavailable authFailure = "certificate_revocation_unavailable"
)

// revocationFailures are the failures only revocation checking reports.
var revocationFailures = []authFailure{failCertRevoked, failRevocationUnavailable}

type pkiAuthenticator struct {
	roots         *x509.CertPool
	intermediates []*x509.Certificate
	clock         clock.PassiveClock
	// revocation checks the verified chains; nil: no revocation checking.
	revocation *certrevocation.Checker
	log        *slog.Logger
}

// verifiedPeer is a verified chain's validity window, the verified chains
// and the leaf's subject in RFC 4514 order, computed at most once per
// connection. Revocation is not cached here: a CRL can change while the
// connection lives.
type verifiedPeer struct {
	notBefore, notAfter time.Time
	chains              [][]*x509.Certificate

	dnOnce sync.Once
	dn     registration.DistinguishedName
	dnErr  error
}

func (v *verifiedPeer) subject(leaf *x509.Certificate) func() (registration.DistinguishedName, error) {
	return func() (registration.DistinguishedName, error) {
		v.dnOnce.Do(func() { v.dn, v.dnErr = registration.CertificateSubjectDN(leaf.RawSubject) })
		return v.dn, v.dnErr
	}
}

func (a *pkiAuthenticator) authenticate(ctx context.Context, client *Client, certs []*x509.Certificate) authFailure {
	if a.roots == nil {
		return failUntrustedChain
	}
	now := a.clock.Now()
	cs := connStateFrom(ctx)
	var peer *verifiedPeer
	if cs != nil {
		if p := cs.verified.Load(); p != nil && !now.Before(p.notBefore) && !now.After(p.notAfter) {
			peer = p
		}
	}
	if peer == nil {
		p, f := a.verify(certs, now)
		if f != "" {
			return f
		}
		peer = p
		if cs != nil {
			cs.verified.Store(p)
		}
	}
	if !client.subject.Matches(certs[0], peer.subject(certs[0])) {
		return failSubjectMismatch
	}
	return a.checkRevocation(ctx, client, peer.chains)
}

// checkRevocation asks the checker about the verified chains and logs what
// refuses a client, or what fail-open lets through; certificates are named
// by serial number and issuer only.
func (a *pkiAuthenticator) checkRevocation(ctx context.Context, client *Client, chains [][]*x509.Certificate) authFailure {
	if a.revocation == nil {
		return ""
	}
	r := a.revocation.Check(ctx, chains)
	switch {
	case r.Status == certrevocation.Revoked:
		a.log.Warn("client certificate revoked", "client_id", client.ID, "serial", certrevocation.SerialHex(r.Cert),
			"issuer", r.Cert.Issuer.String(), "revoked_at", r.RevokedAt.UTC().Format(time.RFC3339), "crl_reason_code", r.ReasonCode)
		return failCertRevoked
	case r.Status == certrevocation.Unavailable:
		accepted := a.revocation.Accepts(r)
		a.log.Warn("client certificate revocation status unavailable", "client_id", client.ID, "serial", certrevocation.SerialHex(r.Cert),
			"issuer", r.Cert.Issuer.String(), "failure_mode", string(a.revocation.FailureMode()), "accepted", accepted, "error", r.Err)
		if !accepted {
			return failRevocationUnavailable
		}
	}
	return ""
}

// verify builds and checks a chain with crypto/x509. The presented
// certificates after the leaf, and any configured intermediates, may serve
// as intermediates; only the trust anchors are roots.
func (a *pkiAuthenticator) verify(certs []*x509.Certificate, now time.Time) (*verifiedPeer, authFailure) {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, c := range a.intermediates {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         a.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, chainFailure(err)
	}
	// The window in which the first verified chain stays valid; outside it
	// the cached result is not used.
	p := &verifiedPeer{chains: chains}
	for i, c := range chains[0] {
		if i == 0 || c.NotBefore.After(p.notBefore) {
			p.notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(p.notAfter) {
			p.notAfter = c.NotAfter
		}
	}
	return p, ""
}

func chainFailure(err error) authFailure {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return failUntrustedChain
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			return failExpiredChain
		case x509.IncompatibleUsage:
			return failWrongKeyUsage
		}
	}
	return failInvalidChain
}
