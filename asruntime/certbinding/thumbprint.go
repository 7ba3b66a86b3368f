// Package certbinding computes and compares the certificate thumbprint that
// binds an access token to a client certificate (RFC 8705 §3.1): the
// base64url-encoded (no padding) SHA-256 hash of the certificate's DER
// encoding, carried in the token as cnf["x5t#S256"].
package certbinding

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// ConfirmationKey is the member of the JWT "cnf" claim (and of the
// introspection response's "cnf" object) that carries the thumbprint.
const ConfirmationKey = "x5t#S256"

// Thumbprint returns the x5t#S256 value of a DER-encoded certificate.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether the certificate in der has the
// thumbprint want. An empty want never matches.
func Matches(der []byte, want string) bool {
	if want == "" || len(der) == 0 {
		return false
	}
	got := Thumbprint(der)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
