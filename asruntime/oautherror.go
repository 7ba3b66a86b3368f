package asruntime

// RFC 6749 §5.2 error responses. Every token endpoint failure is decided as
// one of these values; writeOAuthError is the only place that answers one.

import (
	"encoding/json"
	"net/http"
)

type oauthError struct {
	status      int
	code        string
	description string
	// basicChallenge adds the WWW-Authenticate header RFC 6749 §5.2
	// requires when the client tried HTTP Basic authentication.
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

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.code, e.description})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.basicChallenge {
		h.Set("WWW-Authenticate", `Basic realm="token", charset="UTF-8"`)
	}
	if e.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
