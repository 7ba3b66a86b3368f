package asruntime

// The registry is the authorization server's view of its clients: RFC 7591
// client metadata documents, parsed and checked once when they are loaded so
// that the token endpoint only does lookups. Sources (a directory here,
// ClientRegistration objects in a cluster) build a ClientSet and publish it
// atomically; requests always see one consistent snapshot.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// Token endpoint authentication methods (RFC 7591 §2, RFC 8705 §2.1.1 and
// §2.2.1) this server supports.
// The mTLS methods and the grant are the project's shared names
// (internal/registration); the secret methods exist only in the standalone
// registry.
const (
	AuthMethodTLSClientAuth           = registration.AuthMethodTLSClientAuth
	AuthMethodSelfSignedTLSClientAuth = registration.AuthMethodSelfSignedTLSClientAuth
	AuthMethodClientSecretBasic       = "client_secret_basic"
	AuthMethodClientSecretPost        = "client_secret_post"
	// AuthMethodNone is the public client of RFC 8705 §4: it proves who it
	// is with a Kubernetes service account token (the token exchange
	// grant) and binds its tokens to a certificate it made itself.
	AuthMethodNone = registration.AuthMethodNone
)

// The grants this server issues tokens for: client_credentials for the
// confidential clients, token exchange (RFC 8693) and refresh_token for
// the public service-account clients.
const (
	GrantTypeClientCredentials = registration.GrantTypeClientCredentials
	GrantTypeTokenExchange     = registration.GrantTypeTokenExchange
	GrantTypeRefreshToken      = registration.GrantTypeRefreshToken
)

// Registry hands out the current snapshot of registered clients. A source
// replaces the snapshot as a whole when its backing store changes.
type Registry interface {
	Clients() *ClientSet
}

// ClientSet is an immutable snapshot of clients by client_id.
type ClientSet struct {
	byID map[string]*Client
}

// Lookup returns the client registered under id.
func (s *ClientSet) Lookup(id string) (*Client, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byID[id]
	return c, ok
}

// Len is the number of clients in the snapshot.
func (s *ClientSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byID)
}

// ClientDocument is one registration and the name of where it came from (a
// file name, a ClientRegistration's namespace/name), used in logs. It is
// either a JSON document (Data, from the clients directory) or the typed
// metadata of a ClientRegistration (Metadata); Metadata wins if both are set.
type ClientDocument struct {
	Source   string
	Data     []byte
	Metadata *v1alpha1.ClientMetadata
}

// BuildClientSet parses documents in the given order. A document that does
// not parse, or that repeats an earlier document's client_id or
// tls_client_auth subject value, is passed to reject and left out; the
// others are kept, so one bad registration never takes the rest down.
func BuildClientSet(docs []ClientDocument, reject func(source string, err error)) *ClientSet {
	parsed := make([]*parsedClient, len(docs))
	for i, d := range docs {
		parsed[i] = parseDocument(d)
	}
	return newClientSet(parsed, reject)
}

// parsedClient is one registration after parsing: its client, or why it
// has none.
type parsedClient struct {
	source string
	client *Client
	err    error
}

func parseDocument(d ClientDocument) *parsedClient {
	p := &parsedClient{source: d.Source}
	if d.Metadata != nil {
		p.client, p.err = newClient(d.Metadata, "", "")
	} else {
		p.client, p.err = ParseClient(d.Data)
	}
	return p
}

// newClientSet keeps parsed clients in the given order: one that did not
// parse, or that repeats an earlier one's client_id or tls_client_auth
// subject value, is passed to reject and left out. Parsing is separate so
// that a source can keep the clients of unchanged registrations from one
// snapshot to the next; a Client is never modified once parsed.
func newClientSet(parsed []*parsedClient, reject func(source string, err error)) *ClientSet {
	set := &ClientSet{byID: make(map[string]*Client, len(parsed))}
	subjects := make(map[string]string)
	for _, p := range parsed {
		c := p.client
		if p.err != nil {
			reject(p.source, p.err)
			continue
		}
		if _, dup := set.byID[c.ID]; dup {
			reject(p.source, fmt.Errorf("client_id %q is already registered", c.ID))
			continue
		}
		if c.subject != nil {
			key := c.subject.Key()
			if other, dup := subjects[key]; dup {
				reject(p.source, fmt.Errorf("client %q: its subject value is already registered by client %q", c.ID, other))
				continue
			}
			subjects[key] = c.ID
		}
		set.byID[c.ID] = c
	}
	return set
}

