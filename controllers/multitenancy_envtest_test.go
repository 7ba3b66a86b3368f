package controllers_test

// The attacks of the multi-tenancy redesign (issue #11), each against the
// real API server and the real cert-manager: a tenant must not obtain,
// keep, re-use or take over an identity another tenant holds, nor be
// granted what the server's client policy does not give its namespace.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/registration"
)

// waitPastSecond waits until the clock is in a later second than t, so that
// what happens next is stamped strictly after t (certificate times and
// holds are whole seconds).
func waitPastSecond(t *testing.T, tm time.Time) {
	t.Helper()
	eventually(t, "the clock passes "+tm.UTC().Format(time.RFC3339), func() error {
		if now := time.Now().Truncate(time.Second); !now.After(tm) {
			return errorf("now %s", now)
		}
		return nil
	})
}

// waitForLeafChange waits until the client is Ready with a certificate other
// than the one with thumbprint old, and returns the client.
func waitForLeafChange(t *testing.T, ns, name, old string) *oauthv1alpha1.OAuthClient {
	t.Helper()
	var oc *oauthv1alpha1.OAuthClient
	eventually(t, "client "+ns+"/"+name+" Ready with a renewed certificate", func() error {
		oc = getClient(t, ns, name)
		ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != oc.Generation {
			return errorf("Ready = %+v", ready)
		}
		if oc.Status.Certificate == nil || oc.Status.Certificate.Thumbprint == old {
			return errorf("status.certificate = %+v, still the old certificate", oc.Status.Certificate)
		}
		return nil
	})
	return oc
}

// Attack (a): a subject of another namespace is refused; a subject released
// and claimed again does not let the earlier holder's certificate in.
func TestSubjectOfAnotherNamespaceIsRefused(t *testing.T) {
	const victimNS, attackerNS = "reclaim-a", "reclaim-b"
	createNamespace(t, victimNS, true)
	createNamespace(t, attackerNS, true)
	mustCreate(t, newClient(attackerNS, "x", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + victimNS + "/sa/x"}
	}))
	oc := waitForClientCondition(t, attackerNS, "x", oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, validation.ReasonSubjectNotAllowed)
	if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v, want False", ready)
	}
	assertAbsent(t, &cmapi.Certificate{}, attackerNS, "x")
	assertAbsent(t, &oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(attackerNS, "x"))

	// The same with a DN naming the other namespace's OU.
	mustCreate(t, newClient(attackerNS, "dn", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: "CN=x,OU=" + victimNS + ",O=Acme"}
	}))
	waitForClientCondition(t, attackerNS, "dn", oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, validation.ReasonSubjectNotAllowed)
	assertAbsent(t, &cmapi.Certificate{}, attackerNS, "dn")
}

