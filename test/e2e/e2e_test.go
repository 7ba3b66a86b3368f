// Package e2e runs the whole system — control plane, cert-manager, the
// operator binary, the authorization-server pods as local processes — and
// checks the promises a user relies on: the demo story, revocation by
// deletion, restarts that lose nothing, and renewal.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/devcluster"
)

var cluster *devcluster.Cluster

func TestMain(m *testing.M) {
	// The test client logs the API server's warnings (an AuthorizationServer
	// that opts out of namespace binding gets one) through controller-runtime.
	ctrllog.SetLogger(logr.Discard())
	var err error
	cluster, err = devcluster.Start(devcluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		if data, err := os.ReadFile(cluster.OperatorLog()); err == nil {
			lines := strings.Split(string(data), "\n")
			fmt.Fprintf(os.Stderr, "--- last operator log lines:\n%s\n", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		fmt.Fprintf(os.Stderr, "--- last authorization-server log lines:\n%s\n", cluster.Runner.LastLogLines("auth", "payments", 40))
	}
	cluster.Stop()
	os.Exit(code)
}

func transcript(t *testing.T) *devcluster.Transcript {
	return &devcluster.Transcript{W: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func workload(ctx context.Context, t *testing.T, name string) *devcluster.Workload {
	t.Helper()
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: name}}
	if err := devcluster.WaitReady(ctx, cluster.Env.Client, oc, func() []metav1.Condition { return oc.Status.Conditions }, transcript(t)); err != nil {
		t.Fatal(err)
	}
	w, err := devcluster.LoadWorkload(ctx, cluster.Env.Client, oc)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// pkiClient is a tls_client_auth OAuthClient of the sample server
// auth/payments registered by subject.
func pkiClient(name string, subject oauthv1alpha1.ClientSubject) *oauthv1alpha1.OAuthClient {
	return &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: name},
		Spec: oauthv1alpha1.OAuthClientSpec{
			AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments"},
			AuthenticationMethod:   oauthv1alpha1.TLSClientAuth,
			Subject:                &subject,
			Scopes:                 []string{"payments.read"},
		},
	}
}

// TestDemoStory is `make demo --once`: the samples become Ready, every
// workload gets a bound token and calls the protected API, a replayed token
// is refused.
func TestDemoStory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := devcluster.RunStory(ctx, cluster, transcript(t)); err != nil {
		t.Fatal(err)
	}
}

// TestAFailedWaitSaysWhy: when an object never becomes Ready, the demo's
// wait reports the object and its conditions, so the user sees what to fix.
func TestAFailedWaitSaysWhy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	oc := pkiClient("orphan", oauthv1alpha1.ClientSubject{DNSName: "orphan.auth.svc"})
	oc.Spec.AuthorizationServerRef.Name = "does-not-exist"
	if err := cluster.Env.CreateNamespace(ctx, "auth"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Env.Client.Create(ctx, oc); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.Env.Client.Delete(context.Background(), oc) }()
	waitCtx, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	err := devcluster.WaitReady(waitCtx, cluster.Env.Client, oc, func() []metav1.Condition { return oc.Status.Conditions }, transcript(t))
	if err == nil || !strings.Contains(err.Error(), "auth/orphan") || !strings.Contains(err.Error(), "AuthorizationServerNotFound") {
		t.Fatalf("the failed wait says %v, want the object and the AuthorizationServerNotFound reason", err)
	}
}

// TestAuthorizationServerRestartKeepsServing kills the authorization
// server's process; the runner restarts it (as a kubelet would) and the
// same client gets tokens again, verifiable with the persisted signing key.
func TestAuthorizationServerRestartKeepsServing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := workload(ctx, t, "billing-worker")
	if _, _, err := w.Token(ctx, cluster.Dialer()); err != nil {
		t.Fatal(err)
	}
	// The keys published before the restart must verify tokens signed after
	// it: the restarted process signs with the persisted key.
	var as oauthv1alpha1.AuthorizationServer
	if err := cluster.Env.Client.Get(ctx, client.ObjectKey{Namespace: "auth", Name: "payments"}, &as); err != nil {
		t.Fatal(err)
	}
	keysBefore := fetchJWKS(ctx, t, as.Status.Endpoints.JWKS, w)
	if !cluster.Runner.KillPod("auth", "payments") {
		t.Fatal("no local authorization-server process to kill")
	}
	var token string
	poll.UntilContext(ctx, t, "the restarted server issues tokens", func() (bool, string) {
		var err error
		token, _, err = w.Token(ctx, cluster.Dialer())
		return err == nil, fmt.Sprint(err)
	})
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := keysBefore.Key(kid)
	if len(keys) == 0 {
		t.Fatalf("the restarted server signs with key %q, which it did not publish before the restart", kid)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		t.Fatalf("a token of the restarted server does not verify with the key published before the restart: %v", err)
	}
}

