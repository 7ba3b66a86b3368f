package asruntime

// tls_client_auth (RFC 8705 §2.1): the chain is verified by crypto/x509 to
// this server's own trust anchors only (§7.4, §7.5), for client-auth usage,
// at the injected clock's time; then the client's one registered subject
// value must match the leaf.

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/certbound/certbound/internal/registration"
)

type pkiAuthenticator struct {
	roots         *x509.CertPool
	intermediates []*x509.Certificate
	clock         clock.PassiveClock
}

// verifiedPeer is a verified chain's validity window and the leaf's subject
// in RFC 4514 order, computed at most once per connection.
type verifiedPeer struct {
	notBefore, notAfter time.Time

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
	p := &verifiedPeer{}
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
