// Package filewatch reloads files when the directories that hold them
// change: file system notifications, debounced, with a periodic rescan as
// the safety net for missed or unsupported notifications. Kubernetes
// volume updates swap a `..data` symlink instead of writing the files, so
// callers watch directories and reread whole files.
package filewatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options of a watch.
type Options struct {
	// Rescan is how often reload runs without any notification.
	Rescan time.Duration
	// Debounce collects the burst of events one editor save or one volume
	// update produces into one reload.
	Debounce time.Duration
	// What names the watched files in log lines ("the clients directory").
	What string
	Log  *slog.Logger
}

// Run calls reload whenever a file in dirs changes, and every
// opts.Rescan, until ctx is done. It reloads once as soon as the watch is
// in place, so a change made between the caller's first load and the
// start of the watch is not missed. Without file system notifications (no
// inotify instances left, say) it logs a warning and relies on the rescans
// alone rather than failing.
func Run(ctx context.Context, dirs []string, opts Options, reload func()) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		defer w.Close()
		for _, d := range dirs {
			if err = w.Add(d); err != nil {
				break
			}
		}
	}
	if err != nil {
		opts.Log.Warn("cannot watch "+opts.What+"; rereading periodically", "dirs", dirs,
			"interval", opts.Rescan.String(), "error", err)
	} else {
		events, errs = w.Events, w.Errors
	}
	rescan := time.NewTicker(opts.Rescan)
	defer rescan.Stop()
	debounce := time.NewTimer(opts.Debounce)
	for {
		select {
		case <-ctx.Done():
			debounce.Stop()
			return
		case <-events:
			debounce.Reset(opts.Debounce)
		case err := <-errs:
			opts.Log.Warn("watch error on "+opts.What, "dirs", dirs, "error", err)
			debounce.Reset(opts.Debounce)
		case <-debounce.C:
			reload()
		case <-rescan.C:
			reload()
		}
	}
}
