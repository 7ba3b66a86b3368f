package asruntime

// Strict parsing of token requests (RFC 6749 §3.2, §4.4.2, Appendix B):
// POST, application/x-www-form-urlencoded, UTF-8, a bounded body, every
// parameter at most once — except RFC 8707 `resource`, which may repeat.

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxTokenRequestBody bounds a token request body; a client_credentials
// request is well under 1 KiB, a token exchange carries a service account
// token of one or two KiB.
const maxTokenRequestBody = 8 << 10

// tokenRequest is a parsed token request. Parameters sent with an empty
// value count as omitted (RFC 6749 §3.2).
type tokenRequest struct {
	grantType    string
	clientID     string
	clientSecret string
	scope        string
	resources    []string
	// token and tokenTypeHint are the RFC 7662 / RFC 7009 parameters,
	// parsed only at the introspection and revocation endpoints.
	token         string
	tokenTypeHint string
	// The token exchange (RFC 8693 §2.1) and refresh (RFC 6749 §6)
	// parameters. actor_token is parsed only to be refused: this server
	// does not issue delegation tokens.
	subjectToken       string
	subjectTokenType   string
	actorToken         string
	requestedTokenType string
	refreshToken       string

	basicPresent bool
	basicID      string
	basicSecret  string
}

var bodyBuffers = sync.Pool{New: func() any {
	b := make([]byte, maxTokenRequestBody+1)
	return &b
}}

// readTokenRequest checks the content type, reads the body within the limit,
// parses it and takes HTTP Basic credentials from the Authorization header.
func readTokenRequest(r *http.Request) (tokenRequest, *oauthError) {
	return readFormRequest(r, false)
}

// readFormRequest is readTokenRequest for any endpoint; tokenParams
// recognises token and token_type_hint (introspection, revocation).
func readFormRequest(r *http.Request, tokenParams bool) (tokenRequest, *oauthError) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenRequest{}, errUnsupportedMediaType
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return tokenRequest{}, errUnsupportedMediaType
	}
	if r.ContentLength > maxTokenRequestBody {
		return tokenRequest{}, errBodyTooLarge
	}
	bp := bodyBuffers.Get().(*[]byte)
	buf := *bp
	n, err := io.ReadFull(r.Body, buf)
	body := string(buf[:n])
	bodyBuffers.Put(bp)
	switch {
	case n > maxTokenRequestBody:
		return tokenRequest{}, errBodyTooLarge
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		return tokenRequest{}, errUnreadableBody
	}
	req, oerr := parseForm(body, tokenParams)
	if oerr != nil {
		return req, oerr
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if err := req.setBasic(h); err != nil {
			return req, err
		}
	}
	return req, nil
}

// parseTokenForm parses an application/x-www-form-urlencoded body.
func parseTokenForm(body string) (tokenRequest, *oauthError) {
	return parseForm(body, false)
}

// parseForm parses a form; tokenParams recognises token and
// token_type_hint, which are otherwise ignored like any unknown parameter.
func parseForm(body string, tokenParams bool) (tokenRequest, *oauthError) {
	var req tokenRequest
	var seen uint16
	const (
		seenGrant = 1 << iota
		seenClientID
		seenSecret
		seenScope
		seenToken
		seenHint
		seenSubjectToken
		seenSubjectTokenType
		seenActorToken
		seenRequestedTokenType
		seenRefreshToken
	)
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return req, errMalformedBody
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return req, errMalformedBody
		}
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			return req, errMalformedBody
		}
		var bit uint16
		var dst *string
		switch key {
		case "grant_type":
			bit, dst = seenGrant, &req.grantType
		case "client_id":
			bit, dst = seenClientID, &req.clientID
		case "client_secret":
			bit, dst = seenSecret, &req.clientSecret
		case "scope":
			bit, dst = seenScope, &req.scope
		case "token":
			if !tokenParams {
				continue
			}
			bit, dst = seenToken, &req.token
		case "token_type_hint":
			if !tokenParams {
				continue
			}
			bit, dst = seenHint, &req.tokenTypeHint
		case "subject_token":
			bit, dst = seenSubjectToken, &req.subjectToken
		case "subject_token_type":
			bit, dst = seenSubjectTokenType, &req.subjectTokenType
		case "actor_token":
			bit, dst = seenActorToken, &req.actorToken
		case "requested_token_type":
			bit, dst = seenRequestedTokenType, &req.requestedTokenType
		case "refresh_token":
			bit, dst = seenRefreshToken, &req.refreshToken
		case "resource":
			if value != "" {
				req.resources = append(req.resources, value)
			}
			continue
		default:
			// RFC 6749 §3.2: unrecognised parameters are ignored.
			continue
		}
		if seen&bit != 0 {
			return req, &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "parameter " + key + " is repeated"}
		}
		seen |= bit
		*dst = value
	}
	return req, nil
}

// setBasic takes client_id and client_secret from an HTTP Basic
// Authorization header; RFC 6749 §2.3.1 form-encodes both before base64.
func (req *tokenRequest) setBasic(header string) *oauthError {
	scheme, _, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return errUnsupportedAuthorization
	}
	r := http.Request{Header: http.Header{"Authorization": {header}}}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return errMalformedBasic
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil || id == "" || !utf8.ValidString(id) || !utf8.ValidString(secret) {
		return errMalformedBasic
	}
	req.basicPresent, req.basicID, req.basicSecret = true, id, secret
	return nil
}
