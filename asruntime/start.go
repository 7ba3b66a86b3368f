package asruntime

// Start is the one-call way to run a server in-process, for tests and for
// programs that embed the authorization server: it binds the listeners
// first, so that an issuer on a kernel-chosen port can be derived from the
// bound address.

import (
	"context"
	"net"
)

// Started is a server serving in the background.
type Started struct {
	// Issuer is the issuer identifier in use.
	Issuer string
	// MTLSBaseURL is the base of the mtls_endpoint_aliases.
	MTLSBaseURL string
	// Public, MTLS and Metrics are the bound addresses (Metrics is nil
	// without a metrics listener).
	Public, MTLS, Metrics net.Addr
	// Server is the running server.
	Server *Server

	done chan error
}

// Start binds publicAddr, mtlsAddr and metricsAddr (empty: no metrics
// listener; ":0" or "127.0.0.1:0" picks a free port), completes cfg — an
// empty Issuer becomes https://<bound public address> — and serves until
// ctx is done. Wait returns Serve's result.
func Start(ctx context.Context, cfg Config, publicAddr, mtlsAddr, metricsAddr string) (*Started, error) {
	ls, err := Listen(publicAddr, mtlsAddr, metricsAddr)
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "https://" + ls.Public.Addr().String()
	}
	if cfg.MTLSBaseURL == "" {
		if cfg.MTLSBaseURL, err = defaultMTLSBaseURL(cfg.Issuer, ls.MTLS.Addr()); err != nil {
			ls.Close()
			return nil, err
		}
	}
	srv, err := New(cfg)
	if err != nil {
		ls.Close()
		return nil, err
	}
	st := &Started{Issuer: cfg.Issuer, MTLSBaseURL: cfg.MTLSBaseURL, Public: ls.Public.Addr(), MTLS: ls.MTLS.Addr(), Server: srv, done: make(chan error, 1)}
	if ls.Metrics != nil {
		st.Metrics = ls.Metrics.Addr()
	}
	go func() {
		err := srv.Serve(ctx, ls)
		ls.Close()
		st.done <- err
	}()
	return st, nil
}

// Wait blocks until the server has shut down after ctx ended.
func (s *Started) Wait() error { return <-s.done }
