package asruntime

// The serving certificate is read from files that cert-manager (or an
// operator) replaces while the server runs. The reloader re-reads them when
// their modification time changes, checked at most once a second from the
// handshake path, so a renewed certificate is served without a restart and
// without a watcher goroutine.

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

const certificateCheckInterval = time.Second

// CertificateReloader serves a key pair from files, following changes.
type CertificateReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

// NewCertificateReloader loads the key pair; it fails if it cannot.
func NewCertificateReloader(certFile, keyFile string, log *slog.Logger) (*CertificateReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertificateReloader{certFile: certFile, keyFile: keyFile, log: log}
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		return nil, err
	}
	if err := r.load(certMod, keyMod); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertificateReloader) modTimes() (time.Time, time.Time, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("serving certificate: %w", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("serving key: %w", err)
	}
	return c.ModTime(), k.ModTime(), nil
}

func (r *CertificateReloader) load(certMod, keyMod time.Time) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("serving key pair: %w", err)
	}
	r.cert, r.certMod, r.keyMod = &cert, certMod, keyMod
	return nil
}

// GetCertificate is a tls.Config.GetCertificate. When the files changed
// but do not form a valid pair (a half-written update), the previous
// certificate keeps being served and the next check retries.
func (r *CertificateReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastCheck) < certificateCheckInterval {
		return r.cert, nil
	}
	r.lastCheck = now
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		r.log.Warn("serving certificate check failed; keeping the current one", "error", err)
		return r.cert, nil
	}
	if certMod.Equal(r.certMod) && keyMod.Equal(r.keyMod) {
		return r.cert, nil
	}
	if err := r.load(certMod, keyMod); err != nil {
		r.log.Warn("serving certificate reload failed; keeping the current one", "error", err)
		return r.cert, nil
	}
	r.log.Info("serving certificate reloaded", "cert_file", r.certFile)
	return r.cert, nil
}
