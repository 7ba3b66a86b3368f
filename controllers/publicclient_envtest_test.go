package controllers_test

// Public clients (authenticationMethod none, RFC 8705 §4) and the
// authorization server's access for their token exchange, against the real
// API server: CEL rules, registrations, Secrets, ServiceAccount conditions,
// the TokenReview ClusterRoleBinding and the operator's own RBAC.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/testenv"
)

const tokenReviewClusterRole = "certbound-authorization-server-tokenreview"

// newPublicClient is a public client of the shared server bound to
// ServiceAccount sa.
func newPublicClient(ns, name, sa string, mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
	return newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.PublicClient
		c.Spec.ServiceAccountName = sa
		c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantTypeTokenExchange, oauthv1alpha1.GrantTypeRefreshToken}
		if mutate != nil {
			mutate(c)
		}
	})
}

func createServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
}

func TestPublicClientIsRegisteredWithoutAnyKey(t *testing.T) {
	const ns, name, sa = "zerosecret", "billing", "billing-worker"
	createNamespace(t, ns, true)
	createServiceAccount(t, ns, sa)
	mustCreate(t, newPublicClient(ns, name, sa, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Audiences = []string{ledgerAudience}
	}))
	oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
	for ct, reason := range map[string]string{
		oauthv1alpha1.ConditionCertificateReady:    controllers.ReasonCertificateMadeByWorkload,
		oauthv1alpha1.ConditionRegistered:          controllers.ReasonRegistered,
		oauthv1alpha1.ConditionServiceAccountFound: controllers.ReasonServiceAccountFound,
	} {
		if c := findCondition(oc.Status.Conditions, ct); c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			t.Errorf("%s = %+v, want True/%s", ct, c, reason)
		}
	}
	wantSA := "system:serviceaccount:" + ns + ":" + sa
	if oc.Status.ServiceAccount != wantSA || oc.Status.RegistrationName != registration.ObjectName(ns, name) ||
		oc.Status.ClientID != ns+"."+name || oc.Status.Certificate != nil {
		t.Errorf("status %+v", oc.Status)
	}

	md := getRegistration(t, ns, name).Spec.Client
	if md.TokenEndpointAuthMethod != registration.AuthMethodNone || md.ServiceAccount != wantSA ||
		!slices.Equal(md.GrantTypes, []string{registration.GrantTypeTokenExchange, registration.GrantTypeRefreshToken}) ||
		!md.TLSClientCertificateBoundAccessTokens || md.Scope != "payments.read" || !slices.Equal(md.Resources, []string{ledgerAudience}) ||
		len(subjectMembers(&md)) != 0 || md.JWKS != nil || md.JWKSURI != "" || md.MinCertificateNotBefore != nil {
		t.Errorf("registration %+v", md)
	}

	// No certificate machinery and no key anywhere: only the config.
	assertAbsent(t, &cmapi.Certificate{}, ns, name)
	assertAbsent(t, &cmapi.Issuer{}, ns, name+"-selfsigned")
	assertAbsent(t, &corev1.Secret{}, ns, name+"-mtls")
	config := mustSecret(t, ns, name+"-oauth-config")
	keys := make([]string, 0, len(config.Data))
	for k := range config.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"ca.crt", "client_id", "issuer", "token_endpoint"}) ||
		string(config.Data["token_endpoint"]) != "https://payments.auth.svc:9443/token" || string(config.Data["issuer"]) != "https://payments.auth.svc" {
		t.Errorf("config Secret keys %v, token_endpoint %q", keys, config.Data["token_endpoint"])
	}
	var secrets corev1.SecretList
	if err := env.Client.List(context.Background(), &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Name != config.Name {
			t.Errorf("the public client's namespace holds Secret %s besides its config", s.Name)
		}
	}
}

func TestMissingServiceAccountIsReportedUntilItIsCreated(t *testing.T) {
	const ns, name, sa = "gitops", "ledger", "ledger-worker"
	createNamespace(t, ns, true)
	mustCreate(t, newPublicClient(ns, name, sa, nil))
	oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionServiceAccountFound, metav1.ConditionFalse, controllers.ReasonServiceAccountNotFound)
	if c := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionServiceAccountFound); !strings.Contains(c.Message, "kubectl create serviceaccount -n gitops ledger-worker") {
		t.Errorf("message %q does not say what to create", c.Message)
	}
	if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != controllers.ReasonServiceAccountNotFound {
		t.Errorf("Ready = %+v, want False/ServiceAccountNotFound", ready)
	}
	// Not fatal: the registration is written, so the exchange works the
	// moment the ServiceAccount exists, whatever order GitOps applies in.
	if c := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionRegistered); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Registered = %+v, want True", c)
	}
	getRegistration(t, ns, name)

	// Only the ServiceAccount's own event may bring the client to Ready:
	// no reconcile still queued from its creation must pick it up.
	waitUntilNoWrites(t)
	createServiceAccount(t, ns, sa)
	waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)

	var account corev1.ServiceAccount
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sa}, &account); err != nil {
		t.Fatal(err)
	}
	waitUntilNoWrites(t)
	if err := env.Client.Delete(context.Background(), &account); err != nil {
		t.Fatal(err)
	}
	waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonServiceAccountNotFound)
}

