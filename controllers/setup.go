// Package controllers holds the OAuthClient and AuthorizationServer
// reconcilers.
package controllers

import (
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
}

// Setup registers every certbound controller with mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	if err := (&AuthorizationServerReconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("certbound"),
		Clock:    clk,
		Image:    opts.AuthorizationServerImage,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&OAuthClientReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("certbound"),
		Clock:     clk,
	}).SetupWithManager(mgr)
}
