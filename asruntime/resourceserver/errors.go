package resourceserver

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a refused request. It carries everything needed to answer the
// client the RFC 6750 §3 way, plus the underlying cause for logs. The cause
// never contains the token.
//
// Compare with the sentinels below using errors.Is; the comparison is by
// Reason, so a wrapped or annotated Error still matches its sentinel.
type Error struct {
	// Reason is a stable CamelCase name for logs and metric labels.
	Reason string
	// Status is the HTTP status code of the answer.
	Status int
	// Code is the RFC 6750 error code ("invalid_request", "invalid_token"),
	// or empty when the request carried no token at all (RFC 6750 §3.1).
	Code string
	// Description is the error_description sent to the client. It is a fixed
	// text per failure, so it never echoes attacker-controlled input and
	// always stays within the characters RFC 6750 §3 allows.
	Description string

	cause error
}

func (e *Error) Error() string {
	if e.cause == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.cause.Error()
}

func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrCertificateMismatch) and the like work on
// errors that carry a cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// with returns a copy of the sentinel e that records cause.
func (e *Error) with(format string, args ...any) *Error {
	c := *e
	c.cause = fmt.Errorf(format, args...)
	return &c
}

// The refusals the verifier produces.
var (
	ErrMissingToken = &Error{
		Reason: "MissingToken", Status: http.StatusUnauthorized,
		Description: "the request carries no bearer token",
	}
	ErrMalformedRequest = &Error{
		Reason: "MalformedRequest", Status: http.StatusBadRequest, Code: "invalid_request",
		Description: "the Authorization header is malformed",
	}
	ErrInvalidToken = &Error{
		Reason: "InvalidToken", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is not valid",
	}
	ErrTokenExpired = &Error{
		Reason: "TokenExpired", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token expired",
	}
	ErrUnknownKey = &Error{
		Reason: "UnknownSigningKey", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is signed with an unknown key",
	}
	ErrUnboundToken = &Error{
		Reason: "UnboundToken", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is not bound to a client certificate",
	}
	ErrMissingClientCertificate = &Error{
		Reason: "MissingClientCertificate", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is certificate-bound but the connection has no client certificate",
	}
	ErrCertificateMismatch = &Error{
		Reason: "CertificateMismatch", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is bound to a different client certificate",
	}
	// ErrMalformedClientCertificate means a trusted proxy forwarded a client
	// certificate header that does not parse.
	ErrMalformedClientCertificate = &Error{
		Reason: "MalformedClientCertificate", Status: http.StatusBadRequest, Code: "invalid_request",
		Description: "the forwarded client certificate is malformed",
	}
	// ErrTokenInactive means the authorization server's introspection
	// endpoint answered that the token is not active: revoked, most often.
	ErrTokenInactive = &Error{
		Reason: "TokenInactive", Status: http.StatusUnauthorized, Code: "invalid_token",
		Description: "the access token is not active",
	}
	// ErrIntrospectionUnavailable means the introspection endpoint could
	// not be asked, or did not answer: a 503, like ErrKeysUnavailable, as
	// the token may well be good but cannot be shown to be.
	ErrIntrospectionUnavailable = &Error{
		Reason: "IntrospectionUnavailable", Status: http.StatusServiceUnavailable,
		Description: "the authorization server's introspection endpoint is unavailable",
	}
	// ErrKeysUnavailable means the authorization server's keys could not be
	// fetched. It is a 503, not a 401: the token may well be good, and a
	// client that threw it away would only make things worse.
	ErrKeysUnavailable = &Error{
		Reason: "KeysUnavailable", Status: http.StatusServiceUnavailable,
		Description: "the authorization server's signing keys are unavailable",
	}
)

// WriteError answers a request refused by Verify. Errors that are not an
// *Error are answered as an invalid token, so nothing slips through as a 200
// or leaks its text.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = ErrInvalidToken
	}
	switch {
	case e.Code != "":
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, e.Code, e.Description))
	case e.Status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, e.Description, e.Status)
}