// fetchJWKS reads a JWK Set over TLS, trusting the workload's server CAs.
func fetchJWKS(ctx context.Context, t *testing.T, jwksURL string, w *devcluster.Workload) *jose.JSONWebKeySet {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := devcluster.HTTPClient(cluster.Dialer(), w.ServerCAs, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS at %s: %d keys, %v", jwksURL, len(set.Keys), err)
	}
	return &set
}

// TestDeletingAClientRevokesItsAccess: once its OAuthClient is deleted, a
// workload can no longer get tokens, within the registry's propagation
// bound (an informer event plus a 100 ms debounce; 30 s allowed here).
func TestDeletingAClientRevokesItsAccess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := cluster.Env.Client
	oc := pkiClient("short-lived", oauthv1alpha1.ClientSubject{DNSName: "short-lived.auth.svc"})
	if err := c.Create(ctx, oc); err != nil {
		t.Fatal(err)
	}
	w := workload(ctx, t, "short-lived")
	poll.UntilContext(ctx, t, "the new client gets a token", func() (bool, string) {
		_, _, err := w.Token(ctx, cluster.Dialer())
		return err == nil, fmt.Sprint(err)
	})
	deleted := time.Now()
	if err := c.Delete(ctx, oc); err != nil {
		t.Fatal(err)
	}
	revokeCtx, cancelRevoke := context.WithTimeout(ctx, 30*time.Second)
	defer cancelRevoke()
	poll.UntilContext(revokeCtx, t, "the deleted client is refused", func() (bool, string) {
		_, _, err := w.Token(ctx, cluster.Dialer())
		return err != nil && strings.Contains(err.Error(), "invalid_client"), fmt.Sprint(err)
	})
	t.Logf("access revoked %s after deletion", time.Since(deleted).Round(time.Millisecond))
	poll.UntilContext(ctx, t, "no registration is left", func() (bool, string) {
		var reg oauthv1alpha1.ClientRegistration
		name := registration.ObjectName("auth", "short-lived")
		err := c.Get(ctx, client.ObjectKey{Namespace: "auth", Name: name}, &reg)
		return apierrors.IsNotFound(err), fmt.Sprintf("the ClientRegistration %s is still there (%v)", name, err)
	})
}

