// Package httplimits holds what one connection may cost the authorization
// server and the resource proxy: both serve untrusted clients on the same
// terms.
package httplimits

import "time"

const (
	// ReadHeaderTimeout: a client that has not sent its request headers by
	// then is cut off.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout and WriteTimeout bound the rest of the request and the
	// response.
	ReadTimeout  = 15 * time.Second
	WriteTimeout = 15 * time.Second
	// IdleTimeout bounds a kept-alive connection between requests.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes: larger request headers get 431.
	MaxHeaderBytes = 16 << 10
)
