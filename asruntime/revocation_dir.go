package asruntime

// The standalone durable revocation store: one empty file per revoked token,
// named <exp>_<jti>, in <state-dir>/revoked. Creating a file is atomic, so
// there is no partial entry to recover from after a crash; the directory is
// fsynced before Revoke returns, so an acknowledged revocation survives a
// power loss. Several processes may share the directory: nothing is
// cached, IsRevoked looks the name up on every call, so a revocation is seen
// by every replica as soon as the revoking one has answered (on a local or
// POSIX-coherent filesystem; see the README for network filesystems). Exp in
// the name lets any replica prune expired entries from the directory listing
// alone, without opening files; concurrent pruners only race to remove the
// same names, which is harmless.
//
// Each revoking client's entries are also recorded, as empty files of the
// same names, in <state-dir>/revoked-by/<key>, the key being
// revokerKey(client_id): a client's quota is checked by listing its own
// directory (at most quota names), so every replica counts every replica's
// entries. The count file is created first, so a crash in between leaves
// at worst a count without a revocation, which only uses quota until the
// token expires. There is one such directory per client that ever revoked
// a token; emptied ones are kept, since removing one could race with a
// revocation creating a file in it.

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
	dir, byClientDir  string
	max, maxPerClient int
	// entries is the count at the last Prune plus this process's revocations
	// since: an estimate for the size limit (other replicas' writes show up
	// at the next Prune).
	entries atomic.Int64
}

// OpenDirectoryRevocationStore creates <stateDir>/revoked and
// <stateDir>/revoked-by if needed, prunes the entries expired at now and
// returns the store. max bounds the entries (zero:
// DefaultRevocationMaxEntries), maxPerClient those of one revoking client
// (zero: DefaultRevocationMaxEntriesPerClient).
func OpenDirectoryRevocationStore(stateDir string, max, maxPerClient int, now time.Time) (*DirectoryRevocationStore, error) {
	max, maxPerClient = revocationBounds(max, DefaultRevocationMaxEntries, maxPerClient)
	dir, byClientDir := filepath.Join(stateDir, "revoked"), filepath.Join(stateDir, "revoked-by")
	for _, d := range []string{dir, byClientDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("revocation store: %w", err)
		}
	}
	s := &DirectoryRevocationStore{dir: dir, byClientDir: byClientDir, max: max, maxPerClient: maxPerClient}
	if _, err := s.Prune(now); err != nil {
		return nil, err
	}
	return s, nil
}

func entryName(jti string, exp time.Time) string {
	return strconv.FormatInt(exp.Unix(), 10) + "_" + jti
}

func (s *DirectoryRevocationStore) name(jti string, exp time.Time) string {
	return filepath.Join(s.dir, entryName(jti, exp))
}

func (s *DirectoryRevocationStore) Revoke(_ context.Context, clientID, jti string, exp time.Time) error {
	if err := validJTI(jti); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	path := s.name(jti, exp)
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	clientDir := filepath.Join(s.byClientDir, revokerKey(clientID))
	held, err := countEntries(clientDir, s.maxPerClient)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if held >= s.maxPerClient {
		return ErrRevocationQuotaExceeded
	}
	if s.entries.Load() >= int64(s.max) {
		return ErrRevocationStoreFull
	}
	if err := os.MkdirAll(clientDir, 0o700); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	// The count first, then the revocation (see the file comment).
	for _, p := range []string{filepath.Join(clientDir, entryName(jti, exp)), path} {
		if err := createEmpty(p); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	}
	s.entries.Add(1)
	return nil
}

// createEmpty creates an empty file, or leaves an existing one. O_EXCL is
// not needed: two replicas revoking one token create the same empty file,
// and either creation is the revocation.
func createEmpty(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// countEntries counts the names in dir, up to limit (a missing directory
// holds none): reading no more than the quota keeps the check cheap
// however full the directory is.
func countEntries(dir string, limit int) (int, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(limit)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return len(names), nil
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
	left, err := pruneDir(s.dir, now)
	if err != nil {
		return 0, err
	}
	s.entries.Store(int64(left))
	clients, err := os.ReadDir(s.byClientDir)
	if err != nil {
		return left, fmt.Errorf("revocation store: %w", err)
	}
	for _, c := range clients {
		if _, err := pruneDir(filepath.Join(s.byClientDir, c.Name()), now); err != nil {
			return left, err
		}
	}
	return left, nil
}

// pruneDir removes the entries of dir expired at now and returns how many
// are left. Names that are not <exp>_<jti> are left alone and counted.
func pruneDir(dir string, now time.Time) (int, error) {
	entries, err := os.ReadDir(dir)
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
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			left++
		}
	}
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
