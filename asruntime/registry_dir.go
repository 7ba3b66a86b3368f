package asruntime

// The standalone registry: one RFC 7591 document per *.json file in a
// directory, reloaded as a whole when the directory changes. Reloading the
// whole directory (rather than the changed file) keeps the uniqueness rules
// of BuildClientSet simple and also handles Kubernetes volume updates,
// which swap a `..data` symlink instead of writing the files.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certbound/certbound/internal/filewatch"
)

// directoryRescanInterval is the safety net for missed or unsupported file
// system notifications.
const directoryRescanInterval = 30 * time.Second

// reloadDebounce collects the bursts of events one editor save or one
// volume update produces into one reload.
const reloadDebounce = 100 * time.Millisecond

// DirectoryRegistry serves the clients of a directory of JSON documents.
type DirectoryRegistry struct {
	dir     string
	log     *slog.Logger
	metrics *Metrics
	current atomic.Pointer[ClientSet]

	reloadMu sync.Mutex
	// last is the summary of the previous load, so that periodic rescans
	// that change nothing log at debug level only.
	last [2]int
}

// NewDirectoryRegistry loads dir once; it fails only if the directory itself
// cannot be listed. Call Watch to follow changes.
func NewDirectoryRegistry(dir string, log *slog.Logger, metrics *Metrics) (*DirectoryRegistry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &DirectoryRegistry{dir: dir, log: log, metrics: metrics, last: [2]int{-1, -1}}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Clients returns the current snapshot.
func (r *DirectoryRegistry) Clients() *ClientSet { return r.current.Load() }

// Reload reads the directory and swaps the snapshot. A file that cannot be
// read or parsed is logged, counted and skipped. If the directory cannot
// be listed the previous snapshot stays and the error is returned.
func (r *DirectoryRegistry) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("read clients directory: %w", err)
	}
	rejected := 0
	reject := func(source string, err error) {
		rejected++
		r.log.Warn("client registration skipped", "file", source, "error", err)
	}
	var docs []ClientDocument
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(r.dir, name)
		data, err := readBounded(path, maxClientDocument)
		if err != nil {
			reject(name, err)
			continue
		}
		docs = append(docs, ClientDocument{Source: name, Data: data})
	}
	slices.SortFunc(docs, func(a, b ClientDocument) int { return strings.Compare(a.Source, b.Source) })
	set := BuildClientSet(docs, reject)
	r.current.Store(set)
	r.metrics.registryLoaded(set.Len(), rejected)
	level := slog.LevelInfo
	if summary := [2]int{set.Len(), rejected}; summary == r.last {
		level = slog.LevelDebug
	} else {
		r.last = summary
	}
	r.log.Log(context.Background(), level, "client registry loaded", "dir", r.dir, "clients", set.Len(), "rejected", rejected)
	return nil
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return os.ReadFile(path)
}

// Watch reloads on every change of the directory until ctx is done, with a
// periodic rescan in case a notification is missed. Without file system
// notifications (no inotify instances left, say) it logs a warning and
// relies on the rescans alone rather than stopping the server.
func (r *DirectoryRegistry) Watch(ctx context.Context) {
	filewatch.Run(ctx, []string{r.dir}, filewatch.Options{
		Rescan: directoryRescanInterval, Debounce: reloadDebounce, What: "the clients directory", Log: r.log,
	}, r.reloadLogged)
}

func (r *DirectoryRegistry) reloadLogged() {
	if err := r.Reload(); err != nil {
		r.log.Error("client registry reload failed; keeping the previous clients", "dir", r.dir, "error", err)
	}
}
