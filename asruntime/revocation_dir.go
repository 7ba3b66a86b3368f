package asruntime

// The standalone durable revocation store: one empty file per revoked token,
// named <exp>_<jti>, in <state-dir>/revoked. Creating a file is atomic, so
// there is no partial entry to recover from after a crash; the directory is
// fsynced before Revoke returns, so an acknowledged revocation survives a
// power loss. Several processes may share the directory: nothing is cached,
// IsRevoked looks the name up on every call, so a revocation is seen by every
// replica as soon as the revoking one has answered (on a local or
// POSIX-coherent filesystem; see the README for network filesystems). Exp in
// the name lets any replica prune expired entries from the directory listing
// alone, without opening files; concurrent pruners only race to remove the
// same names, which is harmless.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DirectoryRevocationStore is a RevocationStore in a directory that several
// authorization server processes may share.
type DirectoryRevocationStore struct {
	dir string
	max int
	// entries is the count at the last Prune plus this process's revocations
	// since: an estimate for the size limit (other replicas' writes show up
	// at the next Prune).
	entries atomic.Int64
}

// OpenDirectoryRevocationStore creates <stateDir>/revoked if needed, prunes
// the entries expired at now and returns the store. max bounds the entries
// (zero: DefaultRevocationMaxEntries).
func OpenDirectoryRevocationStore(stateDir string, max int, now time.Time) (*DirectoryRevocationStore, error) {
	if max <= 0 {
		max = DefaultRevocationMaxEntries
	}
	dir := filepath.Join(stateDir, "revoked")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("revocation store: %w", err)
	}
	s := &DirectoryRevocationStore{dir: dir, max: max}
	if _, err := s.Prune(now); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *DirectoryRevocationStore) name(jti string, exp time.Time) string {
	return filepath.Join(s.dir, strconv.FormatInt(exp.Unix(), 10)+"_"+jti)
}

func (s *DirectoryRevocationStore) Revoke(_ context.Context, jti string, exp time.Time) error {
	if err := validJTI(jti); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	path := s.name(jti, exp)
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	if s.entries.Load() >= int64(s.max) {
		return ErrRevocationStoreFull
	}
	// O_EXCL is not needed: two replicas revoking one token create the
	// same empty file, and either creation is the revocation.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	s.entries.Add(1)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *DirectoryRevocationStore) IsRevoked(_ context.Context, jti string, exp time.Time) (bool, error) {
	if validJTI(jti) != nil {
		// Never recorded: Revoke refuses such a jti.
		return false, nil
	}
	_, err := os.Lstat(s.name(jti, exp))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("revocation store: %w", err)
	}
}

func (s *DirectoryRevocationStore) Prune(now time.Time) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("revocation store: %w", err)
	}
	cutoff := now.Unix()
	left := 0
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		exp, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil || exp >= cutoff {
			left++
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			left++
		}
	}
	s.entries.Store(int64(left))
	return left, nil
}

// Check reads the directory: a missing, replaced or unreadable directory
// makes the server not ready.
func (s *DirectoryRevocationStore) Check() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("revocation store: %w", err)
	}
	defer d.Close()
	if _, err := d.ReadDir(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("revocation store: %w", err)
	}
	return nil
}