func TestReclaimedSubjectRefusesTheEarlierHoldersCertificate(t *testing.T) {
	ctx := context.Background()
	const ns, name = "reclaim", "x"
	const dn = "CN=x,OU=" + ns + ",O=Acme"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	first := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	oldLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	oldReg := getRegistration(t, ns, name)
	if oldReg.Spec.Client.MinCertificateNotBefore == nil || oldLeaf.NotBefore.Before(oldReg.Spec.Client.MinCertificateNotBefore.Time) {
		t.Fatalf("first holder: min_certificate_not_before %v, certificate notBefore %s", oldReg.Spec.Client.MinCertificateNotBefore, oldLeaf.NotBefore)
	}

	// The holder goes; its registration goes with it.
	if err := env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first holder and its registration are gone", func() error {
		if err := absent(&oauthv1alpha1.OAuthClient{}, ns, name); err != nil {
			return err
		}
		return absent(&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, name))
	})

	// envtest runs no garbage collector: remove what it would have removed
	// with the old Certificate (cert-manager names CertificateRequests
	// <certificate>-<revision>, so a left-over one blocks the new
	// Certificate's first request).
	if err := env.Client.DeleteAllOf(ctx, &cmapi.CertificateRequest{}, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}

	// The subject is claimed again, under the same name (the same
	// client_id), after the old certificate was issued.
	waitPastSecond(t, oldLeaf.NotBefore)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	second := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if second.UID == first.UID {
		t.Fatal("the client was not recreated")
	}
	reg := getRegistration(t, ns, name)
	if reg.Spec.Holder.UID != second.UID {
		t.Errorf("registration holder %+v, want the new client %s", reg.Spec.Holder, second.UID)
	}
	min := reg.Spec.Client.MinCertificateNotBefore
	if min == nil {
		t.Fatal("the new registration has no min_certificate_not_before")
	}
	// The earlier holder's certificate carries the same subject and is
	// still within its validity, but predates the new hold: it cannot
	// authenticate the new holder.
	if !oldLeaf.NotBefore.Before(min.Time) {
		t.Errorf("min_certificate_not_before %s does not exclude the earlier holder's certificate (notBefore %s)", min.UTC(), oldLeaf.NotBefore.UTC())
	}
	if second.Status.SubjectHeldSince == nil || !second.Status.SubjectHeldSince.Equal(min) {
		t.Errorf("status.subjectHeldSince %v, want %v", second.Status.SubjectHeldSince, min)
	}
	// The new holder's own certificate is issued after its hold: no lock-out.
	newLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	if newLeaf.NotBefore.Before(min.Time) {
		t.Errorf("the new holder's certificate (notBefore %s) predates its hold %s", newLeaf.NotBefore.UTC(), min.UTC())
	}
	if c := findCondition(second.Status.Conditions, oauthv1alpha1.ConditionCertificateReady); c == nil || c.Reason != controllers.ReasonIssued {
		t.Errorf("CertificateReady = %+v, want Issued", c)
	}
	if second.Status.Certificate == nil || second.Status.Certificate.Thumbprint != certbinding.Thumbprint(newLeaf.Raw) || second.Status.Certificate.Thumbprint == certbinding.Thumbprint(oldLeaf.Raw) {
		t.Errorf("status.certificate = %+v", second.Status.Certificate)
	}
}

// Attack (b): a tenant's own AuthorizationServer, with a permissive policy,
// does not let it claim a subject a client of another server holds.
func TestSubjectIsUniqueAcrossAuthorizationServers(t *testing.T) {
	const holderNS, tenantNS = "xas-a", "xas-b"
	const dn = "CN=api,OU=" + holderNS + ",O=Acme"
	createNamespace(t, holderNS, true)
	createNamespace(t, tenantNS, false)
	mustCreate(t, newClient(holderNS, "api", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	waitForClientCondition(t, holderNS, "api", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	before := getRegistration(t, holderNS, "api")

	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: clientsCA, Namespace: tenantNS}, Data: mustSecret(t, authNS, clientsCA).Data})
	mustCreate(t, newServer(tenantNS, "rogue", func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.AllowedClientNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSame}
		as.Spec.ClientPolicy = oauthv1alpha1.ClientPolicy{
			Subjects:             []oauthv1alpha1.SubjectPattern{{DN: "CN=*,OU=*,O=Acme"}},
			AllowUnboundSubjects: true,
			Scopes:               []oauthv1alpha1.ScopePolicy{{Name: "payments.read"}},
		}
	}))
	waitForServerCondition(t, tenantNS, "rogue", oauthv1alpha1.ConditionClientPolicyReady, metav1.ConditionTrue, controllers.ReasonUnboundSubjectsAllowed)
	mustCreate(t, newClient(tenantNS, "thief", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthorizationServerRef = oauthv1alpha1.AuthorizationServerReference{Name: "rogue"}
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	oc := waitForClientCondition(t, tenantNS, "thief", oauthv1alpha1.ConditionRegistered, metav1.ConditionFalse, controllers.ReasonSubjectConflict)
	if c := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionAccepted); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Accepted = %+v, want True: the rogue server's own policy admits the subject", c)
	}
	if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != controllers.ReasonSubjectConflict {
		t.Errorf("Ready = %+v, want False/SubjectConflict", ready)
	}
	// Another tenant's holder is not disclosed.
	if c := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionRegistered); strings.Contains(c.Message, holderNS) || strings.Contains(c.Message, "api") {
		t.Errorf("the conflict message discloses the other tenant's client: %q", c.Message)
	}
	assertAbsent(t, &oauthv1alpha1.ClientRegistration{}, tenantNS, registration.ObjectName(tenantNS, "thief"))
	assertAbsent(t, &cmapi.Certificate{}, tenantNS, "thief")
	assertAbsent(t, &corev1.Secret{}, tenantNS, "thief-mtls")
	var regs oauthv1alpha1.ClientRegistrationList
	if err := env.Client.List(context.Background(), &regs, client.MatchingLabels{controllers.LabelClientNamespace: tenantNS}); err != nil {
		t.Fatal(err)
	}
	if len(regs.Items) != 0 {
		t.Errorf("the thief is registered: %v", regs.Items)
	}
	// The holder is untouched.
	waitForClientCondition(t, holderNS, "api", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if after := getRegistration(t, holderNS, "api"); after.ResourceVersion != before.ResourceVersion {
		t.Error("the holder's registration was rewritten")
	}
}

