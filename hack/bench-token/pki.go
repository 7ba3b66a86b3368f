package main

// The fixture of one run: a CA, the serving and client certificates, a CRL,
// the standalone clients registry and the signing keys, all made fresh in a
// temporary directory.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/internal/signingkey"
)

// pkiClientID and selfSignedClientID are the two registered clients.
const (
	pkiClientID        = "billing"
	selfSignedClientID = "worker"
	clientSubjectDN    = "CN=billing,O=Acme"
)

// fixture is everything the servers and the load need.
type fixture struct {
	dir string
	// servingRoots verifies the server; the CA also issues the client
	// certificate, so the same file is the server's --client-ca-file.
	servingRoots *x509.CertPool
	caFile       string
	certFile     string
	keyFile      string
	crlFile      string
	clientsDir   string
	pkiClient    tls.Certificate
	selfClient   tls.Certificate
	// signingKeys are the private JWKs by algorithm; keyFiles the JWK Set
	// file holding each.
	signingKeys map[jose.SignatureAlgorithm]jose.JSONWebKey
	keyFiles    map[jose.SignatureAlgorithm]string
}

func newFixture(dir string) (*fixture, error) {
	f := &fixture{dir: dir, signingKeys: map[jose.SignatureAlgorithm]jose.JSONWebKey{}, keyFiles: map[jose.SignatureAlgorithm]string{}}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca, err := createCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "certbound bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	f.servingRoots = x509.NewCertPool()
	f.servingRoots.AddCert(ca)
	f.caFile = filepath.Join(dir, "ca.pem")
	if err := writePEM(f.caFile, "CERTIFICATE", ca.Raw); err != nil {
		return nil, err
	}

	serving, err := issue(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	f.certFile, f.keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := writePEM(f.certFile, "CERTIFICATE", serving.Certificate[0]); err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serving.PrivateKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(f.keyFile, "PRIVATE KEY", keyDER); err != nil {
		return nil, err
	}

	if f.pkiClient, err = issue(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "billing", Organization: []string{"Acme"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}

	// A current CRL of the CA revoking some other certificate: the check
	// runs in full and passes.
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(1), RevocationTime: now.Add(-time.Minute)},
		},
	}, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	f.crlFile = filepath.Join(dir, "ca.crl")
	if err := writePEM(f.crlFile, "X509 CRL", crl); err != nil {
		return nil, err
	}

	selfKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	self, err := createCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: selfSignedClientID},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, nil, &selfKey.PublicKey, selfKey)
	if err != nil {
		return nil, err
	}
	f.selfClient = tls.Certificate{Certificate: [][]byte{self.Raw}, PrivateKey: selfKey, Leaf: self}

	f.clientsDir = filepath.Join(dir, "clients")
	if err := os.Mkdir(f.clientsDir, 0o700); err != nil {
		return nil, err
	}
	common := func(id, method string) map[string]any {
		return map[string]any{
			"client_id":                  id,
			"token_endpoint_auth_method": method,
			"grant_types":                []string{"client_credentials"},
			"scope":                      "read write",
			"tls_client_certificate_bound_access_tokens": true,
		}
	}
	pkiDoc := common(pkiClientID, "tls_client_auth")
	pkiDoc["tls_client_auth_subject_dn"] = clientSubjectDN
	selfDoc := common(selfSignedClientID, "self_signed_tls_client_auth")
	selfDoc["jwks"] = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &selfKey.PublicKey, Certificates: []*x509.Certificate{self}, Use: "sig"}}}
	for name, doc := range map[string]map[string]any{"billing.json": pkiDoc, "worker.json": selfDoc} {
		if err := writeJSON(filepath.Join(f.clientsDir, name), doc); err != nil {
			return nil, err
		}
	}

	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
		key, err := signingkey.Generate(alg)
		if err != nil {
			return nil, err
		}
		f.signingKeys[alg] = key
		f.keyFiles[alg] = filepath.Join(dir, "signing-"+string(alg)+".json")
		if err := writeJSON(f.keyFiles[alg], jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key}}); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// thumbprint is the RFC 8705 x5t#S256 value of a certificate.
func thumbprint(cert tls.Certificate) string {
	sum := sha256.Sum256(cert.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	cert, err := createCert(tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// createCert signs tmpl with signer; a nil parent makes it self-signed.
func createCert(tmpl, parent *x509.Certificate, pub any, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(2)) // never 1, the serial the CRL revokes
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", tmpl.Subject, err)
	}
	return x509.ParseCertificate(der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