// Client is a registered client, checked and pre-processed for the token
// endpoint.
type Client struct {
	ID          string
	AuthMethod  string
	BoundTokens bool

	secret            *clientSecret
	clientCredentials bool
	scopes            []string
	scopeClaim        string
	resources         []string
	subject           *registration.Subject
	selfSignedCerts   [][]byte
	jwksURI           string
	// minCertNotBefore is min_certificate_not_before: a certificate issued
	// earlier never authenticates this client (zero: no bound).
	minCertNotBefore time.Time
	// tokenExchange and refreshTokens are the grants of a public client;
	// serviceAccount is the Kubernetes user name whose tokens it exchanges.
	tokenExchange  bool
	refreshTokens  bool
	serviceAccount string
	// introspectionResources are the audiences this client is a resource
	// server for: it may introspect every token whose aud names one.
	introspectionResources []string
}

// clientDocument is the RFC 7591 document (with the RFC 8705 members) as
// the standalone registry reads it: the API's ClientMetadata plus the
// members the API never carries, client_secret and client_secret_hash (a
// bcrypt hash of the secret, this server's extension). The subject members are
// pointers so that "present but empty" counts as a registered value and is
// refused rather than ignored.
type clientDocument struct {
	v1alpha1.ClientMetadata
	ClientSecret     string `json:"client_secret"`
	ClientSecretHash string `json:"client_secret_hash"`
}

// maxClientDocument bounds one registration document; real ones are a few
// hundred bytes plus an optional inline JWKS.
const maxClientDocument = 256 << 10

// ParseClient parses and checks one RFC 7591 client metadata document.
//
// Defaults follow RFC 7591 §2: token_endpoint_auth_method
// client_secret_basic, grant_types ["authorization_code"] (so a client must
// list client_credentials to use it). "resources" is this server's extension
// member: the RFC 8707 resource indicators the client may request as token
// audience. Unknown members are ignored (RFC 7591 §2).
func ParseClient(data []byte) (*Client, error) {
	if len(data) > maxClientDocument {
		return nil, fmt.Errorf("document is larger than %d bytes", maxClientDocument)
	}
	var doc clientDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode client metadata: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode client metadata: trailing data after the JSON object")
	}
	return newClient(&doc.ClientMetadata, doc.ClientSecret, doc.ClientSecretHash)
}

