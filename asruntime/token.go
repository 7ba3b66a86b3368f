package asruntime

// The token endpoint: client_credentials grant (and, in tokenexchange.go,
// the public clients' token exchange and refresh grants), RFC 9068 JWT
// access tokens, bound to the client certificate (RFC 8705 §3.1) whenever
// one was authenticated. The claims and the response are appended by hand: they
// are small and fixed in shape, and building them without reflection keeps
// issuance close to the cost of the signature itself.

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// handleToken serves a token request and observes how long it took.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	tw := tokenResponseWriters.Get().(*tokenResponseWriter)
	tw.ResponseWriter, tw.outcome = w, outcomeIssued
	s.serveToken(tw, r)
	s.metrics.tokenServed(tw.grantType, tw.outcome, start)
	*tw = tokenResponseWriter{}
	tokenResponseWriters.Put(tw)
}

// tokenResponseWriter is the token endpoint's ResponseWriter: it carries the
// request's metric labels from wherever they are decided (tokenError, and
// the grant dispatch) back to handleToken.
type tokenResponseWriter struct {
	http.ResponseWriter
	grantType, outcome string
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (tw *tokenResponseWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

// tokenResponseWriters are pooled so that observing the latency allocates nothing
// per request.
var tokenResponseWriters = sync.Pool{New: func() any { return new(tokenResponseWriter) }}

func (s *Server) serveToken(w *tokenResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.tokenError(w, r, errMethodNotAllowed, nil)
		return
	}
	req, oerr := readTokenRequest(r)
	if oerr != nil {
		s.tokenError(w, r, oerr, nil)
		return
	}
	w.grantType = req.grantType
	if req.grantType == "" {
		s.tokenError(w, r, errMissingGrantType, nil)
		return
	}
	certs, ctx, failure := s.clientCertificates(r)
	var auth authResult
	if failure == "" {
		auth, failure = s.authenticate(ctx, &req, certs)
	}
	if failure != "" {
		s.metrics.clientAuthFailed(failure)
		clientID := req.clientID
		if clientID == "" {
			clientID = req.basicID
		}
		s.log.Info("client authentication failed", "client_id", clientID, "reason", string(failure),
			"remote", r.RemoteAddr, "certificate", len(certs) > 0)
		s.tokenError(w, r, clientAuthError(failure, req.basicPresent), nil)
		return
	}
	client := auth.client
	switch {
	case req.grantType == GrantTypeClientCredentials:
	case req.grantType == GrantTypeTokenExchange && s.publicGrantsOffered():
		s.tokenExchange(w, r, &req, auth)
		return
	case req.grantType == GrantTypeRefreshToken && s.publicGrantsOffered():
		s.refresh(w, r, &req, auth)
		return
	case s.publicGrantsOffered():
		s.tokenError(w, r, errGrantNotSupported, client)
		return
	default:
		s.tokenError(w, r, errUnsupportedGrantType, client)
		return
	}
	if !client.clientCredentials {
		s.tokenError(w, r, errUnauthorizedClient, client)
		return
	}
	bindTo := auth.cert
	if bindTo == nil && client.BoundTokens {
		// RFC 8705 §3.4 leaves the choice between an error and an unbound
		// token to the server; a client that asked for bound tokens never
		// gets one that a thief could replay.
		if len(certs) == 0 {
			s.tokenError(w, r, errBoundTokenNeedsCert, client)
			return
		}
		// A secret-authenticated client that asked for bound tokens binds
		// them to the certificate it proved possession of in the handshake.
		bindTo = certs[0]
	}
	scope, ok := grantedScope(client, &req)
	if !ok {
		s.tokenError(w, r, errInvalidScope, client)
		return
	}
	aud, ok := s.audience(client, req.resources)
	if !ok {
		s.tokenError(w, r, errInvalidTarget, client)
		return
	}
	var thumbprint string
	if bindTo != nil {
		thumbprint = certbinding.Thumbprint(bindTo.Raw)
	}
	token, err := s.issue(client, client.ID, scope, aud, thumbprint)
	if err != nil {
		s.log.Error("sign access token", "client_id", client.ID, "error", err)
		s.tokenError(w, r, errServer, client)
		return
	}
	s.metrics.tokenIssued()
	s.writeToken(w, tokenResponseFields{accessToken: token, scope: scope})
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, e *oauthError, client *Client) {
	s.metrics.tokenFailed(e.code)
	if tw, ok := w.(*tokenResponseWriter); ok {
		tw.outcome = e.code
	}
	if client != nil && s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("token request refused", "client_id", client.ID, "error", e.code, "description", e.description)
	}
	s.writeOAuthError(w, e)
}

