package asruntime

// Token introspection (RFC 7662) for this server's own access tokens, with
// the certificate binding as a top-level cnf member (RFC 8705 §3.2). The
// caller authenticates as any registered client, with its registered
// method, exactly as at the token endpoint, and sees only the tokens it may
// see (mayIntrospect): its own, and those issued for a resource it is
// registered as resource server for. A token that is not active —
// revoked, expired, issued to a client that is no longer registered (or
// before its current registration's min_certificate_not_before), signed by
// someone else, or not a token at all — and a token the caller may not see
// are both answered with {"active":false} and nothing more (RFC 7662
// §2.2), so the answer never says why.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// ownToken is the claims of an access token this server issued.
type ownToken struct {
	Issuer   string            `json:"iss"`
	Subject  string            `json:"sub"`
	ClientID string            `json:"client_id"`
	Audience json.RawMessage   `json:"aud"`
	Scope    string            `json:"scope"`
	IssuedAt int64             `json:"iat"`
	Expiry   int64             `json:"exp"`
	ID       string            `json:"jti"`
	Cnf      map[string]string `json:"cnf"`
	// refreshToken is set, and nothing else, when the token parameter is
	// shaped like a refresh token (see refresh_endpoints.go).
	refreshToken string
}

// parseOwnToken verifies that raw is an access token this server signed
// for its issuer and returns its claims. Expiry and revocation are the
// caller's business.
func (s *Server) parseOwnToken(raw string) (*ownToken, bool) {
	payload, ok := s.keys.verify(raw)
	if !ok {
		return nil, false
	}
	var t ownToken
	if err := json.Unmarshal(payload, &t); err != nil || t.Issuer != s.issuer || t.ID == "" || t.Expiry == 0 || len(t.Audience) == 0 {
		return nil, false
	}
	return &t, true
}

func (t *ownToken) expired(now time.Time) bool { return now.Unix() >= t.Expiry }

// audiences is the aud claim as a list: a string or an array of strings
// (RFC 7519 §4.1.3); anything else names no audience.
func (t *ownToken) audiences() []string {
	var one string
	if json.Unmarshal(t.Audience, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(t.Audience, &many) == nil {
		return many
	}
	return nil
}

// mayIntrospect decides whether caller may learn anything about a token
// issued to tokenClientID for audience (RFC 7662 §4: the server decides
// who may ask about which tokens, so that introspection does not become a
// token-scanning oracle for every registered client). A client may always
// see its own tokens; a client registered as resource server for one of
// the token's audiences (introspection_resources) may see it because the
// token was issued to be presented to it. Everyone else is answered as for
// an inactive token.
func mayIntrospect(caller *Client, tokenClientID string, audience []string) bool {
	if caller.ID == tokenClientID {
		return true
	}
	for _, aud := range audience {
		if slices.Contains(caller.introspectionResources, aud) {
			return true
		}
	}
	return false
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := s.introspect(w, r)
	s.metrics.introspected(outcome, start)
}

// tokenManagementRequest does what /introspect and /revoke share: POST
// only, the strict form, caller authentication and a token parameter. When
// done is true the response is written and outcome says how it ended;
// otherwise token is the server's own unexpired token, or nil when the
// token is not one (malformed, foreign, tampered or expired).
func (s *Server) tokenManagementRequest(w http.ResponseWriter, r *http.Request) (caller *Client, token *ownToken, outcome string, done bool) {
	if r.Method != http.MethodPost {
		s.writeOAuthError(w, errPostOnly)
		return nil, nil, errPostOnly.code, true
	}
	req, oerr := readFormRequest(r, true)
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return nil, nil, oerr.code, true
	}
	// token_type_hint (RFC 7662 §2.1, RFC 7009 §2.1) is only a hint: an
	// access token (a JWS) and a refresh token (<family>.<secret>) never
	// look alike, so any hint changes nothing.
	caller, ok := s.authenticateCaller(w, r, &req)
	if !ok {
		return nil, nil, errInvalidClient.code, true
	}
	if req.token == "" {
		s.writeOAuthError(w, errMissingToken)
		return nil, nil, errMissingToken.code, true
	}
	if _, ok := refreshFamilyID(req.token); ok {
		return caller, &ownToken{refreshToken: req.token}, "", false
	}
	t, ok := s.parseOwnToken(req.token)
	if !ok || t.expired(s.clock.Now()) {
		return caller, nil, "", false
	}
	return caller, t, "", false
}

// introspect answers and returns the outcome for the metrics.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) string {
	client, t, outcome, done := s.tokenManagementRequest(w, r)
	if done {
		return outcome
	}
	if t != nil && t.refreshToken != "" {
		return s.introspectRefreshToken(w, r, client, t.refreshToken)
	}
	if t == nil {
		writeIntrospection(w, inactive)
		return "inactive"
	}
	if !mayIntrospect(client, t.ClientID, t.audiences()) {
		writeIntrospection(w, inactive)
		return "not_permitted"
	}
	// A token outlives neither its client's registration: once the
	// client_id is gone from the registry (its registration deleted or
	// refused), none of its tokens is active any more.
	// Nor its client's current registration: a token issued before the
	// client's min_certificate_not_before belongs to an earlier hold of the
	// client_id (a previous holder, or a subject since replaced), bound to
	// a certificate that can no longer authenticate.
	owner, ok := s.registry.Clients().Lookup(t.ClientID)
	if !ok || (!owner.minCertNotBefore.IsZero() && t.IssuedAt < owner.minCertNotBefore.Unix()) {
		writeIntrospection(w, inactive)
		return "inactive"
	}
	revoked, err := s.revocations.IsRevoked(r.Context(), t.ID, time.Unix(t.Expiry, 0))
	if err != nil {
		// Fail closed: a token whose revocation cannot be ruled out is
		// neither active nor, as far as anyone can tell, inactive.
		s.log.Error("introspection: revocation store unavailable", "client_id", client.ID, "error", err)
		s.writeOAuthError(w, errRevocationUnavailable)
		return errRevocationUnavailable.code
	}
	if revoked {
		writeIntrospection(w, inactive)
		return "inactive"
	}
	writeIntrospection(w, activeResponse(t))
	return "active"
}

var inactive = []byte(`{"active":false}`)

// activeResponse renders the RFC 7662 §2.2 members, in a fixed order.
func activeResponse(t *ownToken) []byte {
	b := make([]byte, 0, 384)
	b = append(b, `{"active":true,"token_type":"Bearer","iss":`...)
	b = appendJSONString(b, t.Issuer)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, t.Subject)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, t.ClientID)
	b = append(b, `,"aud":`...)
	b = append(b, t.Audience...) // a string or an array, as issued (verified JSON)
	if t.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, t.Scope)
	}
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, t.IssuedAt, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, t.Expiry, 10)
	if tp := t.Cnf[certbinding.ConfirmationKey]; tp != "" {
		b = append(b, `,"cnf":{"`+certbinding.ConfirmationKey+`":`...)
		b = appendJSONString(b, tp)
		b = append(b, '}')
	}
	return append(b, '}')
}

func writeIntrospection(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
