package resourceproxy

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// servingCertificate is one of the proxy's TLS certificates — the serving
// one, or the client one it introspects with — read from a PEM certificate
// and key file pair and read again when either file changes, so a
// certificate renewed by cert-manager is used without a restart.
type servingCertificate struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	version [2]time.Time // modification times of certFile and keyFile
}

func loadServingCertificate(certFile, keyFile string) (*servingCertificate, error) {
	s := &servingCertificate{certFile: certFile, keyFile: keyFile}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate is a tls.Config.GetCertificate. A pair that fails to load
// (say, the key file is written a moment after the certificate) keeps the
// previous certificate in service; the next handshake tries again.
func (s *servingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	version, err := s.modTimes()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && (s.cert == nil || version != s.version) {
		var cert tls.Certificate
		cert, err = tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err == nil {
			s.cert, s.version = &cert, version
		}
	}
	if s.cert == nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	return s.cert, nil
}

func (s *servingCertificate) modTimes() ([2]time.Time, error) {
	var v [2]time.Time
	for i, name := range []string{s.certFile, s.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return v, err
		}
		v[i] = fi.ModTime()
	}
	return v, nil
}
