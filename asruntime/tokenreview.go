package asruntime

// Validating a Kubernetes service account token for the token exchange
// grant: the API server's TokenReview (authentication.k8s.io/v1), asked
// about the token with this server's issuer as the audience.
//
// Why TokenReview and not offline verification against the cluster's
// OIDC discovery keys: only the API server knows whether the service
// account, and the pod or Secret a token is bound to, still exist with the
// UIDs the token names. A token of a deleted pod or service account
// verifies offline until it expires (up to an hour and more for projected
// tokens); TokenReview refuses it at once. The cost is one request to the
// API server per exchange — once per pod start and per rotation of its
// projected token, since refreshes use the refresh token — and the
// exchange fails (503) while the API server is away.
//
// Why no cache of positive results: exchanges are rare per token (a
// workload exchanges a projected token once, then refreshes), so a cache
// would save almost no requests; it would only widen the window in which a
// token of a deleted service account still works. The API server's own
// token cache already answers a repeated review cheaply, and the server's
// Kubernetes client is rate limited (kubeClientQPS), which bounds what a
// flood of exchanges can cost the API server.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TokenReviewer validates Kubernetes service account tokens. A nil
// TokenReviewer in Config means the server does not offer the token
// exchange grant.
type TokenReviewer interface {
	// Review returns the Kubernetes user name the token authenticates for
	// audience. errTokenNotAuthenticated means the API server does not
	// accept the token for that audience; any other error means it could
	// not be asked.
	Review(ctx context.Context, token, audience string) (username string, err error)
}

// errTokenNotAuthenticated: the API server answered, and not with an
// authenticated user for the audience.
var errTokenNotAuthenticated = errors.New("the API server does not authenticate the token for this audience")

// KubeTokenReviewer asks the API server with TokenReviews. Its service
// account needs create on tokenreviews.authentication.k8s.io (cluster
// scoped).
type KubeTokenReviewer struct {
	client kubernetes.Interface
}

// NewKubeTokenReviewer reviews tokens with client.
func NewKubeTokenReviewer(client kubernetes.Interface) *KubeTokenReviewer {
	return &KubeTokenReviewer{client: client}
}

func (k *KubeTokenReviewer) Review(ctx context.Context, token, audience string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	review, err := k.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create TokenReview: %w", err)
	}
	return reviewedUser(review.Status, audience)
}

// reviewedUser decides what a TokenReview status means: the user name
// when the token is authenticated for audience, else
// errTokenNotAuthenticated. An authenticator that ignores spec.audiences
// answers with no status.audiences; that is a refusal too (RFC 8693 §2.1
// needs the token meant for this server, not for any audience).
func reviewedUser(status authenticationv1.TokenReviewStatus, audience string) (string, error) {
	if !status.Authenticated || !slices.Contains(status.Audiences, audience) || status.User.Username == "" {
		return "", errTokenNotAuthenticated
	}
	return status.User.Username, nil
}