// grantedScope is the requested scope if it is a subset of the registered
// one, or the registered scope when none is requested (RFC 6749 §3.3).
func grantedScope(client *Client, req *tokenRequest) (string, bool) {
	if req.scope == "" {
		return client.scopeClaim, true
	}
	requested, err := parseScope(req.scope)
	if err != nil {
		return "", false
	}
	for _, tok := range requested {
		if !slices.Contains(client.scopes, tok) {
			return "", false
		}
	}
	if len(requested) == len(client.scopes) && slices.Equal(requested, client.scopes) {
		return client.scopeClaim, true
	}
	return strings.Join(requested, " "), true
}

// audience decides the aud claim (RFC 8707, RFC 9068 §3). Requested
// resources must each be one the client registered in its "resources"
// metadata; without a request the audience is every registered resource,
// and for a client that registered none it is this server's issuer (the
// default resource RFC 9068 §3 asks for), so an unconfigured client's
// token is accepted by no protected resource.
func (s *Server) audience(client *Client, requested []string) ([]string, bool) {
	if len(requested) == 0 {
		if len(client.resources) == 0 {
			return s.issuerAudience, true
		}
		return client.resources, true
	}
	for _, r := range requested {
		if !slices.Contains(client.resources, r) {
			return nil, false
		}
	}
	return requested, true
}

// issue signs an RFC 9068 access token. sub is the client_id for a client
// acting for itself (client_credentials) and the service account user name
// for a token exchange (RFC 8693 §2.2.1: the token is about the subject
// token's subject; RFC 9068 §2.2: sub identifies the principal).
func (s *Server) issue(client *Client, sub, scope string, aud []string, thumbprint string) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	now := s.clock.Now().Unix()
	b := make([]byte, 0, 384)
	b = append(b, s.claimsPrefix...)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, sub)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, client.ID)
	b = append(b, `,"aud":`...)
	if len(aud) == 1 {
		b = appendJSONString(b, aud[0])
	} else {
		b = append(b, '[')
		for i, a := range aud {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	if scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, scope)
	}
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, now, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, now+int64(s.ttl.Seconds()), 10)
	b = append(b, `,"jti":"`...)
	b = base64.RawURLEncoding.AppendEncode(b, jti[:])
	b = append(b, '"')
	if thumbprint != "" {
		b = append(b, `,"cnf":{"`+certbinding.ConfirmationKey+`":"`...)
		b = append(b, thumbprint...)
		b = append(b, `"}`...)
	}
	b = append(b, '}')
	return s.keys.sign(b)
}

// tokenResponseFields are the members of a successful token response
// (RFC 6749 §5.1, RFC 8693 §2.2.1); empty ones are left out.
type tokenResponseFields struct {
	accessToken     string
	scope           string
	issuedTokenType string
	refreshToken    string
}

// writeToken answers with an access token. token_type is Bearer for bound
// tokens too: RFC 8705 defines no token type, and a resource server learns
// of the binding from the token's cnf claim.
func (s *Server) writeToken(w http.ResponseWriter, f tokenResponseFields) {
	b := make([]byte, 0, len(f.accessToken)+256)
	b = append(b, `{"access_token":"`...)
	b = append(b, f.accessToken...)
	b = append(b, `","token_type":"Bearer","expires_in":`...)
	b = strconv.AppendInt(b, int64(s.ttl.Seconds()), 10)
	if f.scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, f.scope)
	}
	if f.issuedTokenType != "" {
		b = append(b, `,"issued_token_type":`...)
		b = appendJSONString(b, f.issuedTokenType)
	}
	if f.refreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, f.refreshToken)
	}
	b = append(b, '}')
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// Header values shared by every token response; assigning the slices
// directly skips canonicalising the header names on the hot path.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	noCache         = []string{"no-cache"}
)

// appendJSONString appends s as a JSON string. s is valid UTF-8 (every value
// comes from a parsed JSON document or a UTF-8-checked form); quotes,
// backslashes and control characters are escaped, and so are U+2028 and
// U+2029 so the token payload is also safe inside JavaScript.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch r {
		case utf8.RuneError:
			b = append(b, `\ufffd`...)
		case '\u2028', '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
