package asruntime

// Introspection (RFC 7662) and revocation (RFC 7009) of refresh tokens.
// Only the family's own client sees or revokes them. Only the current
// token of a family is active; revoking it revokes the family (RFC 7009
// §2.1 lets the server revoke the whole grant), after which every token of
// it is refused. An earlier token is answered like any invalid token:
// {"active":false}, or 200 with nothing revoked — presenting one at these
// endpoints proves no possession of the family's certificate, so it is not
// treated as the replay the token endpoint revokes the family for.

import (
	"crypto/subtle"
	"net/http"
	"strconv"

	"github.com/certbound/certbound/asruntime/certbinding"
)

// currentFamily returns the family whose current, unexpired token raw is
// and that caller may see; nil when there is none.
func (s *Server) currentFamily(r *http.Request, caller *Client, raw string) (*RefreshFamily, bool, error) {
	id, ok := refreshFamilyID(raw)
	if !ok {
		return nil, false, nil
	}
	f, err := s.refreshTokens.Get(r.Context(), id)
	if err != nil || f == nil {
		return nil, false, err
	}
	current := subtle.ConstantTimeCompare([]byte(f.TokenHash), []byte(refreshTokenHash(raw))) == 1 && !f.expiredAt(s.clock.Now())
	if !current {
		return nil, false, nil
	}
	return f, f.ClientID == caller.ID, nil
}

// introspectRefreshToken answers the introspection of a token shaped like
// a refresh token and returns the outcome for the metrics.
func (s *Server) introspectRefreshToken(w http.ResponseWriter, r *http.Request, caller *Client, raw string) string {
	f, own, err := s.currentFamily(r, caller, raw)
	if err != nil {
		s.log.Error("introspection: refresh token store unavailable", "client_id", caller.ID, "error", err)
		s.writeOAuthError(w, errRefreshStoreUnavailable)
		return errRefreshStoreUnavailable.code
	}
	if f == nil || !own {
		writeIntrospection(w, inactive)
		return "inactive"
	}
	owner, ok := s.registry.Clients().Lookup(f.ClientID)
	if !ok || !owner.refreshTokens || !s.familyStillGranted(owner, f) {
		writeIntrospection(w, inactive)
		return "inactive"
	}
	writeIntrospection(w, s.activeRefreshResponse(f))
	return "active"
}

// activeRefreshResponse renders the RFC 7662 §2.2 members of a refresh
// token; exp is the current token's idle expiry.
func (s *Server) activeRefreshResponse(f *RefreshFamily) []byte {
	b := make([]byte, 0, 320)
	b = append(b, `{"active":true,"token_type":"refresh_token","iss":`...)
	b = appendJSONString(b, s.issuer)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, f.Subject)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, f.ClientID)
	if f.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, f.Scope)
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, f.TokenExpires.Unix(), 10)
	b = append(b, `,"cnf":{"`+certbinding.ConfirmationKey+`":`...)
	b = appendJSONString(b, f.Thumbprint)
	return append(b, `}}`...)
}

// revokeRefreshToken revokes the family of a token shaped like a refresh
// token and returns the outcome for the metrics.
func (s *Server) revokeRefreshToken(w http.ResponseWriter, r *http.Request, caller *Client, raw string) string {
	f, own, err := s.currentFamily(r, caller, raw)
	switch {
	case err != nil:
		s.log.Error("revocation: refresh token store unavailable", "client_id", caller.ID, "error", err)
		s.writeOAuthError(w, errRefreshStoreUnavailable)
		return errRefreshStoreUnavailable.code
	case f == nil:
		writeRevoked(w)
		return "ignored"
	case !own:
		s.log.Info("revocation of another client's refresh token refused", "client_id", caller.ID, "token_client_id", f.ClientID)
		s.writeOAuthError(w, errNotTheClientsToken)
		return errNotTheClientsToken.code
	}
	if err := s.refreshTokens.Delete(r.Context(), f.ID); err != nil {
		s.log.Error("revocation: refresh token family could not be deleted", "client_id", caller.ID, "error", err)
		s.writeOAuthError(w, errRefreshStoreUnavailable)
		return errRefreshStoreUnavailable.code
	}
	s.log.Info("refresh token family revoked", "client_id", caller.ID)
	writeRevoked(w)
	return "revoked"
}