// Attack (c): an older client that switches its subject to one a newer
// client holds starts a new hold, and loses.
func TestSubjectChangeIsNotATakeover(t *testing.T) {
	ctx := context.Background()
	const ns = "takeover"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, "old", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: "CN=old,OU=" + ns + ",O=Acme"}
	}))
	older := waitForClientCondition(t, ns, "old", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	waitPastSecond(t, older.Status.SubjectHeldSince.Time)
	const target = "CN=new,OU=" + ns + ",O=Acme"
	mustCreate(t, newClient(ns, "new", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: target}
	}))
	newer := waitForClientCondition(t, ns, "new", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if !older.Status.SubjectHeldSince.Before(newer.Status.SubjectHeldSince) {
		t.Fatalf("holds %v and %v: the first client is not the older", older.Status.SubjectHeldSince, newer.Status.SubjectHeldSince)
	}
	newerReg := getRegistration(t, ns, "new")

	patch := client.MergeFrom(older.DeepCopy())
	older.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: target}
	if err := env.Client.Patch(ctx, older, patch); err != nil {
		t.Fatal(err)
	}
	oc := waitForClientCondition(t, ns, "old", oauthv1alpha1.ConditionRegistered, metav1.ConditionFalse, controllers.ReasonSubjectConflict)
	if c := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionRegistered); !strings.Contains(c.Message, "OAuthClient new") {
		t.Errorf("the conflict message does not name the holder in the same namespace: %q", c.Message)
	}
	eventually(t, "the older client's registration and certificate are gone", func() error {
		for _, o := range []struct {
			obj      client.Object
			ns, name string
		}{
			{&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, "old")},
			{&cmapi.Certificate{}, ns, "old"},
			{&corev1.Secret{}, ns, "old-mtls"},
		} {
			if err := absent(o.obj, o.ns, o.name); err != nil {
				return err
			}
		}
		return nil
	})
	// The newer client keeps its subject, untouched.
	after := waitForClientCondition(t, ns, "new", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if !after.Status.SubjectHeldSince.Equal(newer.Status.SubjectHeldSince) {
		t.Errorf("the holder's hold moved from %v to %v", newer.Status.SubjectHeldSince, after.Status.SubjectHeldSince)
	}
	reg := getRegistration(t, ns, "new")
	if reg.ResourceVersion != newerReg.ResourceVersion || reg.Spec.Holder.UID != newer.UID {
		t.Errorf("the holder's registration changed: %+v", reg.Spec.Holder)
	}
}

