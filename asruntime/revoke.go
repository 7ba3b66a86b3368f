package asruntime

// Token revocation (RFC 7009). The caller authenticates as a registered
// client and may revoke only tokens issued to it: RFC 7009 §2.1 has the
// server verify "whether the token was issued to the client making the
// revocation request. If this validation fails, the request is refused and
// the client is informed of the error", with the RFC 6749 §5.2 error
// format (§2.2.1) — here 400 unauthorized_client, and nothing is recorded.
// Tokens that are not this server's, malformed or already expired are
// answered 200 and nothing is recorded (§2.2: "invalid tokens do not cause
// an error response"). A store that cannot record the revocation answers
// 503, which §2.2.1 tells the client to read as "the token still exists,
// retry later".

import (
	"errors"
	"net/http"
	"time"
)

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := s.revoke(w, r)
	s.metrics.revoked(outcome, start)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) string {
	client, t, outcome, done := s.tokenManagementRequest(w, r)
	if done {
		return outcome
	}
	if t == nil {
		writeRevoked(w)
		return "ignored"
	}
	if t.ClientID != client.ID {
		s.log.Info("revocation of another client's token refused", "client_id", client.ID, "token_client_id", t.ClientID)
		s.writeOAuthError(w, errNotTheClientsToken)
		return errNotTheClientsToken.code
	}
	if err := s.revocations.Revoke(r.Context(), t.ID, time.Unix(t.Expiry, 0)); err != nil {
		level := "error"
		if errors.Is(err, ErrRevocationStoreFull) {
			level = "full"
		}
		s.log.Error("revocation could not be recorded", "client_id", client.ID, "store", level, "error", err)
		s.writeOAuthError(w, errRevocationUnavailable)
		return errRevocationUnavailable.code
	}
	s.log.Info("token revoked", "client_id", client.ID, "jti", t.ID)
	writeRevoked(w)
	return "revoked"
}

func writeRevoked(w http.ResponseWriter) {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	w.WriteHeader(http.StatusOK)
}
