package asruntime

// The grants of the public service-account clients (RFC 8705 §4): token
// exchange (RFC 8693) of a Kubernetes service account token for an access
// token bound to the certificate of the connection, and refresh (RFC 6749
// §6) with rotation. Both run only on the mTLS listener with a client
// certificate (authenticate answers invalid_client without one), and the
// certificate is not validated against anything: the handshake proved
// possession of its key, which is all a binding needs. Its validity dates
// are not checked either: a self-made certificate's dates are whatever its
// maker chose and say nothing about the key.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// Token type identifiers (RFC 8693 §3).
const (
	tokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// maxRefreshAttempts bounds the re-reads after a lost optimistic write;
// the second read always decides (the token is then no longer current).
const maxRefreshAttempts = 2

var (
	errGrantNotSupported       = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", description: "the grant types supported are client_credentials, " + GrantTypeTokenExchange + " and refresh_token"}
	errActorTokenNotSupported  = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "actor_token is not supported: this server issues no delegation tokens"}
	errMissingSubjectToken     = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "subject_token and subject_token_type are required"}
	errSubjectTokenType        = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "subject_token_type must be " + tokenTypeJWT + " (a Kubernetes service account token)"}
	errRequestedTokenType      = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "requested_token_type must be " + tokenTypeAccessToken}
	errSubjectTokenRejected    = &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: "subject_token is not an unexpired service account token for this issuer's audience"}
	errSubjectTokenWrongSA     = &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: "subject_token belongs to another service account than the client's"}
	errTokenReviewUnavailable  = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the service account token could not be checked; retry later"}
	errMissingRefreshToken     = &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "refresh_token is missing"}
	errInvalidRefreshToken     = &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: "the refresh token is invalid, expired, revoked or bound to another certificate"}
	errRefreshStoreUnavailable = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "refresh token state is unavailable; retry later"}
)

// Exchange outcomes, the reason label of the exchange metric.
const (
	exchangeIssued           = "issued"
	exchangeRejected         = "subject_token_rejected"
	exchangeWrongSA          = "service_account_mismatch"
	exchangeReviewFailed     = "token_review_unavailable"
	exchangeRefreshStoreDown = "refresh_store_unavailable"
)

var exchangeOutcomes = []string{exchangeIssued, exchangeRejected, exchangeWrongSA, exchangeReviewFailed, exchangeRefreshStoreDown}

// publicGrantsOffered: the token exchange (and with it refresh) needs a
// way to review service account tokens.
func (s *Server) publicGrantsOffered() bool { return s.reviewer != nil }

// tokenExchange serves the token exchange grant for an authenticated
// client (auth.cert is the connection's certificate).
func (s *Server) tokenExchange(w http.ResponseWriter, r *http.Request, req *tokenRequest, auth authResult) {
	client := auth.client
	if !client.tokenExchange {
		s.tokenError(w, r, errUnauthorizedClient, client)
		return
	}
	if oerr := checkExchangeParams(req); oerr != nil {
		s.tokenError(w, r, oerr, client)
		return
	}
	scope, ok := grantedScope(client, req)
	if !ok {
		s.tokenError(w, r, errInvalidScope, client)
		return
	}
	aud, ok := s.audience(client, req.resources)
	if !ok {
		s.tokenError(w, r, errInvalidTarget, client)
		return
	}
	username, err := s.reviewer.Review(r.Context(), req.subjectToken, s.issuer)
	switch {
	case errors.Is(err, errTokenNotAuthenticated):
		s.metrics.exchanged(exchangeRejected)
		s.log.Info("token exchange refused: subject_token not authenticated", "client_id", client.ID)
		s.tokenError(w, r, errSubjectTokenRejected, client)
		return
	case err != nil:
		s.metrics.exchanged(exchangeReviewFailed)
		s.log.Error("token exchange: TokenReview failed", "client_id", client.ID, "error", err)
		s.tokenError(w, r, errTokenReviewUnavailable, client)
		return
	case username != client.serviceAccount:
		// Compared exactly: both are system:serviceaccount:<ns>:<name>,
		// the registered one checked to have that form.
		s.metrics.exchanged(exchangeWrongSA)
		s.log.Info("token exchange refused: another service account", "client_id", client.ID, "username", username)
		s.tokenError(w, r, errSubjectTokenWrongSA, client)
		return
	}
	thumbprint := certbinding.Thumbprint(auth.cert.Raw)
	var refresh string
	if client.refreshTokens {
		if refresh, err = s.newRefreshFamily(r.Context(), client, username, thumbprint, scope, aud); err != nil {
			s.metrics.exchanged(exchangeRefreshStoreDown)
			s.log.Error("token exchange: refresh token could not be stored", "client_id", client.ID, "error", err)
			s.tokenError(w, r, errRefreshStoreUnavailable, client)
			return
		}
	}
	token, err := s.issue(client, username, scope, aud, thumbprint)
	if err != nil {
		s.log.Error("sign access token", "client_id", client.ID, "error", err)
		s.tokenError(w, r, errServer, client)
		return
	}
	s.metrics.exchanged(exchangeIssued)
	s.metrics.tokenIssued()
	s.writeToken(w, tokenResponseFields{accessToken: token, scope: scope, issuedTokenType: tokenTypeAccessToken, refreshToken: refresh})
}

