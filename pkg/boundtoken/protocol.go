package boundtoken

// The two token requests a public client makes at the mTLS token endpoint:
// RFC 8693 token exchange of the projected service-account token, and the
// RFC 6749 §6 refresh, each over a connection that presents the identity's
// certificate; and the RFC 6749 §5.2 error a refusal carries.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Grant and token type identifiers (RFC 8693 §2.1, §3; RFC 6749 §6).
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantTypeRefreshToken  = "refresh_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// ErrorInvalidGrant is the RFC 6749 §5.2 error of a refused subject token
// or refresh token: the client starts over with a fresh exchange.
const ErrorInvalidGrant = "invalid_grant"

// maxResponseBytes bounds what is read of a token endpoint response.
const maxResponseBytes = 1 << 20

// requestTimeout bounds one token request, whoever asked for it.
const requestTimeout = 30 * time.Second

// OAuthError is a token endpoint's refusal (RFC 6749 §5.2).
type OAuthError struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the error code, for example invalid_grant.
	Code string
	// Description is the server's error_description, if any.
	Description string
}

func (e *OAuthError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("token endpoint refused the request: %s (HTTP %d)", e.Code, e.StatusCode)
	}
	return fmt.Sprintf("token endpoint refused the request: %s: %s (HTTP %d)", e.Code, e.Description, e.StatusCode)
}

// tokenResponse is a successful response (RFC 6749 §5.1, RFC 8693
// §2.2.1).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	RefreshToken    string `json:"refresh_token"`
}

// endpointClient makes token requests for one identity.
type endpointClient struct {
	cfg  *Config
	http *http.Client
}

func newEndpointClient(cfg *Config, id *identity) *endpointClient {
	cert := id.cert
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:              cfg.RootCAs,
			MinVersion:           tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		},
		Proxy:               http.ProxyFromEnvironment,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	return &endpointClient{cfg: cfg, http: &http.Client{Transport: transport, Timeout: requestTimeout}}
}

func (c *endpointClient) close() { c.http.CloseIdleConnections() }

// exchange trades a service-account token for a bound access token.
func (c *endpointClient) exchange(ctx context.Context, subjectToken string, scope string, resources []string) (*tokenResponse, error) {
	form := url.Values{
		"grant_type":           {GrantTypeTokenExchange},
		"client_id":            {c.cfg.ClientID},
		"subject_token":        {subjectToken},
		"subject_token_type":   {TokenTypeJWT},
		"requested_token_type": {TokenTypeAccessToken},
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	for _, r := range resources {
		form.Add("resource", r)
	}
	return c.post(ctx, form)
}

// refresh redeems a refresh token; the server rotates it.
func (c *endpointClient) refresh(ctx context.Context, refreshToken string) (*tokenResponse, error) {
	return c.post(ctx, url.Values{
		"grant_type":    {GrantTypeRefreshToken},
		"client_id":     {c.cfg.ClientID},
		"refresh_token": {refreshToken},
	})
}

// post sends a token request. No error it returns holds a token.
func (c *endpointClient) post(ctx context.Context, form url.Values) (*tokenResponse, error) {
	grant := form.Get("grant_type")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%s request: %w", grant, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s request to %s: %w", grant, c.cfg.TokenEndpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%s response from %s: %w", grant, c.cfg.TokenEndpoint, err)
	}
	return parseTokenResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// parseTokenResponse decides what a token endpoint answered: a usable
// bound Bearer access token, an OAuth error, or a malformed response. The
// body is never quoted in an error: it may hold tokens.
func parseTokenResponse(status int, contentType string, body []byte) (*tokenResponse, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" {
		return nil, fmt.Errorf("token endpoint answered HTTP %d with content type %q, want application/json", status, contentType)
	}
	if status != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
			return nil, fmt.Errorf("token endpoint answered HTTP %d without an OAuth error", status)
		}
		return nil, &OAuthError{StatusCode: status, Code: e.Error, Description: e.Description}
	}
	var t tokenResponse
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("token endpoint answered HTTP 200 with a body that is not a token response: %w", err)
	}
	switch {
	case t.AccessToken == "":
		return nil, fmt.Errorf("token response has no access_token")
	case !strings.EqualFold(t.TokenType, "Bearer"):
		return nil, fmt.Errorf("token response has token_type %q, want Bearer", t.TokenType)
	case t.IssuedTokenType != "" && t.IssuedTokenType != TokenTypeAccessToken:
		return nil, fmt.Errorf("token response has issued_token_type %q, want %s", t.IssuedTokenType, TokenTypeAccessToken)
	case t.ExpiresIn <= 0:
		return nil, fmt.Errorf("token response has no positive expires_in")
	}
	return &t, nil
}
