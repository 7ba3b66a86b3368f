package asruntime

// RFC 6749 §5.2 error responses. Every token endpoint failure is decided as
// one of these values; Server.writeOAuthError is the only place that answers one.

import (
	"encoding/json"
	"net/http"
	"strings"
)

type oauthError struct {
	status      int
	code        string
	description string
	// basicChallenge selects the Basic challenge for a 401: RFC 6749 §5.2
	// requires it when the client tried HTTP Basic authentication. Every
	// other 401 carries the mTLS challenge (see challenges).
	basicChallenge bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

var (
	errMethodNotAllowed         = &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", description: "the token endpoint accepts POST only"}
	errUnsupportedMediaType     = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "the body must be application/x-www-form-urlencoded in UTF-8"}
	errBodyTooLarge             = &oauthError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", description: "the request body is too large"}
	errUnreadableBody           = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "the request body could not be read"}
	errMalformedBody            = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "the request body is not a valid form encoding"}
	errUnsupportedAuthorization = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "only the Basic authorization scheme is supported"}
	errMalformedBasic           = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "the Basic authorization header is malformed"}
	errMissingGrantType         = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "grant_type is missing"}
	errUnsupportedGrantType     = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", description: "only client_credentials is supported"}
	errUnauthorizedClient       = &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "the client is not registered for this grant type"}
	errInvalidScope             = &oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "the requested scope exceeds the registered scope"}
	errInvalidTarget            = &oauthError{status: http.StatusBadRequest, code: "invalid_target", description: "the requested resource is not registered for this client"}
	errBoundTokenNeedsCert      = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "this client receives certificate-bound tokens only; connect to the mTLS endpoint with its certificate"}
	errInvalidClient            = &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: "client authentication failed"}
	errInvalidClientBasic       = &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: "client authentication failed", basicChallenge: true}
	errInvalidClientStaleCert   = &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: "certificate issued before the client's current registration"}
	errServer                   = &oauthError{status: http.StatusInternalServerError, code: "server_error", description: "the token could not be issued"}

	// Introspection (RFC 7662) and revocation (RFC 7009).
	errPostOnly              = &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", description: "this endpoint accepts POST only"}
	errMissingToken          = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "token is missing"}
	errNotTheClientsToken    = &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "the token was not issued to this client"}
	errRevocationUnavailable = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "revocation state is unavailable; retry later"}
)

// challenges are the WWW-Authenticate values of a 401, computed once per
// Server since the realm is the issuer.
//
// RFC 7235 §3.1 and §4.1: a 401 MUST carry at least one challenge; RFC
// 6749 §5.2 adds that a client that tried the Authorization header gets a
// challenge for the scheme it used, i.e. Basic. The other methods this
// server accepts (tls_client_auth and self_signed_tls_client_auth, RFC
// 8705 §2; client_secret_post) do not use the Authorization header, and no
// registered HTTP authentication scheme means "authenticate at the TLS
// layer": RFC 8705 defines none, and the registered "Mutual" scheme (RFC
// 8120) is a password-based scheme, so naming it would send a client down
// the wrong path. Answering Basic would be wrong too: it invites a
// certificate-holding client to send a secret it does not have, and RFC 6749
// §2.3 forbids it from using two methods. So non-Basic attempts get the
// unregistered scheme "MutualTLS" with the issuer as realm: syntactically a
// valid challenge (RFC 7235 §2.1, auth-scheme is a token), one that
// clients that do not know it ignore (§4.1), and one that tells a human or a
// client that does what to do — present its certificate.
//
// The scheme is chosen from what the request attempted, never from the
// client's registered method, so an unknown client_id and a known one get
// the same answer (see clientAuthError).
type challenges struct {
	basic, mtls string
}

func newChallenges(issuer string) challenges {
	realm := quoteString(issuer)
	return challenges{
		basic: `Basic realm=` + realm + `, charset="UTF-8"`,
		mtls:  `MutualTLS realm=` + realm,
	}
}

// quoteString is an RFC 7230 §3.2.6 quoted-string.
func quoteString(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

func (s *Server) writeOAuthError(w http.ResponseWriter, e *oauthError) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.code, e.description})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.status == http.StatusUnauthorized {
		if e.basicChallenge {
			h.Set("WWW-Authenticate", s.challenges.basic)
		} else {
			h.Set("WWW-Authenticate", s.challenges.mtls)
		}
	}
	if e.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
