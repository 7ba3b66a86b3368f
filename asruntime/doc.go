// Package asruntime is certbound's RFC 8705 authorization server: OAuth 2.0
// mutual-TLS client authentication (tls_client_auth and
// self_signed_tls_client_auth, plus client_secret_basic and
// client_secret_post) and certificate-bound JWT access tokens (RFC 9068,
// cnf.x5t#S256) for the client_credentials grant.
//
// The server listens three times: the conventional endpoints over TLS
// without client certificates, the same endpoints over TLS that requests a
// client certificate (the RFC 8705 §5 mtls_endpoint_aliases), and plain
// HTTP for /metrics, /healthz and /readyz. Both TLS listeners serve
// GET /.well-known/oauth-authorization-server (RFC 8414), GET /jwks and
// POST /token.
//
// To run one in-process:
//
//	reg, _ := asruntime.NewDirectoryRegistry(dir, logger, nil)
//	go reg.Watch(ctx) // follow changes of the directory
//	st, _ := asruntime.Start(ctx, asruntime.Config{
//		GetCertificate: reloader.GetCertificate, // or any func returning a *tls.Certificate
//		TrustAnchors:   clientCAs,
//		Registry:       reg,
//	}, "127.0.0.1:0", "127.0.0.1:0", "")
//	// st.Issuer is https://<public address>, st.MTLSBaseURL the mTLS
//	// listener's; st.Wait() returns once ctx is done and the server stopped.
//
// Listen, New and Serve are the same steps one at a time, for callers that
// need the bound addresses before they configure the server.
//
// Clients are RFC 7591 documents (see ParseClient); the Registry interface
// lets other sources, such as the ClientRegistration objects of a cluster
// (ClientRegistrationRegistry), supply them.
//
// Audience rule (RFC 8707, RFC 9068 §3): a client lists the resource
// indicators it may ask for in the "resources" extension member of its
// metadata. Every `resource` parameter of a request must be one of them
// (else invalid_target) and the requested ones become aud; without a
// `resource` parameter aud is all registered resources, or the issuer for a
// client that registered none. The issuer is never added to the audience of
// a client that registered resources.
//
// A client may register min_certificate_not_before: a certificate whose
// NotBefore is earlier never authenticates it (invalid_client, "certificate
// issued before the client's current registration"). Introspection answers
// {"active":false} for a token whose client is no longer registered, or
// that was issued before the client's min_certificate_not_before.
package asruntime
