package asruntime

import (
	"errors"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestReviewedUser(t *testing.T) {
	const issuer = "https://payments.auth.svc"
	user := authenticationv1.UserInfo{Username: workerSA}
	for name, c := range map[string]struct {
		status authenticationv1.TokenReviewStatus
		want   string
	}{
		"authenticated for the issuer": {authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{issuer}, User: user}, workerSA},
		"not authenticated":            {authenticationv1.TokenReviewStatus{Authenticated: false, Audiences: []string{issuer}, User: user, Error: "expired"}, ""},
		// An authenticator that ignores spec.audiences answers with the
		// API server's own audiences or none: not a token for this server.
		"no audiences":                       {authenticationv1.TokenReviewStatus{Authenticated: true, User: user}, ""},
		"another audience":                   {authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"https://kubernetes.default.svc"}, User: user}, ""},
		"no user name":                       {authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{issuer}}, ""},
		"an audience that only starts alike": {authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{issuer + "/x"}, User: user}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := reviewedUser(c.status, issuer)
			if c.want == "" {
				if !errors.Is(err, errTokenNotAuthenticated) {
					t.Fatalf("got %q, %v; want a refusal", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