// checkExchangeParams applies RFC 8693 §2.1 to what this server supports.
func checkExchangeParams(req *tokenRequest) *oauthError {
	switch {
	case req.actorToken != "":
		return errActorTokenNotSupported
	case req.subjectToken == "" || req.subjectTokenType == "":
		return errMissingSubjectToken
	case req.subjectTokenType != tokenTypeJWT:
		return errSubjectTokenType
	case req.requestedTokenType != "" && req.requestedTokenType != tokenTypeAccessToken:
		return errRequestedTokenType
	}
	return nil
}

// newRefreshFamily stores a new family and returns its first token.
func (s *Server) newRefreshFamily(ctx context.Context, client *Client, subject, thumbprint, scope string, aud []string) (string, error) {
	token, id, err := newRefreshToken("")
	if err != nil {
		return "", err
	}
	now := s.clock.Now()
	f := &RefreshFamily{
		ID: id, ClientID: client.ID, Subject: subject, Thumbprint: thumbprint, Scope: scope, Audience: aud,
		Created: now, Expires: now.Add(s.refreshMaxLifetime),
		TokenHash: refreshTokenHash(token),
	}
	f.TokenExpires = earliest(now.Add(s.refreshTTL), f.Expires)
	if err := s.refreshTokens.Create(ctx, f, s.refreshPerClient); err != nil {
		return "", err
	}
	return token, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// refresh serves the refresh_token grant for an authenticated client.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request, req *tokenRequest, auth authResult) {
	client := auth.client
	if !client.refreshTokens {
		s.tokenError(w, r, errUnauthorizedClient, client)
		return
	}
	if req.refreshToken == "" {
		s.tokenError(w, r, errMissingRefreshToken, client)
		return
	}
	id, ok := refreshFamilyID(req.refreshToken)
	if !ok {
		s.refused(w, r, client, refreshUnknown)
		return
	}
	thumbprint := certbinding.Thumbprint(auth.cert.Raw)
	ctx := r.Context()
	for range maxRefreshAttempts {
		f, err := s.refreshTokens.Get(ctx, id)
		if err != nil {
			s.refreshStoreFailed(w, r, client, err)
			return
		}
		switch outcome := decideRefresh(f, client.ID, thumbprint, req.refreshToken, s.clock.Now()); outcome {
		case refreshRotate:
		case refreshReused:
			if err := s.refreshTokens.Delete(ctx, id); err != nil {
				s.refreshStoreFailed(w, r, client, err)
				return
			}
			s.log.Warn("refresh token reused: its family is revoked", "client_id", client.ID, "generation", f.Generation)
			s.refused(w, r, client, outcome)
			return
		default:
			s.refused(w, r, client, outcome)
			return
		}
		if !s.familyStillGranted(client, f) {
			s.refused(w, r, client, refreshNotAllowed)
			return
		}
		scope, aud, oerr := narrowRefresh(f, req)
		if oerr != nil {
			s.tokenError(w, r, oerr, client)
			return
		}
		next, _, err := newRefreshToken(f.ID)
		if err != nil {
			s.log.Error("refresh token", "client_id", client.ID, "error", err)
			s.tokenError(w, r, errServer, client)
			return
		}
		rotated := *f
		rotated.TokenHash = refreshTokenHash(next)
		rotated.TokenExpires = earliest(s.clock.Now().Add(s.refreshTTL), f.Expires)
		rotated.Generation++
		switch err := s.refreshTokens.Replace(ctx, &rotated); {
		case errors.Is(err, ErrRefreshConflict):
			// Another request used the family first; the re-read decides.
			continue
		case err != nil:
			s.refreshStoreFailed(w, r, client, err)
			return
		}
		token, err := s.issue(client, f.Subject, scope, aud, f.Thumbprint)
		if err != nil {
			s.log.Error("sign access token", "client_id", client.ID, "error", err)
			s.tokenError(w, r, errServer, client)
			return
		}
		s.metrics.refreshed(refreshRotate)
		s.metrics.tokenIssued()
		s.writeToken(w, tokenResponseFields{accessToken: token, scope: scope, refreshToken: next})
		return
	}
	// Lost the race twice: the family is being hammered; refuse without
	// deciding, the client retries.
	s.refreshStoreFailed(w, r, client, ErrRefreshConflict)
}