// waitUntilNoWrites waits until the controllers have made no write for 3 s,
// so that what follows is caused by the test's next change alone.
func waitUntilNoWrites(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	last, lastChange := writes.Load(), time.Now()
	for time.Since(lastChange) < 3*time.Second {
		if time.Now().After(deadline) {
			t.Fatal("the controllers never stopped writing")
		}
		time.Sleep(pollInterval)
		if w := writes.Load(); w != last {
			last, lastChange = w, time.Now()
		}
	}
}

// Tenancy: a public client gets only what its namespace is granted, and the
// service account it registers is always of its own namespace.
func TestClientPolicyAppliesToPublicClients(t *testing.T) {
	const ns = "publicgrants"
	createNamespace(t, ns, true)
	createServiceAccount(t, ns, "worker")
	mustCreate(t, newPublicClient(ns, "refunder", "worker", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{refundScope} }))
	mustCreate(t, newPublicClient(ns, "vaulter", "worker", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Audiences = []string{vaultAudience} }))
	mustCreate(t, newPublicClient(ns, "reader", "worker", nil))
	for name, reason := range map[string]string{"refunder": validation.ReasonScopeNotAllowed, "vaulter": validation.ReasonAudienceNotAllowed} {
		oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, reason)
		if oc.Status.ServiceAccount != "" {
			t.Errorf("%s: a refused client shows service account %q", name, oc.Status.ServiceAccount)
		}
		assertAbsent(t, &oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, name))
		assertAbsent(t, &corev1.Secret{}, ns, name+"-oauth-config")
	}
	waitForClientCondition(t, ns, "reader", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if got := getRegistration(t, ns, "reader").Spec.Client.ServiceAccount; got != "system:serviceaccount:"+ns+":worker" {
		t.Errorf("registered service account %q", got)
	}
}

// The CRD's own rules, as the API server applies them with the webhook off.
func TestPublicClientRulesOfTheAPIServer(t *testing.T) {
	const ns = "publicrules"
	createNamespace(t, ns, true)
	bearer := false
	cases := map[string]struct {
		client *oauthv1alpha1.OAuthClient
		want   string // empty: admitted
	}{
		"a public client with token exchange and refresh is admitted": {newPublicClient(ns, "ok", "w", nil), ""},
		"none without serviceAccountName is refused": {newPublicClient(ns, "no-sa", "", nil),
			"serviceAccountName is required for authenticationMethod none"},
		"serviceAccountName with tls_client_auth is refused": {newClient(ns, "pki-sa", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/w"}
			c.Spec.ServiceAccountName = "w"
		}), "serviceAccountName is required for authenticationMethod none (the public client is that service account's) and not allowed for the mTLS methods"},
		"none with the default grant types is refused": {newPublicClient(ns, "defaults", "w", func(c *oauthv1alpha1.OAuthClient) { c.Spec.GrantTypes = nil }),
			"authenticationMethod none needs grantTypes to list urn:ietf:params:oauth:grant-type:token-exchange"},
		"none with client_credentials is refused": {newPublicClient(ns, "cc", "w", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.GrantTypes = append(c.Spec.GrantTypes, oauthv1alpha1.GrantTypeClientCredentials)
		}), "client_credentials is not allowed with authenticationMethod none"},
		"token exchange with tls_client_auth is refused": {newClient(ns, "pki-exchange", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/w"}
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantTypeClientCredentials, oauthv1alpha1.GrantTypeTokenExchange}
		}), "token-exchange is only allowed with authenticationMethod none"},
		"refresh_token without token exchange is refused": {newClient(ns, "pki-refresh", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/w"}
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantTypeClientCredentials, oauthv1alpha1.GrantTypeRefreshToken}
		}), "refresh_token is only allowed together with urn:ietf:params:oauth:grant-type:token-exchange"},
		"none with bearer tokens is refused": {newPublicClient(ns, "bearer", "w", func(c *oauthv1alpha1.OAuthClient) { c.Spec.CertificateBoundAccessTokens = &bearer }),
			"certificateBoundAccessTokens must be true for authenticationMethod none"},
		"none with a subject is refused": {newPublicClient(ns, "subject", "w", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/w"}
		}), "subject is required for tls_client_auth and not allowed for the other methods"},
		"a service account name that is not a name is refused": {newPublicClient(ns, "badname", "Worker_1", nil), "spec.serviceAccountName"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := env.Client.Create(context.Background(), tc.client, client.DryRunAll)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want a refusal saying %q", err, tc.want)
			}
		})
	}

	as := newServer(ns, "refresh-limits", func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.Tokens.RefreshTokenTTL = &metav1.Duration{Duration: 48 * time.Hour}
		as.Spec.Tokens.RefreshTokenMaxLifetime = &metav1.Duration{Duration: 24 * time.Hour}
	})
	if err := env.Client.Create(context.Background(), as, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "refreshTokenTTL must not exceed refreshTokenMaxLifetime") {
		t.Errorf("a refresh TTL past the family's lifetime: %v", err)
	}
}

