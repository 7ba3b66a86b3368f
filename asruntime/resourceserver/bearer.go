package resourceserver

import (
	"net/http"
	"strings"
)

// bearerToken extracts the token of an RFC 6750 §2.1 Authorization header.
// Only the header method is supported: query and form tokens end up in logs
// and caches.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrMissingToken
	case 1:
	default:
		return "", ErrMalformedRequest.with("%d Authorization headers", len(values))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if scheme == "" {
			return "", ErrMalformedRequest.with("no authentication scheme")
		}
		// Another scheme carries no bearer token at all, which RFC 6750
		// §3.1 answers without an error code.
		return "", ErrMissingToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || !isToken68(token) {
		return "", ErrMalformedRequest.with("bearer credentials are not a b64token")
	}
	return token, nil
}

// isToken68 reports whether s matches RFC 6750 §2.1 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
