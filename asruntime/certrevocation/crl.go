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
	"slices"
	"sync"
	"time"
)

// maxSignatureResults bounds the issuers whose signature check one CRL
// remembers. Only certificates of verified chains with the CRL's issuer
// name get that far, so more than one or two (the issuer across a key
// rollover, cross-signed copies) is unusual; beyond the bound the
// signature is checked every time.
const maxSignatureResults = 8

// crl is a parsed CRL with its revoked serial numbers indexed (by
// serialKey).
type crl struct {
	list    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry
	// expires is when the CRL stops being usable: its NextUpdate, or
	// ThisUpdate plus the maximum age when it names none.
	expires time.Time

	// signatureResults remembers CheckSignatureFrom by the issuer
	// certificate's DER. A crl never changes (a reload makes a new one) and
	// the outcome depends only on the CRL and the issuer certificate, so
	// the signature is checked once per issuer instead of once per request.
	signatureMu      sync.RWMutex
	signatureResults map[string]error
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
		c.revoked[string(serialKey(nil, e.SerialNumber))] = e
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
	if err := c.signatureFrom(issuer); err != nil {
		return err
	}
	if now.Before(c.list.ThisUpdate) {
		return fmt.Errorf("CRL not valid before %s", c.list.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.expires) {
		return fmt.Errorf("CRL stale since %s", c.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// signatureFrom is why issuer's key did not sign c, or nil when it did.
func (c *crl) signatureFrom(issuer *x509.Certificate) error {
	c.signatureMu.RLock()
	err, known := c.signatureResults[string(issuer.Raw)]
	c.signatureMu.RUnlock()
	if known {
		return err
	}
	if err = c.list.CheckSignatureFrom(issuer); err != nil {
		if errors.As(err, &x509.ConstraintViolationError{}) {
			err = fmt.Errorf("CRL signature: the issuer's certificate %q may not sign CRLs (it needs the cRLSign key usage): %w", issuer.Subject, err)
		} else {
			err = fmt.Errorf("CRL signature: %w", err)
		}
	}
	c.signatureMu.Lock()
	if len(c.signatureResults) < maxSignatureResults {
		if c.signatureResults == nil {
			c.signatureResults = make(map[string]error, 1)
		}
		c.signatureResults[string(issuer.Raw)] = err
	}
	c.signatureMu.Unlock()
	return err
}

func (c *crl) entry(serial *big.Int) (x509.RevocationListEntry, bool) {
	// The key is built in a stack buffer: a lookup allocates nothing.
	var buf [1 + 32]byte
	e, ok := c.revoked[string(serialKey(buf[:0], serial))]
	return e, ok
}

// serialKey appends n's sign and big-endian magnitude to buf: one key per
// value (RFC 5280 serials are positive, but crypto/x509 may parse others).
func serialKey(buf []byte, n *big.Int) []byte {
	sign := byte('+')
	if n.Sign() < 0 {
		sign = '-'
	}
	buf = append(buf, sign)
	start, size := len(buf), (n.BitLen()+7)/8
	buf = slices.Grow(buf, size)[:start+size]
	n.FillBytes(buf[start:])
	return buf
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}