// TestOperatorRestartMidReconcileLosesNothing kills the operator right after
// a client is created; after a restart the client becomes Ready with
// exactly one Certificate and one registration.
func TestOperatorRestartMidReconcileLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := cluster.Env.Client
	oc := pkiClient("restart-proof", oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/auth/sa/restart-proof"})
	if err := c.Create(ctx, oc); err != nil {
		t.Fatal(err)
	}
	// Cut the operator off as soon as it has started on the client (its
	// finalizer is the first thing it writes).
	poll.UntilContext(ctx, t, "the operator starts on the client", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(oc), oc)
		return err == nil && len(oc.Finalizers) > 0, fmt.Sprint(err)
	})
	cluster.StopOperator(true)
	if err := cluster.StartOperator(); err != nil {
		t.Fatal(err)
	}
	w := workload(ctx, t, "restart-proof")
	// Ready says the registration is written; the authorization server
	// loads it from its watch a few tens of milliseconds later.
	tokenCtx, cancelToken := context.WithTimeout(ctx, 10*time.Second)
	defer cancelToken()
	poll.UntilContext(tokenCtx, t, "the client gets a token after the operator restart", func() (bool, string) {
		_, _, err := w.Token(ctx, cluster.Dialer())
		return err == nil, fmt.Sprint(err)
	})
	var certs cmapi.CertificateList
	if err := c.List(ctx, &certs, client.InNamespace("auth")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, cert := range certs.Items {
		for _, ref := range cert.OwnerReferences {
			if ref.UID == oc.UID {
				n++
				// Issued once: a hold restarted by the restart would
				// have made the first certificate predate it and be
				// reissued.
				if rev := ptr.Deref(cert.Status.Revision, 0); rev != 1 {
					t.Errorf("Certificate %s is at revision %d, want 1", cert.Name, rev)
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d Certificates belong to the client, want 1", n)
	}
	var regs oauthv1alpha1.ClientRegistrationList
	if err := c.List(ctx, &regs, client.MatchingLabels{controllers.LabelClientNamespace: "auth", controllers.LabelClientName: "restart-proof"}); err != nil {
		t.Fatal(err)
	}
	if registrations := len(regs.Items); registrations != 1 {
		t.Fatalf("%d ClientRegistrations for the client, want 1", registrations)
	}
}

// renew asks cert-manager to reissue a Certificate, the way `cmctl renew`
// does, and waits for a certificate with a new thumbprint in the
// OAuthClient's status.
func renew(ctx context.Context, t *testing.T, name string) (old, renewed *devcluster.Workload) {
	t.Helper()
	c := cluster.Env.Client
	old = workload(ctx, t, name)
	var cert cmapi.Certificate
	var certs cmapi.CertificateList
	if err := c.List(ctx, &certs, client.InNamespace("auth")); err != nil {
		t.Fatal(err)
	}
	for _, item := range certs.Items {
		if item.Spec.SecretName == controllers.CertificateSecretName(name, "") || strings.HasPrefix(item.Spec.SecretName, name) {
			cert = item
		}
	}
	if cert.Name == "" {
		t.Fatalf("no Certificate for %s", name)
	}
	cert.Status.Conditions = append(cert.Status.Conditions, cmapi.CertificateCondition{
		Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue, Reason: "ManuallyTriggered", Message: "renewal forced by the e2e test",
	})
	if err := c.Status().Update(ctx, &cert); err != nil {
		t.Fatal(err)
	}
	oldThumbprint := certbinding.Thumbprint(old.Certificate.Certificate[0])
	poll.UntilContext(ctx, t, name+" has a renewed certificate", func() (bool, string) {
		w := workload(ctx, t, name)
		renewed = w
		return certbinding.Thumbprint(w.Certificate.Certificate[0]) != oldThumbprint, "same certificate"
	})
	return old, renewed
}

// TestRenewalKeepsPKIClientsWorking: after cert-manager renews a
// tls_client_auth client's certificate, the new certificate authenticates
// and its tokens are bound to it.
func TestRenewalKeepsPKIClientsWorking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, renewed := renew(ctx, t, "ledger-sync")
	poll.UntilContext(ctx, t, "the renewed certificate gets a token bound to it", func() (bool, string) {
		_, claims, err := renewed.Token(ctx, cluster.Dialer())
		if err != nil {
			return false, err.Error()
		}
		cnf, _ := claims["cnf"].(map[string]any)
		return cnf[certbinding.ConfirmationKey] == certbinding.Thumbprint(renewed.Certificate.Certificate[0]), fmt.Sprint(cnf)
	})
}

// TestRenewalKeepsSelfSignedClientsWorking: a self-signed client's old and
// new certificates both authenticate after a renewal (the registration
// keeps every unexpired certificate), so a workload that has not yet
// reloaded its files is not locked out.
func TestRenewalKeepsSelfSignedClientsWorking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	old, renewed := renew(ctx, t, "reporting")
	poll.UntilContext(ctx, t, "the renewed self-signed certificate authenticates", func() (bool, string) {
		_, _, err := renewed.Token(ctx, cluster.Dialer())
		return err == nil, fmt.Sprint(err)
	})
	if _, _, err := old.Token(ctx, cluster.Dialer()); err != nil {
		t.Fatalf("the previous self-signed certificate was locked out right after renewal: %v", err)
	}
}

// TestAPIServerAwayForThirtySeconds freezes the API server: the running
// authorization server keeps issuing tokens to registered clients from its
// local copy of the registry, and once the API server is back the operator
// reconciles new work again.
func TestAPIServerAwayForThirtySeconds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := workload(ctx, t, "billing-worker")
	resume, err := cluster.FreezeAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	defer resume()
	outage := time.Now()
	tokens := 0
	for time.Since(outage) < 30*time.Second {
		if _, _, err := w.Token(ctx, cluster.Dialer()); err != nil {
			t.Fatalf("token %d after %s without an API server: %v", tokens+1, time.Since(outage).Round(time.Second), err)
		}
		tokens++
		time.Sleep(2 * time.Second)
	}
	resume()
	t.Logf("%d tokens issued during a 30 s API server outage", tokens)

	oc := pkiClient("after-outage", oauthv1alpha1.ClientSubject{DNSName: "after-outage.auth.svc"})
	poll.UntilContext(ctx, t, "the API server answers again", func() (bool, string) {
		err := cluster.Env.Client.Create(ctx, oc)
		return err == nil, fmt.Sprint(err)
	})
	after := workload(ctx, t, "after-outage")
	poll.UntilContext(ctx, t, "a client created after the outage gets a token", func() (bool, string) {
		_, _, err := after.Token(ctx, cluster.Dialer())
		return err == nil, fmt.Sprint(err)
	})
}

