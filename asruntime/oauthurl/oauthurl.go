// Package oauthurl is the one place that turns an issuer identifier into
// the URLs of the authorization server's endpoints: the RFC 8414
// metadata document at its well-known location, and the endpoint paths the
// server serves under the issuer. The operator writes these URLs into
// status, the server routes requests by them and resource servers discover
// keys through them, so all three import this package and cannot drift.
package oauthurl

import (
	"fmt"
	"net/url"
	"strings"
)

// WellKnownMetadata is the RFC 8414 §3 well-known URI suffix of the
// authorization server metadata.
const WellKnownMetadata = "/.well-known/oauth-authorization-server"

// Endpoint paths under the issuer (and under the RFC 8705 §5 mTLS base
// URL).
const (
	TokenPath = "/token"
	JWKSPath  = "/jwks"
	// IntrospectionPath (RFC 7662) and RevocationPath (RFC 7009).
	IntrospectionPath = "/introspect"
	RevocationPath    = "/revoke"
)

// MetadataPath is the path of the metadata document of an issuer whose URL
// path is issuerPath. RFC 8414 §3.1 puts the well-known segment between the
// host and the issuer's path: "/tenant" gives
// /.well-known/oauth-authorization-server/tenant, and "" or "/" gives
// /.well-known/oauth-authorization-server. A trailing slash of the issuer's
// path is dropped.
func MetadataPath(issuerPath string) string {
	return WellKnownMetadata + strings.TrimSuffix(issuerPath, "/")
}

// MetadataURL is the URL of the issuer's metadata document (RFC 8414
// §3.1): https://as.example.com/tenant gives
// https://as.example.com/.well-known/oauth-authorization-server/tenant.
// The scheme, host and port of the issuer are kept.
func MetadataURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("issuer %q is not an absolute URL", issuer)
	}
	u.Path = MetadataPath(u.Path)
	u.RawPath = ""
	return u.String(), nil
}

// EndpointURL is the URL of the endpoint at path under base (the issuer or
// the mTLS base URL): base without its trailing slash, then path.
func EndpointURL(base, path string) string {
	return strings.TrimSuffix(base, "/") + path
}