// newClient checks one client's metadata and prepares it for the token
// endpoint. secret and secretHash are client_secret and client_secret_hash,
// which only the standalone registry's documents can carry.
func newClient(md *v1alpha1.ClientMetadata, secret, secretHash string) (*Client, error) {
	if md.ClientID == "" {
		return nil, errors.New("client_id is missing")
	}
	c := &Client{ID: md.ClientID, AuthMethod: md.TokenEndpointAuthMethod, BoundTokens: md.TLSClientCertificateBoundAccessTokens}
	if c.AuthMethod == "" {
		c.AuthMethod = AuthMethodClientSecretBasic
	}
	grants := md.GrantTypes
	if grants == nil {
		grants = []string{"authorization_code"}
	}
	c.clientCredentials = slices.Contains(grants, GrantTypeClientCredentials)
	c.tokenExchange = slices.Contains(grants, GrantTypeTokenExchange)
	c.refreshTokens = slices.Contains(grants, GrantTypeRefreshToken)

	scopes, err := parseScope(md.Scope)
	if err != nil {
		return nil, fmt.Errorf("client %q: scope: %w", c.ID, err)
	}
	c.scopes = scopes
	c.scopeClaim = strings.Join(scopes, " ")

	for _, r := range md.Resources {
		if err := checkResourceIndicator(r); err != nil {
			return nil, fmt.Errorf("client %q: resources: %w", c.ID, err)
		}
	}
	c.resources = md.Resources
	for _, r := range md.IntrospectionResources {
		if err := checkResourceIndicator(r); err != nil {
			return nil, fmt.Errorf("client %q: introspection_resources: %w", c.ID, err)
		}
	}
	c.introspectionResources = md.IntrospectionResources
	if md.MinCertificateNotBefore != nil {
		c.minCertNotBefore = md.MinCertificateNotBefore.Time
	}

	subject, err := registration.SubjectFromMetadata(md)
	if err != nil {
		return nil, fmt.Errorf("client %q: %w", c.ID, err)
	}
	hasJWKS := md.JWKS != nil && len(md.JWKS.Raw) > 0 && string(md.JWKS.Raw) != "null"
	if subject != nil && c.AuthMethod != AuthMethodTLSClientAuth {
		return nil, fmt.Errorf("client %q: a tls_client_auth_* subject value is registered but token_endpoint_auth_method is %q", c.ID, c.AuthMethod)
	}
	if (hasJWKS || md.JWKSURI != "") && c.AuthMethod != AuthMethodSelfSignedTLSClientAuth {
		return nil, fmt.Errorf("client %q: jwks or jwks_uri is registered but token_endpoint_auth_method is %q", c.ID, c.AuthMethod)
	}
	if (secret != "" || secretHash != "") && c.AuthMethod != AuthMethodClientSecretBasic && c.AuthMethod != AuthMethodClientSecretPost {
		return nil, fmt.Errorf("client %q: client_secret or client_secret_hash is registered but token_endpoint_auth_method is %q", c.ID, c.AuthMethod)
	}
	if !c.minCertNotBefore.IsZero() && c.AuthMethod != AuthMethodTLSClientAuth && c.AuthMethod != AuthMethodSelfSignedTLSClientAuth {
		return nil, fmt.Errorf("client %q: min_certificate_not_before is registered but token_endpoint_auth_method %q uses no certificate", c.ID, c.AuthMethod)
	}
	if err := checkPublicClient(c, md.ServiceAccount); err != nil {
		return nil, fmt.Errorf("client %q: %w", c.ID, err)
	}

	switch c.AuthMethod {
	case AuthMethodTLSClientAuth:
		if subject == nil {
			return nil, fmt.Errorf("client %q: tls_client_auth needs exactly one tls_client_auth_* subject value, none is registered", c.ID)
		}
		c.subject = subject
	case AuthMethodSelfSignedTLSClientAuth:
		var jwks []byte
		if hasJWKS {
			jwks = md.JWKS.Raw
		}
		if err := parseSelfSignedKeys(c, jwks, md.JWKSURI); err != nil {
			return nil, fmt.Errorf("client %q: %w", c.ID, err)
		}
	case AuthMethodClientSecretBasic, AuthMethodClientSecretPost:
		if secret == "" && secretHash == "" {
			return nil, fmt.Errorf("client %q: %s needs a client_secret or client_secret_hash", c.ID, c.AuthMethod)
		}
		if c.secret, err = parseClientSecret(secret, secretHash); err != nil {
			return nil, fmt.Errorf("client %q: %w", c.ID, err)
		}
	case AuthMethodNone:
		c.serviceAccount = md.ServiceAccount
	default:
		return nil, fmt.Errorf("client %q: token_endpoint_auth_method %q is not supported", c.ID, c.AuthMethod)
	}
	return c, nil
}