func getBinding(name string) (*rbacv1.ClusterRoleBinding, error) {
	var b rbacv1.ClusterRoleBinding
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &b)
	return &b, err
}

func TestServerMayReviewTokensAndLosesItWhenDeleted(t *testing.T) {
	ctx := context.Background()
	const ns, name = "exchange", "tokens"
	createNamespace(t, ns, false)
	var caSecret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: authNS, Name: clientsCA}, &caSecret); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: clientsCA, Namespace: ns}, Data: caSecret.Data})
	mustCreate(t, newServer(ns, name, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.Tokens.RefreshTokenTTL = &metav1.Duration{Duration: 2 * time.Hour}
		as.Spec.Tokens.MaxRefreshTokenFamiliesPerClient = ptrTo(int32(5))
	}))
	bindingName := tokenReviewClusterRole + "." + ns + "." + name
	var binding *rbacv1.ClusterRoleBinding
	eventually(t, "the server's TokenReview binding", func() error {
		var err error
		binding, err = getBinding(bindingName)
		return err
	})
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != tokenReviewClusterRole ||
		len(binding.Subjects) != 1 || binding.Subjects[0].Kind != rbacv1.ServiceAccountKind || binding.Subjects[0].Namespace != ns || binding.Subjects[0].Name != name {
		t.Errorf("binding %+v", binding)
	}
	var role rbacv1.ClusterRole
	if err := env.Client.Get(ctx, client.ObjectKey{Name: tokenReviewClusterRole}, &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].APIGroups, []string{"authentication.k8s.io"}) ||
		!slices.Equal(role.Rules[0].Resources, []string{"tokenreviews"}) || !slices.Equal(role.Rules[0].Verbs, []string{"create"}) {
		t.Errorf("the TokenReview ClusterRole grants %+v, want create on tokenreviews only", role.Rules)
	}
	var deployment appsv1.Deployment
	eventually(t, "the server's Deployment", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &deployment)
	})
	args := deployment.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--refresh-token-ttl=2h0m0s", "--refresh-token-max-lifetime=24h0m0s", "--refresh-token-families-per-client=5"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}

	// Drift is repaired: a binding edited to name another subject is put
	// back.
	binding.Subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "intruder"}}
	if err := env.Client.Update(ctx, binding); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the binding's subject is restored", func() error {
		b, err := getBinding(bindingName)
		if err != nil {
			return err
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Name != name {
			return fmt.Errorf("subjects %+v", b.Subjects)
		}
		return nil
	})

	var as oauthv1alpha1.AuthorizationServer
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &as); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, &as); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted server's binding is removed", func() error {
		_, err := getBinding(bindingName)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("binding still there: %v", err)
	})
}

// A binding left behind for a server that no longer exists (deleted while
// the operator was down) is removed once the operator sees it.
func TestBindingOfAServerThatIsGoneIsRemoved(t *testing.T) {
	const name = tokenReviewClusterRole + ".vanished.server"
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "certbound"},
			Annotations: map[string]string{"oauth.certbound.io/authorization-server": "vanished/server"},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tokenReviewClusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "vanished", Name: "server"}},
	})
	eventually(t, "the orphaned binding is removed", func() error {
		_, err := getBinding(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("binding still there: %v", err)
	})
}

// The operator's generated ClusterRole (config/rbac/role.yaml) is enough
// to create the TokenReview ClusterRole and bind it: RBAC lets a user
// create or bind a role only with permissions it holds itself. The test
// acts as a user holding exactly that role.
func TestOperatorRoleMayGrantTokenReviewAndNothingMore(t *testing.T) {
	ctx := context.Background()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var managerRole rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &managerRole); err != nil {
		t.Fatal(err)
	}
	const user = "test-certbound-operator"
	managerRole.ObjectMeta = metav1.ObjectMeta{Name: "test-certbound-manager-role"}
	mustCreate(t, &managerRole)
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-certbound-manager-role"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: managerRole.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	operator, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	tokenReviewer := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "test-tokenreview"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}},
	}
	bind := func(name, role string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "exchange", Name: "tokens"}},
		}
	}
	eventually(t, "the operator's role takes effect", func() error {
		return operator.Create(ctx, tokenReviewer, client.DryRunAll)
	})
	if err := operator.Create(ctx, tokenReviewer); err != nil {
		t.Fatalf("the operator cannot create the TokenReview ClusterRole: %v", err)
	}
	if err := operator.Create(ctx, bind("test-tokenreview", tokenReviewer.Name)); err != nil {
		t.Errorf("the operator cannot bind the TokenReview ClusterRole: %v", err)
	}
	// The escalation check is real: a role with more than the operator
	// holds can be neither created nor bound.
	if err := operator.Create(ctx, bind("test-auth-delegator", "system:auth-delegator"), client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("binding system:auth-delegator (subjectaccessreviews too): %v, want Forbidden", err)
	}
	if err := operator.Create(ctx, bind("test-cluster-admin", "cluster-admin"), client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("binding cluster-admin: %v, want Forbidden", err)
	}
}
