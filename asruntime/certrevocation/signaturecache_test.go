package certrevocation

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedCA is a CA certificate named cn with its own key, with usage.
func selfSignedCA(t *testing.T, cn string, usage x509.KeyUsage) *ca {
	t.Helper()
	k := newKey(t)
	return &ca{cert: issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: usage}, nil, k.Public(), k), key: k}
}

// TestCRLSignatureResultIsPerIssuer: a CRL remembers its signature check
// per issuer certificate, so whichever issuer is checked first, only the
// one whose key signed the CRL and that may sign CRLs is accepted, on the
// first check and on the remembered one.
func TestCRLSignatureResultIsPerIssuer(t *testing.T) {
	root := newCA(t, "root", nil)
	leaf := root.leaf(t, "client")
	// Both have the root's name, so the CRL's issuer name matches theirs.
	otherKey := selfSignedCA(t, "root", x509.KeyUsageCertSign|x509.KeyUsageCRLSign)
	// The root's name and key, but not allowed to sign CRLs.
	noCRLSign := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, root.key.Public(), root.key)
	list, err := ParseCRL(current(t, root))
	if err != nil {
		t.Fatal(err)
	}
	type check struct {
		issuer  *x509.Certificate
		wantErr string
	}
	good := check{issuer: root.cert}
	wrongKey := check{issuer: otherKey.cert, wantErr: "CRL signature"}
	noSign := check{issuer: noCRLSign, wantErr: "cRLSign"}
	cases := map[string][]check{
		"the signer first, then others":  {good, good, wrongKey, wrongKey, noSign, noSign, good},
		"others first, then the signer":  {wrongKey, wrongKey, noSign, noSign, good, good, wrongKey},
		"alternating, every check twice": {noSign, good, noSign, good, wrongKey, good, wrongKey},
	}
	for name, checks := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCRL(list, time.Hour)
			for i, ch := range checks {
				err := c.covers(leaf, ch.issuer, time.Now())
				switch {
				case ch.wantErr == "" && err != nil:
					t.Fatalf("check %d: %v, want the CRL accepted", i, err)
				case ch.wantErr != "" && (err == nil || !strings.Contains(err.Error(), ch.wantErr)):
					t.Fatalf("check %d: %v, want an error naming %q", i, err, ch.wantErr)
				}
			}
		})
	}
}

// TestCRLSignatureResultsAreBounded: past maxSignatureResults issuers a
// CRL stops remembering, and still decides every issuer correctly.
func TestCRLSignatureResultsAreBounded(t *testing.T) {
	root := newCA(t, "root", nil)
	leaf := root.leaf(t, "client")
	list, err := ParseCRL(current(t, root))
	if err != nil {
		t.Fatal(err)
	}
	c := newCRL(list, time.Hour)
	for range maxSignatureResults + 2 {
		other := selfSignedCA(t, "root", x509.KeyUsageCertSign|x509.KeyUsageCRLSign)
		if err := c.covers(leaf, other.cert, time.Now()); err == nil {
			t.Fatal("a CRL accepted as signed by a key that did not sign it")
		}
	}
	if n := len(c.signatureResults); n != maxSignatureResults {
		t.Fatalf("%d remembered results, want the bound %d", n, maxSignatureResults)
	}
	for i := range 2 {
		if err := c.covers(leaf, root.cert, time.Now()); err != nil {
			t.Fatalf("check %d of the signer past the bound: %v", i, err)
		}
	}
}

// TestReloadedCRLIsCheckedAfresh: each CRL a reload brings is judged by
// its own signature and entries, never by what was remembered of the
// CRL it replaces.
func TestReloadedCRLIsCheckedAfresh(t *testing.T) {
	root := newCA(t, "root", nil)
	leaf := root.leaf(t, "client")
	impostor := newKey(t)
	now := time.Now()
	path := filepath.Join(t.TempDir(), "ca.crl")
	writeFile(t, path, current(t, root))
	checker, err := New(Config{Files: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	chain := [][]*x509.Certificate{{leaf, root.cert}}
	steps := []struct {
		name string
		crl  []byte
		want Status
	}{
		{"the first CRL, listing nothing", nil, Good},
		{"a CRL with the root's name signed by another key", signCRL(t, root.cert, impostor, now.Add(-time.Minute), now.Add(time.Hour), nil, leaf), Unavailable},
		{"the root's CRL listing nothing", current(t, root), Good},
		{"the root's CRL listing the leaf", current(t, root, leaf), Revoked},
	}
	for _, step := range steps {
		if step.crl != nil {
			writeFile(t, path, step.crl)
			checker.files.reload()
		}
		for i := range 2 {
			if r := checker.Check(context.Background(), chain); r.Status != step.want {
				t.Fatalf("%s, check %d: %s (%v), want %s", step.name, i, r.Status, r.Err, step.want)
			}
		}
	}
}

// TestRevokedSerialLookup: serial numbers of every length are found, no
// other (not the same magnitude with another sign) is, and the lookup on every request allocates nothing.
func TestRevokedSerialLookup(t *testing.T) {
	long, _ := new(big.Int).SetString("7fffffffffffffffffffffffffffffffffffffff", 16) // 20 octets, RFC 5280's maximum
	serials := []*big.Int{big.NewInt(1), big.NewInt(0xabcdef), long}
	tmpl := &x509.RevocationList{}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s})
	}
	c := newCRL(tmpl, time.Hour)
	for _, s := range serials {
		if _, ok := c.entry(s); !ok {
			t.Errorf("serial %x not found", s)
		}
	}
	for _, unlisted := range []*big.Int{big.NewInt(2), big.NewInt(-1), new(big.Int).Lsh(long, 8)} {
		if _, ok := c.entry(unlisted); ok {
			t.Errorf("unlisted serial %x found", unlisted)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.entry(long) }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}