// Attack (d): scopes and audiences are granted only as clientPolicy lists
// them for the client's namespace.
func TestClientPolicyLimitsScopesAndAudiences(t *testing.T) {
	const ns = "grants"
	createNamespace(t, ns, true)
	subject := func(name string) *oauthv1alpha1.ClientSubject {
		return &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}
	refused := []struct {
		name, reason string
		mutate       func(*oauthv1alpha1.OAuthClient)
	}{
		{"unlisted-scope", validation.ReasonScopeNotAllowed, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Scopes = []string{"payments.read", "payments.admin"}
		}},
		{"other-teams-scope", validation.ReasonScopeNotAllowed, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Scopes = []string{refundScope}
		}},
		{"unlisted-audience", validation.ReasonAudienceNotAllowed, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Audiences = []string{"https://unknown.example/api"}
		}},
		{"other-teams-audience", validation.ReasonAudienceNotAllowed, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Audiences = []string{ledgerAudience, vaultAudience}
		}},
	}
	for _, tc := range refused {
		mustCreate(t, newClient(ns, tc.name, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = subject(tc.name)
			tc.mutate(c)
		}))
	}
	mustCreate(t, newClient(ns, "granted", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = subject("granted")
		c.Spec.Scopes = []string{"payments.read", "payments.write"}
		c.Spec.Audiences = []string{ledgerAudience}
	}))
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			oc := waitForClientCondition(t, ns, tc.name, oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, tc.reason)
			if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
				t.Errorf("Ready = %+v, want False", ready)
			}
			assertAbsent(t, &oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, tc.name))
			assertAbsent(t, &cmapi.Certificate{}, ns, tc.name)
		})
	}
	waitForClientCondition(t, ns, "granted", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	md := getRegistration(t, ns, "granted").Spec.Client
	if md.Scope != "payments.read payments.write" || !slices.Equal(md.Resources, []string{ledgerAudience}) {
		t.Errorf("registered scope %q resources %v", md.Scope, md.Resources)
	}

	// Labelling the namespace for the vault team grants its audience.
	var nsObj corev1.Namespace
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: ns}, &nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels[teamLabel] = "vault"
	if err := env.Client.Update(context.Background(), &nsObj); err != nil {
		t.Fatal(err)
	}
	waitForClientCondition(t, ns, "other-teams-audience", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	md = getRegistration(t, ns, "other-teams-audience").Spec.Client
	if !slices.Equal(md.Resources, []string{ledgerAudience, vaultAudience}) {
		t.Errorf("registered resources %v", md.Resources)
	}
	// The refunds scope stays refused.
	waitForClientCondition(t, ns, "other-teams-scope", oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, validation.ReasonScopeNotAllowed)
}

// Attack (e): registration names cannot collide: "a"/"b-c" and "a-b"/"c"
// had the same registration Secret name before.
func TestRegistrationNamesDoNotCollide(t *testing.T) {
	clients := []struct{ ns, name string }{{"a", "b-c"}, {"a-b", "c"}}
	for _, c := range clients {
		createNamespace(t, c.ns, true)
		mustCreate(t, newClient(c.ns, c.name, func(oc *oauthv1alpha1.OAuthClient) {
			oc.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + c.ns + "/sa/" + c.name}
		}))
	}
	seen := map[string]bool{}
	for _, c := range clients {
		oc := waitForClientCondition(t, c.ns, c.name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
		reg := getRegistration(t, c.ns, c.name)
		if reg.Spec.Holder.Namespace != c.ns || reg.Spec.Holder.Name != c.name || reg.Spec.Holder.UID != oc.UID {
			t.Errorf("registration %s holder %+v, want %s/%s", reg.Name, reg.Spec.Holder, c.ns, c.name)
		}
		if want := c.ns + "." + c.name; reg.Spec.Client.ClientID != want || oc.Status.ClientID != want {
			t.Errorf("client_id %q / %q, want %q", reg.Spec.Client.ClientID, oc.Status.ClientID, want)
		}
		if u := reg.Spec.Client.TLSClientAuthSANURI; u == nil || *u != "spiffe://cluster.local/ns/"+c.ns+"/sa/"+c.name {
			t.Errorf("registration %s subject %v", reg.Name, u)
		}
		seen[reg.Name] = true
	}
	if len(seen) != 2 {
		t.Errorf("registrations %v, want two distinct", seen)
	}
}