// familyStillGranted: the client's current registration still grants the
// family's service account, scope and audience.
func (s *Server) familyStillGranted(client *Client, f *RefreshFamily) bool {
	if client.serviceAccount != f.Subject {
		return false
	}
	scopes, err := parseScope(f.Scope)
	if err != nil {
		return false
	}
	for _, sc := range scopes {
		if !slices.Contains(client.scopes, sc) {
			return false
		}
	}
	if len(client.resources) == 0 {
		return slices.Equal(f.Audience, s.issuerAudience)
	}
	for _, a := range f.Audience {
		if !slices.Contains(client.resources, a) {
			return false
		}
	}
	return true
}

// narrowRefresh is the scope and audience of a refreshed access token: the
// family's, or the subset the request asks for.
func narrowRefresh(f *RefreshFamily, req *tokenRequest) (string, []string, *oauthError) {
	granted, _ := parseScope(f.Scope)
	requested, err := parseScope(req.scope)
	if err != nil {
		return "", nil, errInvalidScope
	}
	scope, ok := narrowed(granted, requested)
	if !ok {
		return "", nil, errInvalidScope
	}
	aud, ok := narrowed(f.Audience, req.resources)
	if !ok {
		return "", nil, errInvalidTarget
	}
	return strings.Join(scope, " "), aud, nil
}

func (s *Server) refused(w http.ResponseWriter, r *http.Request, client *Client, outcome refreshOutcome) {
	s.metrics.refreshed(outcome)
	s.log.Info("refresh refused", "client_id", client.ID, "reason", string(outcome))
	s.tokenError(w, r, errInvalidRefreshToken, client)
}

func (s *Server) refreshStoreFailed(w http.ResponseWriter, r *http.Request, client *Client, err error) {
	s.log.Error("refresh token store", "client_id", client.ID, "error", err)
	s.tokenError(w, r, errRefreshStoreUnavailable, client)
}

// configureRefreshTokens applies the refresh token settings of cfg.
func (s *Server) configureRefreshTokens(cfg Config) error {
	s.refreshTokens = cfg.RefreshTokens
	if s.refreshTokens == nil {
		s.refreshTokens = NewMemoryRefreshTokenStore()
	}
	s.refreshTTL, s.refreshMaxLifetime, s.refreshPerClient = cfg.RefreshTokenTTL, cfg.RefreshTokenMaxLifetime, cfg.RefreshFamiliesPerClient
	if s.refreshTTL == 0 {
		s.refreshTTL = DefaultRefreshTokenTTL
	}
	if s.refreshMaxLifetime == 0 {
		s.refreshMaxLifetime = DefaultRefreshTokenMaxLifetime
	}
	if s.refreshPerClient == 0 {
		s.refreshPerClient = DefaultRefreshFamiliesPerClient
	}
	switch {
	case s.refreshTTL < time.Second:
		return fmt.Errorf("refresh token TTL %s is shorter than a second", s.refreshTTL)
	case s.refreshMaxLifetime < s.refreshTTL:
		return fmt.Errorf("refresh token maximum lifetime %s is shorter than the refresh token TTL %s", s.refreshMaxLifetime, s.refreshTTL)
	case s.refreshPerClient < 1:
		return fmt.Errorf("refresh token families per client %d: at least 1", s.refreshPerClient)
	}
	return nil
}

// pruneRefreshTokens drops expired families; a failure is logged, the next
// round retries.
func (s *Server) pruneRefreshTokens(ctx context.Context) {
	n, err := s.refreshTokens.Prune(ctx, s.clock.Now())
	if err != nil {
		s.log.Warn("prune refresh token store", "error", err)
		return
	}
	s.metrics.refreshFamilies(n)
}