// checkPublicClient keeps the service-account grants and the public
// method together. A public client authenticates with nothing but its
// client_id, so it may use only the grants that prove identity otherwise
// (token exchange: a service account token; refresh_token: a token bound to
// the certificate of the connection), and every token it gets is bound.
// Confidential clients keep client_credentials: exchanging a service
// account token is what identifies a public client, never an addition to a
// certificate or secret. The other methods' members (subject, jwks,
// secret) are refused by newClient's checks above.
func checkPublicClient(c *Client, serviceAccount string) error {
	if c.AuthMethod != AuthMethodNone {
		switch {
		case serviceAccount != "":
			return fmt.Errorf("service_account is registered but token_endpoint_auth_method is %q, not %s", c.AuthMethod, AuthMethodNone)
		case c.tokenExchange || c.refreshTokens:
			return fmt.Errorf("grant types %s and %s are for token_endpoint_auth_method %s only", GrantTypeTokenExchange, GrantTypeRefreshToken, AuthMethodNone)
		}
		return nil
	}
	if _, _, err := parseServiceAccountUsername(serviceAccount); err != nil {
		return fmt.Errorf("token_endpoint_auth_method %s needs service_account: %w", AuthMethodNone, err)
	}
	switch {
	case c.clientCredentials:
		return fmt.Errorf("token_endpoint_auth_method %s cannot use the %s grant: nothing would authenticate the client", AuthMethodNone, GrantTypeClientCredentials)
	case !c.tokenExchange:
		return fmt.Errorf("token_endpoint_auth_method %s needs the %s grant", AuthMethodNone, GrantTypeTokenExchange)
	case !c.BoundTokens:
		return fmt.Errorf("token_endpoint_auth_method %s needs tls_client_certificate_bound_access_tokens: an unbound token of a public client could be replayed by anyone", AuthMethodNone)
	}
	return nil
}

// parseServiceAccountUsername splits system:serviceaccount:<ns>:<name>.
// Both parts must be what Kubernetes allows (a DNS label, a DNS
// subdomain), so the registered value can only ever equal the user name a
// TokenReview reports for that service account.
func parseServiceAccountUsername(username string) (namespace, name string, err error) {
	const prefix = "system:serviceaccount:"
	rest, ok := strings.CutPrefix(username, prefix)
	if ok {
		namespace, name, ok = strings.Cut(rest, ":")
	}
	if !ok {
		return "", "", fmt.Errorf("%q is not %s<namespace>:<name>", username, prefix)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", "", fmt.Errorf("namespace %q: %s", namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", "", fmt.Errorf("service account name %q: %s", name, strings.Join(errs, "; "))
	}
	return namespace, name, nil
}

// parseSelfSignedKeys checks the jwks or jwks_uri of a
// self_signed_tls_client_auth client (RFC 7591 §2: never both).
func parseSelfSignedKeys(c *Client, jwks []byte, jwksURI string) error {
	switch {
	case len(jwks) > 0 && jwksURI != "":
		return errors.New("jwks and jwks_uri are both registered, RFC 7591 §2 allows one")
	case len(jwks) > 0:
		certs, err := certificatesFromJWKS(jwks)
		if err != nil {
			return fmt.Errorf("jwks: %w", err)
		}
		if len(certs) == 0 {
			return errors.New("jwks: no key carries an x5c certificate")
		}
		c.selfSignedCerts = certs
	case jwksURI != "":
		u, err := url.Parse(jwksURI)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("jwks_uri %q is not an https URL", jwksURI)
		}
		c.jwksURI = u.String()
	default:
		return errors.New("self_signed_tls_client_auth needs jwks or jwks_uri")
	}
	return nil
}

// certificatesFromJWKS returns the DER of x5c[0] of every key in a JWK Set.
// go-jose checks, for each key, that the key members equal the public key
// of x5c[0] (RFC 7517 §4.7). Keys of unknown types are skipped (RFC 7517
// §5); private key material in a client's set is refused.
func certificatesFromJWKS(data []byte) ([][]byte, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode JWK Set: %w", err)
	}
	var certs [][]byte
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if !k.IsPublic() {
			return nil, fmt.Errorf("key %d holds private key material", i)
		}
		if len(k.Certificates) > 0 {
			certs = append(certs, k.Certificates[0].Raw)
		}
	}
	return certs, nil
}

// parseScope splits a space-delimited scope (RFC 6749 §3.3) and checks its
// tokens; duplicates are removed, order is kept.
func parseScope(s string) ([]string, error) {
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, fmt.Errorf("scope token %q has a character RFC 6749 §3.3 does not allow", tok)
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

// checkResourceIndicator applies RFC 8707 §2: an absolute URI without a
// fragment.
func checkResourceIndicator(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(r, "#") {
		return fmt.Errorf("%q is not an absolute URI without a fragment", r)
	}
	return nil
}