// Attack (f): a registration outlives no client, even one whose finalizer
// was removed by hand.
func TestOrphanedRegistrationsAreRemoved(t *testing.T) {
	ctx := context.Background()
	const ns = "orphans"
	createNamespace(t, ns, true)

	// A client deleted with its finalizer removed by hand.
	mustCreate(t, newClient(ns, "ghost", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/ghost"}
	}))
	waitForClientCondition(t, ns, "ghost", oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "")
	getRegistration(t, ns, "ghost")
	oc := getClient(t, ns, "ghost")
	patch := client.MergeFrom(oc.DeepCopy())
	oc.Finalizers = nil
	if err := env.Client.Patch(ctx, oc, patch); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, oc); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	eventually(t, "the registration of the client deleted without its finalizer is gone", func() error {
		if err := absent(&oauthv1alpha1.OAuthClient{}, ns, "ghost"); err != nil {
			return err
		}
		return absent(&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, "ghost"))
	})

	// Deterministically the orphan path: a registration left behind by a
	// client that no longer exists at all (as after the above, had the
	// controller been down) is removed when it is next seen.
	uri := "spiffe://cluster.local/ns/" + ns + "/sa/left-behind"
	mustCreate(t, &oauthv1alpha1.ClientRegistration{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: authNS, Name: registration.ObjectName(ns, "left-behind"),
			Labels: map[string]string{
				controllers.LabelAuthorizationServer: serverName,
				controllers.LabelClientNamespace:     ns,
				controllers.LabelClientName:          "left-behind",
			},
		},
		Spec: oauthv1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: serverName,
			Holder:                  oauthv1alpha1.ClientHolder{Namespace: ns, Name: "left-behind", UID: "00000000-0000-0000-0000-000000000000"},
			Client: oauthv1alpha1.ClientMetadata{
				ClientID:                ns + ".left-behind",
				TokenEndpointAuthMethod: "tls_client_auth",
				GrantTypes:              []string{"client_credentials"},
				TLSClientAuthSANURI:     &uri,
				MinCertificateNotBefore: &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)},
			},
		},
	})
	eventually(t, "the orphaned registration is removed", func() error {
		return absent(&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, "left-behind"))
	})

	// An orphan does not block a live claimant of its subject either: it is
	// not obeyed, it is removed.
	stale := "spiffe://cluster.local/ns/" + ns + "/sa/stale"
	mustCreate(t, &oauthv1alpha1.ClientRegistration{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: authNS, Name: registration.ObjectName(ns, "gone"),
			Labels: map[string]string{
				controllers.LabelAuthorizationServer: serverName,
				controllers.LabelClientNamespace:     ns,
				controllers.LabelClientName:          "gone",
			},
		},
		Spec: oauthv1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: serverName,
			Holder:                  oauthv1alpha1.ClientHolder{Namespace: ns, Name: "gone", UID: "00000000-0000-0000-0000-000000000001"},
			Client: oauthv1alpha1.ClientMetadata{
				ClientID:                ns + ".gone",
				TokenEndpointAuthMethod: "tls_client_auth",
				TLSClientAuthSANURI:     &stale,
				MinCertificateNotBefore: &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)},
			},
		},
	})
	mustCreate(t, newClient(ns, "heir", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: stale}
	}))
	waitForClientCondition(t, ns, "heir", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	eventually(t, "the orphan is removed", func() error {
		return absent(&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, "gone"))
	})
}

// Attack (g): the authorization server's own credentials read no Secret.
func TestServerRoleReadsNoSecrets(t *testing.T) {
	waitForServerCondition(t, authNS, serverName, oauthv1alpha1.ConditionClientPolicyReady, metav1.ConditionTrue, controllers.ReasonClientPolicyLoaded)
	var role rbacv1.Role
	eventually(t, "the server's Role", func() error {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: authNS, Name: serverName}, &role)
	})
	readsRegistrations := false
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			if res == "secrets" || res == "*" || strings.HasPrefix(res, "secrets/") {
				t.Errorf("the server's Role grants %v on %s", r.Verbs, res)
			}
			if res == "clientregistrations" && slices.Contains(r.APIGroups, oauthv1alpha1.GroupVersion.Group) {
				readsRegistrations = true
				for _, v := range r.Verbs {
					if v != "get" && v != "list" && v != "watch" {
						t.Errorf("the server may %s ClientRegistrations", v)
					}
				}
			}
		}
		if len(r.ResourceNames) == 0 && slices.Contains(r.APIGroups, "*") {
			t.Errorf("the server's Role grants every API group: %+v", r)
		}
	}
	if !readsRegistrations {
		t.Errorf("the server's Role does not read ClientRegistrations: %+v", role.Rules)
	}
}

