package asruntime

// self_signed_tls_client_auth (RFC 8705 §2.2): no chain validation; the
// presented certificate must be byte for byte one the client registered,
// as x5c[0] of a key in its jwks or in the JWK Set behind its jwks_uri
// (fetched and cached as jwksfetch.go describes).

import (
	"bytes"
	"context"
	"crypto/x509"
)

type selfSignedAuthenticator struct {
	fetcher *jwksFetcher
}

func (a *selfSignedAuthenticator) authenticate(ctx context.Context, client *Client, leaf *x509.Certificate) authFailure {
	if client.jwksURI == "" {
		if containsCertificate(client.selfSignedCerts, leaf.Raw) {
			return ""
		}
		return failCertNotRegistered
	}
	certs, err := a.fetcher.certificates(ctx, client.ID, client.jwksURI, leaf.Raw)
	switch {
	case containsCertificate(certs, leaf.Raw):
		return ""
	case err != nil:
		return failJWKSUnavailable
	default:
		return failCertNotRegistered
	}
}

func containsCertificate(certs [][]byte, der []byte) bool {
	for _, c := range certs {
		if bytes.Equal(c, der) {
			return true
		}
	}
	return false
}
