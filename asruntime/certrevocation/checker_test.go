package certrevocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/internal/poll"
)

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serials atomic.Int64

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, tmpl *x509.Certificate, parent *ca, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serials.Add(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	parentCert := tmpl
	if parent != nil {
		parentCert, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t testing.TB, cn string, parent *ca) *ca {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	return &ca{cert: issue(t, tmpl, parent, k.Public(), k), key: k}
}

func (c *ca) leaf(t testing.TB, cn string, dps ...string) *x509.Certificate {
	t.Helper()
	k := newKey(t)
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, CRLDistributionPoints: dps,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, c, k.Public(), nil)
}

var crlNumber atomic.Int64

// crl is a DER CRL of c listing revoked, valid from thisUpdate to
// nextUpdate.
func (c *ca) crl(t testing.TB, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	return signCRL(t, c.cert, c.key, thisUpdate, nextUpdate, nil, revoked...)
}

func signCRL(t testing.TB, issuer *x509.Certificate, key crypto.Signer, thisUpdate, nextUpdate time.Time, exts []pkix.Extension, revoked ...*x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(crlNumber.Add(1)), ThisUpdate: thisUpdate, NextUpdate: nextUpdate, ExtraExtensions: exts}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.SerialNumber, RevocationTime: time.Now().Add(-time.Minute), ReasonCode: 1})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func current(t testing.TB, c *ca, revoked ...*x509.Certificate) []byte {
	return c.crl(t, time.Now().Add(-time.Minute), time.Now().Add(time.Hour), revoked...)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// TestFileCRLDecidesStatus: each way a CRL file can be usable or not, and
// what the two failure modes make of it.
func TestFileCRLDecidesStatus(t *testing.T) {
	root := newCA(t, "root", nil)
	other := newCA(t, "other", nil)
	leaf := root.leaf(t, "client")
	bystander := root.leaf(t, "bystander")
	now := time.Now()
	impostor := newKey(t) // signs a CRL with root's name but not root's key
	idp := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: []byte{0x30, 0x00}}
	cases := map[string]struct {
		crl        []byte
		want       Status
		openAccept bool
	}{
		"a current CRL that lists the certificate revokes it": {
			crl: current(t, root, leaf), want: Revoked},
		"a current CRL that lists another certificate leaves it good": {
			crl: current(t, root, bystander), want: Good, openAccept: true},
		"the same CRL in PEM is read alike": {
			crl: pemCRL(current(t, root, leaf)), want: Revoked},
		"a CRL signed by another key is unusable": {
			crl: signCRL(t, root.cert, impostor, now.Add(-time.Minute), now.Add(time.Hour), nil, leaf), want: Unavailable, openAccept: true},
		"a CRL of another issuer does not cover the certificate": {
			crl: current(t, other, leaf), want: Unavailable, openAccept: true},
		"a CRL past its NextUpdate is stale": {
			crl: root.crl(t, now.Add(-2*time.Hour), now.Add(-time.Hour)), want: Unavailable, openAccept: true},
		"a CRL from the future is not yet valid": {
			crl: root.crl(t, now.Add(time.Hour), now.Add(2*time.Hour)), want: Unavailable, openAccept: true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ca.crl")
			writeFile(t, path, c.crl)
			for _, mode := range []FailureMode{FailClosed, FailOpen} {
				checker, err := New(Config{Files: []string{path}, FailureMode: mode})
				if err != nil {
					t.Fatal(err)
				}
				r := checker.Check(context.Background(), [][]*x509.Certificate{{leaf, root.cert}})
				if r.Status != c.want {
					t.Fatalf("status %s (%v), want %s", r.Status, r.Err, c.want)
				}
				wantAccept := mode == FailOpen && c.openAccept || c.want == Good
				if got := checker.Accepts(r); got != wantAccept {
					t.Fatalf("%s: accepts = %v, want %v", mode, got, wantAccept)
				}
			}
		})
	}
	t.Run("a CRL with a critical issuing distribution point is refused at load", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ca.crl")
		writeFile(t, path, signCRL(t, root.cert, root.key, now.Add(-time.Minute), now.Add(time.Hour), []pkix.Extension{idp}))
		if _, err := New(Config{Files: []string{path}}); err == nil || !strings.Contains(err.Error(), "2.5.29.28") {
			t.Fatalf("err = %v, want the critical extension named", err)
		}
	})
	t.Run("a CRL of a CA certificate without cRLSign is unusable, and says why", func(t *testing.T) {
		// cert-manager's CA certificates lack cRLSign unless their usages
		// list "crl sign"; openssl signs CRLs with them all the same.
		k := newKey(t)
		noCRLSign := &ca{cert: issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "cert-manager CA"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, k.Public(), k), key: k}
		client := noCRLSign.leaf(t, "client")
		asIfAllowed := *noCRLSign.cert
		asIfAllowed.KeyUsage |= x509.KeyUsageCRLSign
		path := filepath.Join(t.TempDir(), "ca.crl")
		writeFile(t, path, signCRL(t, &asIfAllowed, k, now.Add(-time.Minute), now.Add(time.Hour), nil))
		checker, err := New(Config{Files: []string{path}})
		if err != nil {
			t.Fatal(err)
		}
		r := checker.Check(context.Background(), [][]*x509.Certificate{{client, noCRLSign.cert}})
		if r.Status != Unavailable || !strings.Contains(r.Err.Error(), "cRLSign") {
			t.Fatalf("status %s (%v), want unavailable naming cRLSign", r.Status, r.Err)
		}
	})
	t.Run("a missing file is an error at start", func(t *testing.T) {
		if _, err := New(Config{Files: []string{filepath.Join(t.TempDir(), "absent.crl")}}); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestEveryCertificateButTheAnchorIsChecked: a revoked intermediate
// revokes the chain; the anchor needs no CRL, the intermediate needs one.
func TestEveryCertificateButTheAnchorIsChecked(t *testing.T) {
	root := newCA(t, "root", nil)
	inter := newCA(t, "intermediate", root)
	leaf := inter.leaf(t, "client")
	dir := t.TempDir()
	interCRL, rootCRL := filepath.Join(dir, "inter.crl"), filepath.Join(dir, "root.crl")
	writeFile(t, interCRL, current(t, inter))
	writeFile(t, rootCRL, current(t, root, inter.cert))
	chain := [][]*x509.Certificate{{leaf, inter.cert, root.cert}}

	checker, err := New(Config{Files: []string{interCRL, rootCRL}})
	if err != nil {
		t.Fatal(err)
	}
	if r := checker.Check(context.Background(), chain); r.Status != Revoked || r.Cert != inter.cert {
		t.Fatalf("status %s of %v, want the intermediate revoked", r.Status, r.Cert)
	}
	checker, err = New(Config{Files: []string{interCRL}})
	if err != nil {
		t.Fatal(err)
	}
	if r := checker.Check(context.Background(), chain); r.Status != Unavailable || r.Cert != inter.cert {
		t.Fatalf("status %s of %v, want the intermediate's status unavailable without a root CRL", r.Status, r.Cert)
	}
}

// TestFileCRLReloadPicksUpARevocation: replacing the file (as the kubelet
// does for a ConfigMap) revokes without a restart; a broken replacement
// keeps the previous CRL.
func TestFileCRLReloadPicksUpARevocation(t *testing.T) {
	root := newCA(t, "root", nil)
	leaf := root.leaf(t, "client")
	path := filepath.Join(t.TempDir(), "ca.crl")
	writeFile(t, path, current(t, root))
	obs := &countingObserver{}
	checker, err := New(Config{Files: []string{path}, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); checker.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	chain := [][]*x509.Certificate{{leaf, root.cert}}
	if r := checker.Check(ctx, chain); r.Status != Good {
		t.Fatalf("before revocation: %s (%v)", r.Status, r.Err)
	}
	writeFile(t, path, []byte("not a CRL"))
	poll.Until(t, 30*time.Second, "the broken file is counted", func() (bool, string) {
		return obs.fileErrors.Load() > 0, ""
	})
	if r := checker.Check(ctx, chain); r.Status != Good {
		t.Fatalf("after a broken file: %s (%v), want the previous CRL kept", r.Status, r.Err)
	}
	writeFile(t, path, pemCRL(current(t, root, leaf)))
	poll.Until(t, 30*time.Second, "the new CRL revokes the certificate", func() (bool, string) {
		r := checker.Check(ctx, chain)
		return r.Status == Revoked, string(r.Status)
	})
}

type countingObserver struct {
	good, revoked, unavailable, fetchErrors, fileErrors atomic.Int64
}

func (o *countingObserver) RevocationChecked(s Status) {
	map[Status]*atomic.Int64{Good: &o.good, Revoked: &o.revoked, Unavailable: &o.unavailable}[s].Add(1)
}
func (o *countingObserver) CRLFetchFailed()    { o.fetchErrors.Add(1) }
func (o *countingObserver) CRLFileLoadFailed() { o.fileErrors.Add(1) }

// crlServer serves body at /ca.crl and counts the requests.
func crlServer(t testing.TB, body *atomic.Pointer[[]byte]) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/ca.crl" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		_, _ = w.Write(*body.Load())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ca.crl", &hits
}

// TestDistributionPointCRL: fetched from the certificate's distribution
// point, cached for later checks, refused above the size limit, and
// unavailable (not good) when the point fails.
func TestDistributionPointCRL(t *testing.T) {
	root := newCA(t, "root", nil)
	var body atomic.Pointer[[]byte]
	url, hits := crlServer(t, &body)
	leaf := root.leaf(t, "client", url)
	revokedLeaf := root.leaf(t, "revoked", url)
	crl := current(t, root, revokedLeaf)
	body.Store(&crl)

	obs := &countingObserver{}
	checker, err := New(Config{DistributionPoints: true, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r := checker.Check(ctx, [][]*x509.Certificate{{leaf, root.cert}}); r.Status != Good {
		t.Fatalf("unrevoked: %s (%v)", r.Status, r.Err)
	}
	if r := checker.Check(ctx, [][]*x509.Certificate{{revokedLeaf, root.cert}}); r.Status != Revoked {
		t.Fatalf("revoked: %s (%v)", r.Status, r.Err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d fetches for two checks, want 1 (cached)", n)
	}

	t.Run("a CRL above the size limit is refused", func(t *testing.T) {
		small, err := New(Config{DistributionPoints: true, MaxCRLBytes: int64(len(crl) - 1), Observer: obs})
		if err != nil {
			t.Fatal(err)
		}
		before := obs.fetchErrors.Load()
		r := small.Check(ctx, [][]*x509.Certificate{{revokedLeaf, root.cert}})
		if r.Status != Unavailable || !strings.Contains(r.Err.Error(), "larger than") {
			t.Fatalf("status %s (%v), want unavailable: too large", r.Status, r.Err)
		}
		if obs.fetchErrors.Load() != before+1 {
			t.Fatal("the failed fetch was not counted")
		}
	})
	t.Run("a point that serves no CRL makes the status unavailable", func(t *testing.T) {
		broken := root.leaf(t, "client", strings.TrimSuffix(url, "ca.crl")+"missing.crl")
		r := checker.Check(ctx, [][]*x509.Certificate{{broken, root.cert}})
		if r.Status != Unavailable || !strings.Contains(r.Err.Error(), "404") {
			t.Fatalf("status %s (%v), want unavailable: 404", r.Status, r.Err)
		}
	})
	t.Run("a certificate without distribution point has no status", func(t *testing.T) {
		r := checker.Check(ctx, [][]*x509.Certificate{{root.leaf(t, "plain"), root.cert}})
		if r.Status != Unavailable {
			t.Fatalf("status %s, want unavailable", r.Status)
		}
	})
	if obs.good.Load() == 0 || obs.revoked.Load() == 0 || obs.unavailable.Load() == 0 {
		t.Fatalf("checks not counted by result: %d good, %d revoked, %d unavailable", obs.good.Load(), obs.revoked.Load(), obs.unavailable.Load())
	}
}

// TestDistributionPointCRLIsRefetchedWhenStale: a cached CRL is used until
// the maximum age, then fetched again, so a new revocation takes effect.
func TestDistributionPointCRLIsRefetchedWhenStale(t *testing.T) {
	root := newCA(t, "root", nil)
	var body atomic.Pointer[[]byte]
	url, hits := crlServer(t, &body)
	leaf := root.leaf(t, "client", url)
	crl := current(t, root)
	body.Store(&crl)
	clk := &movableClock{}
	checker, err := New(Config{DistributionPoints: true, MaxCacheAge: 10 * time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chain := [][]*x509.Certificate{{leaf, root.cert}}
	if r := checker.Check(ctx, chain); r.Status != Good {
		t.Fatalf("%s (%v)", r.Status, r.Err)
	}
	revoking := current(t, root, leaf)
	body.Store(&revoking)
	clk.advance(5 * time.Minute)
	if r := checker.Check(ctx, chain); r.Status != Good || hits.Load() != 1 {
		t.Fatalf("within the maximum age: %s after %d fetches, want the cached good CRL", r.Status, hits.Load())
	}
	clk.advance(6 * time.Minute)
	if r := checker.Check(ctx, chain); r.Status != Revoked || hits.Load() != 2 {
		t.Fatalf("past the maximum age: %s after %d fetches, want refetched and revoked", r.Status, hits.Load())
	}
}

// TestConcurrentChecksShareOneFetch: many checks of a cold cache make one
// request to the distribution point.
func TestConcurrentChecksShareOneFetch(t *testing.T) {
	root := newCA(t, "root", nil)
	release := make(chan struct{})
	var hits atomic.Int64
	crl := current(t, root)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		_, _ = w.Write(crl)
	}))
	t.Cleanup(srv.Close)
	leaf := root.leaf(t, "client", srv.URL+"/ca.crl")
	checker, err := New(Config{DistributionPoints: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	results := make(chan Status, n)
	for range n {
		go func() {
			results <- checker.Check(context.Background(), [][]*x509.Certificate{{leaf, root.cert}}).Status
		}()
	}
	poll.Until(t, 10*time.Second, "the first fetch reaches the server", func() (bool, string) { return hits.Load() > 0, "" })
	close(release)
	for range n {
		if s := <-results; s != Good {
			t.Fatalf("status %s", s)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d fetches, want 1", hits.Load())
	}
}

type movableClock struct{ offset atomic.Int64 }

func (c *movableClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *movableClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *movableClock) advance(d time.Duration)         { c.offset.Add(int64(d)) }

func TestParseFailureMode(t *testing.T) {
	for in, want := range map[string]FailureMode{"closed": FailClosed, "open": FailOpen} {
		if got, err := ParseFailureMode(in); err != nil || got != want {
			t.Fatalf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "Closed", "fail-open"} {
		if _, err := ParseFailureMode(in); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

// FuzzParseCRL: any input either fails to parse or gives a CRL without
// critical extensions; nothing panics.
func FuzzParseCRL(f *testing.F) {
	root := newCA(f, "root", nil)
	leaf := root.leaf(f, "client")
	der := current(f, root, leaf)
	f.Add(der)
	f.Add(pemCRL(der))
	f.Add([]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ParseCRL(data)
		if err != nil {
			return
		}
		for _, ext := range list.Extensions {
			if ext.Critical {
				t.Fatalf("accepted a critical extension %s", ext.Id)
			}
		}
		c := newCRL(list, time.Hour)
		for _, e := range list.RevokedCertificateEntries {
			if _, ok := c.entry(e.SerialNumber); !ok {
				t.Fatalf("serial %s not indexed", e.SerialNumber)
			}
		}
	})
}
