package certrevocation

// One certificate revocation list (RFC 5280 §5), parsed by crypto/x509 and
// accepted only in the shape this package can judge: a complete CRL for
// one issuer's whole scope.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// crl is a parsed CRL with its revoked serial numbers indexed (by their
// hex text).
type crl struct {
	list    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry
	// expires is when the CRL stops being usable: its NextUpdate, or
	// ThisUpdate plus the maximum age when it names none.
	expires time.Time
}

// ParseCRL reads one CRL, DER or PEM ("X509 CRL" block). It refuses delta
// CRLs, CRLs scoped by an issuing distribution point, indirect CRLs and any
// other critical extension: each would make "not listed" mean less than
// "not revoked".
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block of type %q, want X509 CRL", block.Type)
		}
		der = block.Bytes
	} else if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return nil, errors.New("malformed PEM")
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	for _, ext := range list.Extensions {
		if ext.Critical {
			return nil, fmt.Errorf("CRL has the critical extension %s (delta, partitioned or indirect CRLs are not supported)", ext.Id)
		}
	}
	for _, entry := range list.RevokedCertificateEntries {
		for _, ext := range entry.Extensions {
			if ext.Critical {
				return nil, fmt.Errorf("CRL entry %s has the critical extension %s (indirect CRLs are not supported)", serialHex(entry.SerialNumber), ext.Id)
			}
		}
	}
	return list, nil
}

func newCRL(list *x509.RevocationList, maxAge time.Duration) *crl {
	c := &crl{list: list, revoked: make(map[string]x509.RevocationListEntry, len(list.RevokedCertificateEntries))}
	for _, e := range list.RevokedCertificateEntries {
		c.revoked[e.SerialNumber.Text(16)] = e
	}
	c.expires = list.NextUpdate
	if c.expires.IsZero() {
		c.expires = list.ThisUpdate.Add(maxAge)
	}
	return c
}

// covers reports why c cannot decide cert's status, or "" when it can: it
// must be the CRL of cert's issuer, signed by issuer's key, and current.
func (c *crl) covers(cert, issuer *x509.Certificate, now time.Time) error {
	if !bytes.Equal(c.list.RawIssuer, cert.RawIssuer) {
		return errors.New("CRL of another issuer")
	}
	if err := c.list.CheckSignatureFrom(issuer); err != nil {
		if errors.As(err, &x509.ConstraintViolationError{}) {
			return fmt.Errorf("CRL signature: the issuer's certificate %q may not sign CRLs (it needs the cRLSign key usage): %w", issuer.Subject, err)
		}
		return fmt.Errorf("CRL signature: %w", err)
	}
	if now.Before(c.list.ThisUpdate) {
		return fmt.Errorf("CRL not valid before %s", c.list.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.expires) {
		return fmt.Errorf("CRL stale since %s", c.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

func (c *crl) entry(serial *big.Int) (x509.RevocationListEntry, bool) {
	e, ok := c.revoked[serial.Text(16)]
	return e, ok
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}