// Attack (h): a registration Secret of an earlier version is migrated: the
// hold keeps its original start, and the Secret is gone.
//
// The state an upgrade starts from is an OAuthClient that has no
// ClientRegistration yet and a registration Secret. With the operator
// running, a registration Secret whose client does not exist (yet) is an
// orphan and is removed at once, so the test holds the operator off the
// client with a ValidatingAdmissionPolicy (it cannot add its finalizer, the
// first thing it does) while it creates the client and then the Secret.
func TestLegacyRegistrationSecretIsMigrated(t *testing.T) {
	ctx := context.Background()
	const ns, name = "legacy", "old-timer"
	uri := "spiffe://cluster.local/ns/" + ns + "/sa/" + name
	createNamespace(t, ns, true)

	release := holdOffClientUpdates(t, ns)
	defer release()
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: uri}
	}))
	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: authNS, Name: "oauthclient-" + ns + "-" + name,
			// The labels earlier versions wrote.
			Labels: map[string]string{
				controllers.CachedSecretLabel:        controllers.CachedSecretLabelValue,
				controllers.LabelAuthorizationServer: serverName,
				controllers.LabelClientNamespace:     ns,
				controllers.LabelClientName:          name,
			},
		},
		Data: map[string][]byte{registration.LegacySecretKey: []byte(`{"client_id":"` + ns + "." + name + `","token_endpoint_auth_method":"tls_client_auth","grant_types":["client_credentials"],"scope":"payments.read","tls_client_auth_san_uri":"` + uri + `","tls_client_certificate_bound_access_tokens":true}`)},
	}
	mustCreate(t, legacy)
	created := legacy.CreationTimestamp.Time
	// Let time pass, so that "since the Secret" and "since now" differ.
	waitPastSecond(t, created)
	if err := absent(&oauthv1alpha1.ClientRegistration{}, authNS, registration.ObjectName(ns, name)); err != nil {
		t.Fatalf("the operator registered the client while held off: %v", err)
	}
	mustSecret(t, authNS, legacy.Name)
	release()

	oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	eventually(t, "the legacy registration Secret is deleted", func() error {
		return absent(&corev1.Secret{}, authNS, legacy.Name)
	})
	reg := getRegistration(t, ns, name)
	min := reg.Spec.Client.MinCertificateNotBefore
	if min == nil || !min.Time.Equal(created) {
		t.Errorf("min_certificate_not_before %v, want the legacy Secret's creation %s", min, created.UTC())
	}
	if oc.Status.SubjectHeldSince == nil || !oc.Status.SubjectHeldSince.Time.Equal(created) {
		t.Errorf("status.subjectHeldSince %v, want %s", oc.Status.SubjectHeldSince, created.UTC())
	}
	if reg.Spec.Holder.UID != oc.UID || reg.Spec.Client.TLSClientAuthSANURI == nil || *reg.Spec.Client.TLSClientAuthSANURI != uri {
		t.Errorf("migrated registration %+v", reg.Spec)
	}
	var secrets corev1.SecretList
	if err := env.Client.List(ctx, &secrets, client.InNamespace(authNS), client.MatchingLabels{controllers.LabelClientNamespace: ns}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Errorf("registration Secrets left: %d", len(secrets.Items))
	}
}

// holdOffClientUpdates makes the API server refuse every update of the
// OAuthClients in ns (the operator's included) until the returned function
// is called; it returns once the refusal is in force.
func holdOffClientUpdates(t *testing.T, ns string) func() {
	t.Helper()
	ctx := context.Background()
	name := "test-hold-off-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{oauthv1alpha1.GroupVersion.Group},
							APIVersions: []string{oauthv1alpha1.GroupVersion.Version},
							Resources:   []string{"oauthclients"},
						},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "held off by the test"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			},
		},
	}
	mustCreate(t, policy)
	mustCreate(t, binding)
	// A probe client proves the refusal is in force.
	probe := newClient(ns, "hold-off-probe", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
		c.Spec.AuthorizationServerRef = oauthv1alpha1.AuthorizationServerReference{Name: "no-such-server"}
	})
	mustCreate(t, probe)
	eventually(t, "updates of OAuthClients in "+ns+" are refused", func() error {
		var oc oauthv1alpha1.OAuthClient
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(probe), &oc); err != nil {
			return err
		}
		patch := client.MergeFrom(oc.DeepCopy())
		oc.Annotations = map[string]string{"test.certbound.io/probe": time.Now().String()}
		if err := env.Client.Patch(ctx, &oc, patch); err == nil || !strings.Contains(err.Error(), "held off by the test") {
			return errorf("update not refused: %v", err)
		}
		return nil
	})
	released := false
	return func() {
		t.Helper()
		if released {
			return
		}
		released = true
		for _, o := range []client.Object{binding, policy} {
			if err := env.Client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
		}
		// Once updates pass again, the probe goes and every client of
		// the namespace is poked so that it is reconciled now, not after
		// the operator's back-off.
		eventually(t, "updates of OAuthClients in "+ns+" pass again", func() error {
			var list oauthv1alpha1.OAuthClientList
			if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			for i := range list.Items {
				oc := &list.Items[i]
				patch := client.MergeFrom(oc.DeepCopy())
				if oc.Annotations == nil {
					oc.Annotations = map[string]string{}
				}
				oc.Annotations["test.certbound.io/poke"] = time.Now().String()
				if err := env.Client.Patch(ctx, oc, patch); err != nil {
					return err
				}
			}
			return nil
		})
		if err := env.Client.Delete(ctx, probe); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
	}
}

