package controllers_test

// One envtest suite with one shared manager: a real kube-apiserver and etcd,
// the real cert-manager controllers, and the certbound controllers under
// test. Tests assert what a user would see.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/test/testenv"
)

var (
	env *testenv.Environment
	// writes counts every write the manager's client makes.
	writes atomic.Int64
	// managerCache is the manager's cache, to show what it holds.
	managerCache cache.Cache
)

// testTrustAnchorResync is the trust-anchor resync period of the suite's
// manager: short, so that tests see an anchor change promptly.
const testTrustAnchorResync = 2 * time.Second

const testImage = "ghcr.io/certbound/certbound:test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	var err error
	env, err = testenv.Start(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv stop:", err)
		}
	}()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(),
		NewClient: func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.New(config, options)
			if err != nil {
				return nil, err
			}
			return &countingClient{Client: c}, nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	managerCache = mgr.GetCache()
	if err := controllers.Setup(mgr, controllers.Options{AuthorizationServerImage: testImage, TrustAnchorResyncPeriod: testTrustAnchorResync}); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if err := createFixtures(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fixtures:", err)
		return 1
	}
	return m.Run()
}

// countingClient counts writes, to prove a quiet cluster gets none, and
// reads of each OAuthClient (one per reconcile of it).
type countingClient struct{ client.Client }

// clientReads counts the manager's Gets of each OAuthClient by key.
var clientReads sync.Map

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*oauthv1alpha1.OAuthClient); ok {
		n, _ := clientReads.LoadOrStore(key, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func readsOfClient(key client.ObjectKey) int64 {
	n, ok := clientReads.Load(key)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}
func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}
func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}
func (c *countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	writes.Add(1)
	return c.Client.Apply(ctx, obj, opts...)
}
func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}
func (c *countingClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	writes.Add(1)
	return c.Client.DeleteAllOf(ctx, obj, opts...)
}
func (c *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: c.Client.Status()}
}

type countingStatus struct{ client.SubResourceWriter }

func (s *countingStatus) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	writes.Add(1)
	return s.SubResourceWriter.Create(ctx, obj, sub, opts...)
}
func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	writes.Add(1)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}
func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	writes.Add(1)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}
func (s *countingStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	writes.Add(1)
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}

// Fixture names.
const (
	authNS        = "auth"
	serverName    = "payments"
	clientsCA     = "clients-ca"
	allowedLabel  = "oauth.certbound.io/clients"
	billingNS     = "billing"
	testTimeout   = 90 * time.Second
	pollInterval  = 100 * time.Millisecond
	bootstrapName = "bootstrap"
)

// createFixtures builds the PKI (SelfSigned ClusterIssuer → CA → CA
// ClusterIssuer), copies the CA into the server's namespace as its trust
// anchor and creates the shared AuthorizationServer.
func createFixtures(ctx context.Context) error {
	c := env.Client
	for _, ns := range []string{authNS} {
		if err := env.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	objs := []client.Object{
		&cmapi.ClusterIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: bootstrapName},
			Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
		},
		&cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Name: clientsCA, Namespace: testenv.ClusterResourceNamespace},
			Spec: cmapi.CertificateSpec{
				IsCA: true, CommonName: clientsCA, SecretName: clientsCA,
				IssuerRef: cmmeta.IssuerReference{Name: bootstrapName, Kind: cmapi.ClusterIssuerKind},
			},
		},
		&cmapi.ClusterIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: clientsCA},
			Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: clientsCA}}},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	var caSecret corev1.Secret
	deadline := time.Now().Add(testTimeout)
	for {
		err := c.Get(ctx, client.ObjectKey{Namespace: testenv.ClusterResourceNamespace, Name: clientsCA}, &caSecret)
		if err == nil && len(caSecret.Data["ca.crt"]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CA secret not issued: %v", err)
		}
		time.Sleep(pollInterval)
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: clientsCA, Namespace: authNS},
		Data:       map[string][]byte{"ca.crt": caSecret.Data["ca.crt"]},
	}); err != nil {
		return err
	}
	return c.Create(ctx, newServer(authNS, serverName, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.Replicas = ptrTo(int32(2))
		as.Spec.AllowedClientNamespaces = oauthv1alpha1.AllowedNamespaces{
			From:     oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{allowedLabel: "true"}},
		}
		// Grants that only some namespaces get, for the policy tests.
		as.Spec.ClientPolicy.Scopes = append(as.Spec.ClientPolicy.Scopes, oauthv1alpha1.ScopePolicy{
			Name: refundScope, Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "refunds"}},
		})
		as.Spec.ClientPolicy.Audiences = []oauthv1alpha1.AudiencePolicy{
			{URI: ledgerAudience},
			{URI: vaultAudience, Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "vault"}}},
		}
	}))
}

