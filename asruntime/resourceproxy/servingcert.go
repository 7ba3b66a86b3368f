package resourceproxy

import (
	"context"
	"log/slog"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// watchKeyPair loads one of the proxy's TLS certificates — the serving one,
// or the client one it introspects with — from a PEM certificate and key
// file pair, and follows the files until ctx is done, so that a certificate
// renewed by cert-manager is used without a restart. controller-runtime's
// certwatcher does the work: fsnotify for prompt reloads (a kubelet symlink
// swap included) and a 10s poll as the backstop; a pair that fails to load
// (say, the key written a moment after the certificate) keeps the previous
// certificate in service and is logged.
func watchKeyPair(ctx context.Context, certFile, keyFile string, logger *slog.Logger) (*certwatcher.CertWatcher, error) {
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := w.Start(ctx); err != nil {
			logger.Error("certificate files could not be watched; the loaded certificate is used until restart", "cert_file", certFile, "error", err)
		}
	}()
	return w, nil
}