// Attack (i), the other side: renewal never locks the holder out.
func TestRenewedCertificateKeepsTheHold(t *testing.T) {
	ctx := context.Background()
	const ns, name = "renewal", "rotating"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}))
	before := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	held := before.Status.SubjectHeldSince
	if held == nil || before.Status.Certificate == nil {
		t.Fatalf("status %+v", before.Status)
	}
	oldLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	waitPastSecond(t, oldLeaf.NotBefore)

	// Force cert-manager to reissue.
	if err := env.Client.Delete(ctx, mustSecret(t, ns, name+"-mtls")); err != nil {
		t.Fatal(err)
	}
	after := waitForLeafChange(t, ns, name, before.Status.Certificate.Thumbprint)
	if after.Status.SubjectHeldSince == nil || !after.Status.SubjectHeldSince.Equal(held) {
		t.Errorf("the hold moved from %v to %v on renewal", held, after.Status.SubjectHeldSince)
	}
	newLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	if newLeaf.NotBefore.Before(held.Time) || !newLeaf.NotBefore.After(oldLeaf.NotBefore) {
		t.Errorf("renewed certificate notBefore %s, hold %s, previous %s", newLeaf.NotBefore.UTC(), held.UTC(), oldLeaf.NotBefore.UTC())
	}
	if c := findCondition(after.Status.Conditions, oauthv1alpha1.ConditionCertificateReady); c == nil || c.Reason != controllers.ReasonIssued {
		t.Errorf("CertificateReady = %+v", c)
	}
	if min := getRegistration(t, ns, name).Spec.Client.MinCertificateNotBefore; min == nil || !min.Equal(held) {
		t.Errorf("min_certificate_not_before %v, want %v", min, held)
	}
}

func TestRenewedSelfSignedCertificateKeepsBothRegistered(t *testing.T) {
	ctx := context.Background()
	const ns, name = "renewal-self", "selfie"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
	}))
	before := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	oldLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	if set := registeredKeys(t, getRegistration(t, ns, name)); len(set.Keys) != 1 {
		t.Fatalf("%d keys registered, want 1", len(set.Keys))
	}
	if err := env.Client.Delete(ctx, mustSecret(t, ns, name+"-mtls")); err != nil {
		t.Fatal(err)
	}
	waitForLeafChange(t, ns, name, before.Status.Certificate.Thumbprint)
	newLeaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data["tls.crt"])
	eventually(t, "both certificates registered", func() error {
		var reg oauthv1alpha1.ClientRegistration
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: authNS, Name: registration.ObjectName(ns, name)}, &reg); err != nil {
			return err
		}
		set := registeredKeys(t, &reg)
		if len(set.Keys) != 2 || len(set.Keys[0].Certificates) != 1 || len(set.Keys[1].Certificates) != 1 ||
			!set.Keys[0].Certificates[0].Equal(newLeaf) || !set.Keys[1].Certificates[0].Equal(oldLeaf) {
			return errorf("jwks %s, want the renewed then the previous certificate", reg.Spec.Client.JWKS.Raw)
		}
		return nil
	})
}
