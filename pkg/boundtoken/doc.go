// Package boundtoken gets and keeps certificate-bound access tokens for a
// workload that holds no secret (RFC 8705 §4, public clients): it makes an
// ECDSA P-256 key and a short-lived self-signed certificate in memory,
// trades the pod's projected service-account token for an access token
// bound to that certificate (RFC 8693 token exchange at the authorization
// server's mTLS token endpoint), refreshes it with refresh tokens bound to
// the same certificate, and presents the certificate and the token together
// to protected resources.
//
// Everything a Source needs is in two mounts: the OAuthClient's config
// Secret (client_id, issuer, token_endpoint, ca.crt; LoadConfig) and a
// projected service-account token whose audience is the authorization
// server's issuer (DefaultTokenFile unless Options.TokenFile says
// otherwise). The private key exists only in the process's memory.
//
// A bound token is only usable over a TLS connection that presents the
// certificate it is bound to: use Source.Client or Source.Transport for
// HTTP, and Source.BoundToken (token and certificate together) for other
// protocols.
package boundtoken
