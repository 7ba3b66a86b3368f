// Package controllers holds the OAuthClient and AuthorizationServer
// reconcilers.
package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure the controllers.
type Options struct {
	// AuthorizationServerImage is the image the AuthorizationServer pods run.
	AuthorizationServerImage string
}

// Setup registers every certbound controller with mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	return nil
}
