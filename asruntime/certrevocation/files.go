package certrevocation

// CRLs from files, reloaded the way the clients directory is: fsnotify on
// the files' directories (a kubelet ConfigMap update is a symlink swap in
// the mounted directory), a debounce, and a periodic rescan in case a
// notification is missed. A file that fails to load keeps its previous CRL,
// which goes stale in time: fail-closed then refuses, rather than trusting
// a half-written file.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/certbound/certbound/internal/filewatch"
)

const (
	fileRescanInterval = 30 * time.Second
	fileReloadDebounce = 100 * time.Millisecond
)

type fileCRLs struct {
	paths    []string
	maxBytes int64
	maxAge   time.Duration
	log      *slog.Logger
	observer Observer

	mu sync.RWMutex
	// byPath is the last CRL each file loaded.
	byPath map[string]*crl
}

func loadFiles(paths []string, maxBytes int64, maxAge time.Duration, log *slog.Logger, observer Observer) (*fileCRLs, error) {
	f := &fileCRLs{paths: paths, maxBytes: maxBytes, maxAge: maxAge, log: log, observer: observer, byPath: map[string]*crl{}}
	for _, p := range paths {
		list, err := readCRLFile(p, maxBytes)
		if err != nil {
			return nil, err
		}
		f.byPath[p] = newCRL(list, maxAge)
	}
	return f, nil
}

func readCRLFile(path string, maxBytes int64) (*x509.RevocationList, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("CRL file: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("CRL file %s: %w", path, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("CRL file %s is larger than %d bytes", path, maxBytes)
	}
	list, err := ParseCRL(data)
	if err != nil {
		return nil, fmt.Errorf("CRL file %s: %w", path, err)
	}
	return list, nil
}

// reload rereads every file; a file that fails keeps its previous CRL.
func (f *fileCRLs) reload() {
	for _, p := range f.paths {
		list, err := readCRLFile(p, f.maxBytes)
		if err != nil {
			f.observer.CRLFileLoadFailed()
			f.log.Error("CRL file reload failed; keeping its previous CRL", "path", p, "error", err)
			continue
		}
		f.mu.Lock()
		prev := f.byPath[p]
		f.byPath[p] = newCRL(list, f.maxAge)
		f.mu.Unlock()
		if prev == nil || !prev.list.ThisUpdate.Equal(list.ThisUpdate) || len(prev.revoked) != len(list.RevokedCertificateEntries) {
			f.log.Info("CRL file loaded", "path", p, "issuer", list.Issuer.String(),
				"this_update", list.ThisUpdate.UTC().Format(time.RFC3339), "revoked", len(list.RevokedCertificateEntries))
		}
	}
}

// find returns the newest current CRL of cert's issuer among the files.
func (f *fileCRLs) find(cert, issuer *x509.Certificate, now time.Time) (*crl, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var best *crl
	var reasons []error
	for _, p := range f.paths {
		c := f.byPath[p]
		if c == nil {
			continue
		}
		if err := c.covers(cert, issuer, now); err != nil {
			if c.list.Issuer.String() == cert.Issuer.String() {
				reasons = append(reasons, fmt.Errorf("%s: %w", p, err))
			}
			continue
		}
		if best == nil || c.list.ThisUpdate.After(best.list.ThisUpdate) {
			best = c
		}
	}
	if best == nil {
		if len(reasons) == 0 {
			return nil, errors.New("no CRL file of the issuer")
		}
		return nil, errors.Join(reasons...)
	}
	return best, nil
}

// watch reloads on changes until ctx is done.
func (f *fileCRLs) watch(ctx context.Context) {
	dirs := map[string]bool{}
	for _, p := range f.paths {
		dirs[filepath.Dir(p)] = true
	}
	filewatch.Run(ctx, slices.Sorted(maps.Keys(dirs)), filewatch.Options{
		Rescan: fileRescanInterval, Debounce: fileReloadDebounce, What: "the CRL files", Log: f.log,
	}, f.reload)
}
