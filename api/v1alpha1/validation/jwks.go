package validation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ParseClientJWKS reads spec.jwks of a self_signed_tls_client_auth client
// that manages its own certificates: a JWK Set (RFC 7517 §5) with at least
// one key, only public keys, and every key carrying x5c whose first
// certificate is the one the workload presents. go-jose refuses a key whose
// members differ from the public key of x5c[0] (RFC 7517 §4.7) when it
// parses it; the error here says so in the user's terms. The authorization
// server registers x5c[0] of each key, so a key without x5c could never
// authenticate and is refused. A certificate that is expired (at now) is a
// warning: the user may be rotating, but the key no longer authenticates.
// The returned set is what the operator registers.
func ParseClientJWKS(doc string, now time.Time, path *field.Path) (*jose.JSONWebKeySet, []string, field.ErrorList) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, nil, field.ErrorList{field.Invalid(path, "(JWK Set)", fmt.Sprintf("not a JSON JWK Set (RFC 7517 §5) of the form {\"keys\": [...]}: %v", err))}
	}
	if len(raw.Keys) == 0 {
		return nil, nil, field.ErrorList{field.Required(path.Child("keys"), "the JWK Set has no keys: add the public key of the workload's self-signed certificate with its x5c, or remove jwks to let the operator issue a certificate")}
	}
	var (
		set      jose.JSONWebKeySet
		warnings []string
		errs     field.ErrorList
	)
	for i, data := range raw.Keys {
		keyPath := path.Child("keys").Index(i)
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(data); err != nil {
			errs = append(errs, field.Invalid(keyPath, "(JWK)", jwkErrorDetail(err)))
			continue
		}
		if !k.IsPublic() {
			errs = append(errs, field.Forbidden(keyPath, "holds private or symmetric key material: register only the public key (drop d, p, q, dp, dq, qi, k) and keep the private key in the workload"))
			continue
		}
		if len(k.Certificates) == 0 {
			errs = append(errs, field.Required(keyPath.Child("x5c"), "a self-signed client is authenticated by its certificate (RFC 8705 §2.2): add x5c with the base64 DER of the self-signed certificate whose public key this is"))
			continue
		}
		if leaf := k.Certificates[0]; !now.Before(leaf.NotAfter) {
			warnings = append(warnings, fmt.Sprintf("%s.x5c[0] expired at %s: this key no longer authenticates; replace it with the workload's current certificate", keyPath, leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
		set.Keys = append(set.Keys, k)
	}
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return &set, warnings, nil
}

// jwkErrorDetail turns go-jose's parse errors into what to fix.
func jwkErrorDetail(err error) string {
	switch msg := err.Error(); {
	case errors.Is(err, jose.ErrUnsupportedKeyType):
		return "unsupported key type: use an EC (P-256, P-384, P-521), RSA or OKP Ed25519 public key"
	case msg == "go-jose/go-jose: invalid JWK, public keys in key and x5c fields do not match":
		return "the key members do not match the public key of the first x5c certificate (RFC 7517 §4.7): put the certificate's own public key in the JWK"
	default:
		return fmt.Sprintf("not a valid JWK (RFC 7517): %v", err)
	}
}

// validateJWKSURI checks spec.jwksURI: an absolute https URL without a
// fragment, which is what the authorization server fetches.
func validateJWKSURI(uri string, path *field.Path) field.ErrorList {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(path, uri, fmt.Sprintf("not a URL: %v; give the https URL of the client's JWK Set", err))}
	case u.Scheme != "https" || u.Host == "":
		return field.ErrorList{field.Invalid(path, uri, "must be an absolute https URL (e.g. https://keys.example.com/jwks.json): the authorization server fetches the client's keys only over TLS")}
	case strings.Contains(uri, "#"):
		return field.ErrorList{field.Invalid(path, uri, "must not have a fragment: remove the #... part")}
	}
	return nil
}