// postForm posts form to the workload's mTLS endpoint path (a sibling of
// its token endpoint) with its certificate and returns status and body.
func postForm(ctx context.Context, t *testing.T, w *devcluster.Workload, path string, form url.Values) (int, string) {
	t.Helper()
	endpoint := strings.TrimSuffix(w.TokenEndpoint, "/token") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := devcluster.HTTPClient(cluster.Dialer(), w.ServerCAs, &w.Certificate).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRevocationIsSharedAndSurvivesRestarts: a workload revokes its token at
// the in-cluster authorization server; introspection by the ledger's
// resource server (ledger-sync, introspectionAudiences) then says inactive,
// also after the server's process is killed and restarted (revocations are
// ConfigMaps in the server's namespace), while another client's attempt to
// revoke a token it does not own changes nothing, and that client, no
// resource server, learns nothing of the token by introspecting it.
func TestRevocationIsSharedAndSurvivesRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	owner, other, resourceServer := workload(ctx, t, "billing-worker"), workload(ctx, t, "reporting"), workload(ctx, t, "ledger-sync")
	token, _, err := owner.Token(ctx, cluster.Dialer())
	if err != nil {
		t.Fatal(err)
	}
	introspectAs := func(caller *devcluster.Workload) string {
		status, body := postForm(ctx, t, caller, "/introspect", url.Values{"client_id": {caller.ClientID}, "token": {token}})
		if status != http.StatusOK {
			t.Fatalf("introspect as %s: %d %s", caller.ClientID, status, body)
		}
		return body
	}
	introspect := func() string { return introspectAs(resourceServer) }
	if body := introspect(); !strings.Contains(body, `"active":true`) || !strings.Contains(body, certbinding.Thumbprint(owner.Certificate.Certificate[0])) {
		t.Fatalf("a fresh token introspects as %s, want active with its cnf", body)
	}
	if body := introspectAs(other); body != `{"active":false}` {
		t.Fatalf("a client that is neither the token's nor a resource server of its audience introspects it as %s", body)
	}
	if body := introspectAs(owner); !strings.Contains(body, `"active":true`) {
		t.Fatalf("the owner introspects its own token as %s", body)
	}
	if status, body := postForm(ctx, t, other, "/revoke", url.Values{"client_id": {other.ClientID}, "token": {token}}); status == http.StatusOK {
		t.Fatalf("another client revoked the token: %d %s", status, body)
	}
	if body := introspect(); !strings.Contains(body, `"active":true`) {
		t.Fatalf("another client's revocation attempt deactivated the token: %s", body)
	}
	if status, body := postForm(ctx, t, owner, "/revoke", url.Values{"client_id": {owner.ClientID}, "token": {token}}); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if body := introspect(); body != `{"active":false}` {
		t.Fatalf("a revoked token introspects as %s", body)
	}
	if !cluster.Runner.KillPod("auth", "payments") {
		t.Fatal("no local authorization-server process to kill")
	}
	poll.UntilContext(ctx, t, "the restarted server still knows the revocation", func() (bool, string) {
		status, body := postForm(ctx, t, resourceServer, "/introspect", url.Values{"client_id": {resourceServer.ClientID}, "token": {token}})
		return status == http.StatusOK && body == `{"active":false}`, fmt.Sprintf("%d %s", status, body)
	})
}

// TestAPortInUseIsReported: when the operator cannot bind its webhook port,
// starting it fails with the operator's own words, not a hang; it starts
// again once the port is free. The process holding the port accepts
// connections, so the operator must not count a connection to the port as
// its webhook server being up: it is ready only once its own server bound
// the port, which here never happens, so it exits with the bind error.
func TestAPortInUseIsReported(t *testing.T) {
	cluster.StopOperator(false)
	addr := net.JoinHostPort(cluster.Env.Webhook.LocalServingHost, strconv.Itoa(cluster.Env.Webhook.LocalServingPort))
	squatter, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	err = cluster.StartOperator()
	squatter.Close()
	if err == nil {
		t.Fatalf("the operator started although its webhook port %s was taken", addr)
	}
	if msg := err.Error(); !strings.Contains(msg, "exited during start-up") || !strings.Contains(msg, addr) || !strings.Contains(msg, "address already in use") {
		t.Fatalf("starting the operator with its webhook port taken: %v, want it to exit with the bind error naming %s", err, addr)
	}
	if err := cluster.StartOperator(); err != nil {
		t.Fatalf("the operator does not start once the port is free: %v", err)
	}
}