// The client policy of the test servers: DNs under O=Acme with the client's
// namespace as OU, SPIFFE IDs of the client's namespace (the default), DNS
// names under <namespace>.svc and email under <namespace>.example.com.
const (
	dnPattern      = "CN=*,OU={namespace},O=Acme"
	refundScope    = "payments.refund"
	teamLabel      = "test.certbound.io/team"
	ledgerAudience = "https://ledger.example/api"
	vaultAudience  = "https://vault.example/api"
)

func defaultClientPolicy() oauthv1alpha1.ClientPolicy {
	return oauthv1alpha1.ClientPolicy{
		Subjects: []oauthv1alpha1.SubjectPattern{
			{DN: dnPattern},
			{URI: oauthv1alpha1.DefaultSubjectPattern},
			{DNSName: "*.{namespace}.svc"},
			{Email: "*@{namespace}.example.com"},
		},
		Scopes: []oauthv1alpha1.ScopePolicy{{Name: "payments.read"}, {Name: "payments.write"}},
	}
}

func ptrTo[T any](v T) *T { return &v }

func newServer(ns, name string, mutate func(*oauthv1alpha1.AuthorizationServer)) *oauthv1alpha1.AuthorizationServer {
	as := &oauthv1alpha1.AuthorizationServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: oauthv1alpha1.AuthorizationServerSpec{
			ServingCertificate:      oauthv1alpha1.ServingCertificate{IssuerRef: oauthv1alpha1.IssuerReference{Name: clientsCA, Kind: oauthv1alpha1.IssuerKindClusterIssuer}},
			ClientTrustAnchors:      []oauthv1alpha1.TrustAnchor{{SecretRef: oauthv1alpha1.SecretKeySelector{Name: clientsCA, Key: "ca.crt"}}},
			ClientCertificateIssuer: &oauthv1alpha1.IssuerReference{Name: clientsCA, Kind: oauthv1alpha1.IssuerKindClusterIssuer},
			ClientPolicy:            defaultClientPolicy(),
		},
	}
	if mutate != nil {
		mutate(as)
	}
	return as
}

func newClient(ns, name string, mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
	c := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: oauthv1alpha1.OAuthClientSpec{
			AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: serverName, Namespace: authNS},
			Scopes:                 []string{"payments.read"},
		},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

// createNamespace creates a namespace, labelled allowed or not.
func createNamespace(t *testing.T, name string, allowed bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if allowed {
		ns.Labels = map[string]string{allowedLabel: "true"}
	}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// eventually polls check until it returns nil or testTimeout passes.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	poll.Until(t, testTimeout, what, func() (bool, string) {
		err := check()
		return err == nil, fmt.Sprint(err)
	})
}

func getClient(t *testing.T, ns, name string) *oauthv1alpha1.OAuthClient {
	t.Helper()
	var c oauthv1alpha1.OAuthClient
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
		t.Fatalf("get OAuthClient %s/%s: %v", ns, name, err)
	}
	return &c
}

// waitForCondition waits until the object's condition has status and
// reason, at the object's current generation.
func waitForClientCondition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *oauthv1alpha1.OAuthClient {
	t.Helper()
	var oc oauthv1alpha1.OAuthClient
	eventually(t, fmt.Sprintf("OAuthClient %s/%s %s=%s/%s", ns, name, condType, status, reason), func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &oc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(oc.Status.Conditions, condType)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != oc.Generation {
			return fmt.Errorf("conditions: %+v", oc.Status.Conditions)
		}
		return nil
	})
	return &oc
}

func waitForServerCondition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *oauthv1alpha1.AuthorizationServer {
	t.Helper()
	var as oauthv1alpha1.AuthorizationServer
	eventually(t, fmt.Sprintf("AuthorizationServer %s/%s %s=%s/%s", ns, name, condType, status, reason), func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &as); err != nil {
			return err
		}
		c := meta.FindStatusCondition(as.Status.Conditions, condType)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != as.Generation {
			return fmt.Errorf("conditions: %+v", as.Status.Conditions)
		}
		return nil
	})
	return &as
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
