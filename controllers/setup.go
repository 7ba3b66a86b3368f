// Package controllers holds the OAuthClient and AuthorizationServer
// reconcilers.
package controllers

import (
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure the controllers.
type Options struct {
	// AuthorizationServerImage is the image the AuthorizationServer pods run.
	AuthorizationServerImage string
	// Clock is the time source of certificate and key schedules; nil means
	// the real clock.
	Clock clock.PassiveClock
	// TrustAnchorResyncPeriod is how often a server with client trust
	// anchors re-reads their Secrets, which are not watched (they are not
	// the operator's, and it caches only its own Secrets); 0 never does.
	TrustAnchorResyncPeriod time.Duration
	// ClientWorkers is how many OAuthClients are reconciled at once;
	// 0 means DefaultClientWorkers.
	ClientWorkers int
}

// DefaultClientWorkers is the default of Options.ClientWorkers. A client's
// reconcile waits mostly on the API server (a handful of writes), so one
// worker leaves a burst of new clients queued behind each other's round
// trips; clients are independent (subject races are settled by the
// recorded holds, not by order), so they can run side by side.
const DefaultClientWorkers = 4

// Setup registers every certbound controller with mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	// A server's missing Secrets are rare (its signing keys, trust bundle
	// and serving certificate, once each): every read of a Secret the cache
	// lacks goes to the API server. A client reads the certificate Secret
	// cert-manager labels for it from the cache alone, and goes to the API
	// server only before it creates a Secret (its applier): with thousands
	// of clients waiting for certificates, a read per reconcile would be
	// most of the operator's API requests.
	if err := (&AuthorizationServerReconciler{
		Client:            &secretFallbackClient{Client: mgr.GetClient(), apiReader: mgr.GetAPIReader()},
		Scheme:            mgr.GetScheme(),
		Recorder:          mgr.GetEventRecorder("certbound"),
		Clock:             clk,
		Image:             opts.AuthorizationServerImage,
		TrustAnchorResync: opts.TrustAnchorResyncPeriod,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	workers := opts.ClientWorkers
	if workers == 0 {
		workers = DefaultClientWorkers
	}
	return (&OAuthClientReconciler{
		Workers:   workers,
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("certbound"),
		Clock:     clk,
	}).SetupWithManager(mgr)
}
