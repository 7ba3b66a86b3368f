package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	jose "github.com/go-jose/go-jose/v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/internal/registration"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func server(mutate func(*oauthv1alpha1.AuthorizationServer)) *oauthv1alpha1.AuthorizationServer {
	as := &oauthv1alpha1.AuthorizationServer{ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "auth"}}
	if mutate != nil {
		mutate(as)
	}
	return as
}

func oauthClient(ns string, mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
	c := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns},
		Spec: oauthv1alpha1.OAuthClientSpec{
			AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments", Namespace: "auth"},
			AuthenticationMethod:   oauthv1alpha1.TLSClientAuth,
			Subject:                &oauthv1alpha1.ClientSubject{DN: "CN=worker,O=Acme"},
		},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestClientAccepted(t *testing.T) {
	// The default oauthClient's DN names no namespace: these servers admit
	// it by an OU that binds the namespace (O=Acme stands for any).
	dnPolicy := func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientPolicy.Subjects = []oauthv1alpha1.SubjectPattern{{DN: "CN=*,OU={namespace},O=Acme"}}
		as.Spec.ClientPolicy.Scopes = []oauthv1alpha1.ScopePolicy{
			{Name: "payments.read"},
			{Name: "payments.write", Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}},
		}
		as.Spec.ClientPolicy.Audiences = []oauthv1alpha1.AudiencePolicy{{URI: "https://ledger.example"}}
	}
	withDNPolicy := func(mutate func(*oauthv1alpha1.AuthorizationServer)) *oauthv1alpha1.AuthorizationServer {
		return server(func(as *oauthv1alpha1.AuthorizationServer) {
			dnPolicy(as)
			if mutate != nil {
				mutate(as)
			}
		})
	}
	selector := func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.AllowedClientNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}}
	}
	inOU := func(ns string, mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
		return oauthClient(ns, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: "CN=worker,OU=" + ns + ",O=Acme"}
			if mutate != nil {
				mutate(c)
			}
		})
	}
	cases := map[string]struct {
		client   *oauthv1alpha1.OAuthClient
		server   *oauthv1alpha1.AuthorizationServer
		nsLabels map[string]string
		status   metav1.ConditionStatus
		reason   string
	}{
		"a missing server refuses":                  {inOU("auth", nil), nil, nil, metav1.ConditionFalse, ReasonAuthorizationServerNotFound},
		"Same admits the server's own namespace":    {inOU("auth", nil), withDNPolicy(nil), nil, metav1.ConditionTrue, ReasonAccepted},
		"Same refuses another namespace":            {inOU("billing", nil), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonNamespaceNotAllowed},
		"All admits any namespace":                  {inOU("billing", nil), withDNPolicy(func(as *oauthv1alpha1.AuthorizationServer) { as.Spec.AllowedClientNamespaces.From = "All" }), nil, metav1.ConditionTrue, ReasonAccepted},
		"Selector admits a matching namespace":      {inOU("billing", nil), withDNPolicy(selector), map[string]string{"team": "payments"}, metav1.ConditionTrue, ReasonAccepted},
		"Selector refuses a non-matching namespace": {inOU("billing", nil), withDNPolicy(selector), map[string]string{"team": "other"}, metav1.ConditionFalse, ReasonNamespaceNotAllowed},
		"an unparseable DN is refused":              {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject.DN = "not a dn" }), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonInvalidSubject},
		"a DN with an unknown attribute is refused": {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject.DN = "FOO=bar" }), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonInvalidSubject},
		"two subject values are refused":            {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject.URI = "spiffe://x/y" }), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonInvalidSubject},
		"an IP that is not an IP is refused":        {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject = &oauthv1alpha1.ClientSubject{IP: "999.1.1.1"} }), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonInvalidSubject},
		"a self-signed client needs no subject": {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
			c.Spec.Subject = nil
		}), withDNPolicy(nil), nil, metav1.ConditionTrue, ReasonAccepted},
		"a spec the webhook refuses is not accepted": {inOU("auth", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Certificate.Duration = &metav1.Duration{Duration: 10 * time.Minute}
		}), withDNPolicy(nil), nil, metav1.ConditionFalse, ReasonInvalidSpec},
		"a server namespace defaults to the client's": {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Namespace = "" }), withDNPolicy(nil), nil, metav1.ConditionTrue, ReasonAccepted},
		"the default policy refuses a DN":             {inOU("auth", nil), server(nil), nil, metav1.ConditionFalse, validation.ReasonSubjectNotAllowed},
		"the default policy admits the namespace's SPIFFE IDs": {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/auth/sa/w"}
		}), server(nil), nil, metav1.ConditionTrue, ReasonAccepted},
		"the default policy refuses another namespace's SPIFFE ID": {oauthClient("auth", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/payments/sa/w"}
		}), server(nil), nil, metav1.ConditionFalse, validation.ReasonSubjectNotAllowed},
		"an OU naming another namespace is refused": {oauthClient("billing", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: "CN=worker,OU=auth,O=Acme"}
		}), withDNPolicy(func(as *oauthv1alpha1.AuthorizationServer) { as.Spec.AllowedClientNamespaces.From = "All" }), nil, metav1.ConditionFalse, validation.ReasonSubjectNotAllowed},
		"an unlisted scope is refused":                 {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{"payments.admin"} }), withDNPolicy(nil), nil, metav1.ConditionFalse, validation.ReasonScopeNotAllowed},
		"a scope for other namespaces is refused":      {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{"payments.write"} }), withDNPolicy(nil), map[string]string{"team": "other"}, metav1.ConditionFalse, validation.ReasonScopeNotAllowed},
		"a scope granted to the namespace is accepted": {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{"payments.write"} }), withDNPolicy(nil), map[string]string{"team": "payments"}, metav1.ConditionTrue, ReasonAccepted},
		"an unlisted audience is refused":              {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Audiences = []string{"https://hr.example"} }), withDNPolicy(nil), nil, metav1.ConditionFalse, validation.ReasonAudienceNotAllowed},
		"a listed audience is accepted":                {inOU("auth", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Audiences = []string{"https://ledger.example"} }), withDNPolicy(nil), nil, metav1.ConditionTrue, ReasonAccepted},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ClientAccepted(tc.client, tc.server, tc.nsLabels)
			if got.Status != tc.status || got.Reason != tc.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.status, tc.reason)
			}
		})
	}
}

func TestDesiredCertificateCarriesExactlyTheSubject(t *testing.T) {
	cases := map[string]struct {
		subject *oauthv1alpha1.ClientSubject
		check   func(cmapi.CertificateSpec) bool
	}{
		"a DN becomes literalSubject": {&oauthv1alpha1.ClientSubject{DN: "CN=w,O=A"}, func(s cmapi.CertificateSpec) bool {
			return s.LiteralSubject == "CN=w,O=A" && s.CommonName == "" && len(s.DNSNames)+len(s.URIs)+len(s.IPAddresses)+len(s.EmailAddresses) == 0
		}},
		"a dnsName becomes the one dnsName": {&oauthv1alpha1.ClientSubject{DNSName: "w.example"}, func(s cmapi.CertificateSpec) bool {
			return len(s.DNSNames) == 1 && s.DNSNames[0] == "w.example" && s.LiteralSubject == "" && len(s.URIs) == 0
		}},
		"a uri becomes the one URI SAN": {&oauthv1alpha1.ClientSubject{URI: "spiffe://c/w"}, func(s cmapi.CertificateSpec) bool {
			return len(s.URIs) == 1 && s.URIs[0] == "spiffe://c/w" && len(s.DNSNames) == 0
		}},
		"an ip becomes the one IP SAN": {&oauthv1alpha1.ClientSubject{IP: "10.0.0.1"}, func(s cmapi.CertificateSpec) bool {
			return len(s.IPAddresses) == 1 && s.IPAddresses[0] == "10.0.0.1"
		}},
		"an email becomes the one email SAN": {&oauthv1alpha1.ClientSubject{Email: "w@a.example"}, func(s cmapi.CertificateSpec) bool {
			return len(s.EmailAddresses) == 1 && s.EmailAddresses[0] == "w@a.example"
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := oauthClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject = tc.subject })
			issuer, ok := certificateIssuer(c, server(func(as *oauthv1alpha1.AuthorizationServer) {
				as.Spec.ClientCertificateIssuer = &oauthv1alpha1.IssuerReference{Name: "ca", Kind: "ClusterIssuer"}
			}))
			if !ok || issuer.Name != "ca" || issuer.Kind != "ClusterIssuer" {
				t.Fatalf("issuer %+v", issuer)
			}
			cert := desiredCertificate(c, issuer)
			if !tc.check(cert.Spec) {
				t.Errorf("spec %+v", cert.Spec)
			}
			if len(cert.Spec.Usages) != 2 || cert.Spec.Usages[1] != cmapi.UsageClientAuth || cert.Spec.SecretName != "worker-mtls" {
				t.Errorf("usages %v secret %q", cert.Spec.Usages, cert.Spec.SecretName)
			}
		})
	}
}

func TestCertificateIssuerPrecedence(t *testing.T) {
	withDefault := server(func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientCertificateIssuer = &oauthv1alpha1.IssuerReference{Name: "server-default"}
	})
	cases := map[string]struct {
		client *oauthv1alpha1.OAuthClient
		server *oauthv1alpha1.AuthorizationServer
		want   string
		ok     bool
	}{
		"the client's own issuerRef wins": {oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.Certificate.IssuerRef = &oauthv1alpha1.IssuerReference{Name: "own"}
		}), withDefault, "own", true},
		"else the server's clientCertificateIssuer": {oauthClient("b", nil), withDefault, "server-default", true},
		"neither: no issuer":                        {oauthClient("b", nil), server(nil), "", false},
		"self-signed clients use their own SelfSigned Issuer": {oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
		}), withDefault, "worker-selfsigned", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := certificateIssuer(tc.client, tc.server)
			if ok != tc.ok || got.Name != tc.want {
				t.Errorf("got %+v %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// selfSigned makes a certificate for tests.
func selfSigned(t *testing.T, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestCertificateReady(t *testing.T) {
	dnCert := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "worker", Organization: []string{"Acme"}}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)})
	otherDN := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "other"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)})
	u1, _ := url.Parse("spiffe://c/w")
	u2, _ := url.Parse("spiffe://c/x")
	twoURIs := selfSigned(t, &x509.Certificate{URIs: []*url.URL{u1, u2}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)})
	expired := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "worker", Organization: []string{"Acme"}}, NotBefore: t0.Add(-2 * time.Hour), NotAfter: t0.Add(-time.Hour)})
	renewed := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "worker", Organization: []string{"Acme"}}, NotBefore: t0.Add(-30 * time.Minute), NotAfter: t0.Add(time.Hour)})
	secret := func(c *x509.Certificate) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "worker-mtls"}, Data: map[string][]byte{"tls.crt": pemOf(c)}}
	}
	cert := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "worker"}}
	dnClient := oauthClient("b", nil)
	uriClient := oauthClient("b", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://c/w"} })
	heldSinceLastHalfHour := t0.Add(-45 * time.Minute)
	cases := map[string]struct {
		client    *oauthv1alpha1.OAuthClient
		cert      *cmapi.Certificate
		secret    *corev1.Secret
		heldSince time.Time
		status    metav1.ConditionStatus
		reason    string
	}{
		"no Certificate yet":                                               {dnClient, nil, nil, time.Time{}, metav1.ConditionFalse, ReasonIssuing},
		"cert-manager has not issued":                                      {dnClient, cert, nil, time.Time{}, metav1.ConditionFalse, ReasonIssuing},
		"garbage in tls.crt":                                               {dnClient, cert, &corev1.Secret{Data: map[string][]byte{"tls.crt": []byte("x")}}, time.Time{}, metav1.ConditionFalse, ReasonCertificateInvalid},
		"an expired certificate":                                           {dnClient, cert, secret(expired), time.Time{}, metav1.ConditionFalse, ReasonCertificateExpired},
		"the DN matches (RDN order O then CN)":                             {dnClient, cert, secret(dnCert), time.Time{}, metav1.ConditionTrue, ReasonIssued},
		"another DN is a mismatch":                                         {dnClient, cert, secret(otherDN), time.Time{}, metav1.ConditionFalse, ReasonSubjectMismatch},
		"a second URI SAN is not exactly one":                              {uriClient, cert, secret(twoURIs), time.Time{}, metav1.ConditionFalse, ReasonSubjectMismatch},
		"a certificate issued before the hold began (an earlier holder's)": {dnClient, cert, secret(dnCert), heldSinceLastHalfHour, metav1.ConditionFalse, ReasonCertificatePredatesRegistration},
		"a certificate renewed during the hold is not locked out":          {dnClient, cert, secret(renewed), heldSinceLastHalfHour, metav1.ConditionTrue, ReasonIssued},
		"a self-signed client has no hold to predate": {oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
			c.Spec.Subject = nil
		}), cert, secret(dnCert), time.Time{}, metav1.ConditionTrue, ReasonIssued},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, _ := CertificateReady(tc.client, tc.cert, tc.secret, t0, tc.heldSince)
			if got.Status != tc.status || got.Reason != tc.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.status, tc.reason)
			}
		})
	}
}

func TestSelfSignedKeySetKeepsPreviousCertificatesUntilTheyExpire(t *testing.T) {
	current := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "new"}, NotBefore: t0, NotAfter: t0.Add(48 * time.Hour)})
	previous := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"}, NotBefore: t0.Add(-24 * time.Hour), NotAfter: t0.Add(time.Hour)})
	ancient := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ancient"}, NotBefore: t0.Add(-48 * time.Hour), NotAfter: t0.Add(-time.Hour)})
	cases := map[string]struct {
		previous []*x509.Certificate
		now      time.Time
		want     []string
	}{
		"first issuance":                        {nil, t0, []string{"new"}},
		"a renewal keeps the previous one":      {[]*x509.Certificate{previous}, t0, []string{"new", "old"}},
		"an expired previous one is pruned":     {[]*x509.Certificate{previous, ancient}, t0, []string{"new", "old"}},
		"once the previous one expires it goes": {[]*x509.Certificate{previous}, t0.Add(2 * time.Hour), []string{"new"}},
		"the current one is not listed twice":   {[]*x509.Certificate{current, previous}, t0, []string{"new", "old"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := selfSignedKeySet(current, tc.previous, tc.now)
			var names []string
			for _, c := range got {
				names = append(names, c.Subject.CommonName)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
	// Each key of the registered JWKS matches its x5c certificate.
	selfSignedClient := oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
		c.Spec.Subject = nil
	})
	doc := documentOf(t, selfSignedClient, []*x509.Certificate{current, previous}, time.Time{})
	var reg struct {
		JWKS jose.JSONWebKeySet `json:"jwks"`
	}
	if err := json.Unmarshal(doc, &reg); err != nil { // go-jose checks key == x5c[0] public key
		t.Fatal(err)
	}
	if len(reg.JWKS.Keys) != 2 || !reg.JWKS.Keys[0].Certificates[0].Equal(current) || !reg.JWKS.Keys[1].Certificates[0].Equal(previous) {
		t.Errorf("jwks %s", doc)
	}
	md, _ := desiredClientMetadata(selfSignedClient, []*x509.Certificate{current, previous}, time.Time{})
	back, err := registeredFrom(desiredRegistration(selfSignedClient, server(nil), md))
	if err != nil || len(back.Certificates) != 2 || back.SubjectKey != "" {
		t.Errorf("registeredFrom: %v, %d certificates, subject %q", err, len(back.Certificates), back.SubjectKey)
	}
}

// documentOf renders a client's registration as the server reads it.
func documentOf(t *testing.T, c *oauthv1alpha1.OAuthClient, certs []*x509.Certificate, heldSince time.Time) []byte {
	t.Helper()
	md, err := desiredClientMetadata(c, certs, heldSince)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestRegistrationDocument(t *testing.T) {
	cases := map[string]struct {
		subject *oauthv1alpha1.ClientSubject
		member  registration.SubjectKind
	}{
		"dn":    {&oauthv1alpha1.ClientSubject{DN: "CN=w"}, registration.SubjectDN},
		"dns":   {&oauthv1alpha1.ClientSubject{DNSName: "w.example"}, registration.SubjectSANDNS},
		"uri":   {&oauthv1alpha1.ClientSubject{URI: "spiffe://c/w"}, registration.SubjectSANURI},
		"ip":    {&oauthv1alpha1.ClientSubject{IP: "10.0.0.1"}, registration.SubjectSANIP},
		"email": {&oauthv1alpha1.ClientSubject{Email: "w@a.example"}, registration.SubjectSANEmail},
	}
	for name, tc := range cases {
		t.Run(name+" registers exactly one subject member", func(t *testing.T) {
			bound := false
			c := oauthClient("billing", func(c *oauthv1alpha1.OAuthClient) {
				c.Spec.Subject = tc.subject
				c.Spec.Scopes = []string{"a", "b"}
				c.Spec.Audiences = []string{"https://ledger.example"}
				c.Spec.CertificateBoundAccessTokens = &bound
			})
			doc := documentOf(t, c, nil, t0)
			var m map[string]any
			if err := json.Unmarshal(doc, &m); err != nil {
				t.Fatal(err)
			}
			n := 0
			for k := range m {
				if strings.HasPrefix(k, "tls_client_auth_") {
					n++
				}
			}
			if n != 1 || m[string(tc.member)] == nil || m["client_id"] != "billing.worker" || m["scope"] != "a b" ||
				m["token_endpoint_auth_method"] != "tls_client_auth" || m["tls_client_certificate_bound_access_tokens"] != nil ||
				m["min_certificate_not_before"] != t0.UTC().Format(time.RFC3339) || fmt.Sprint(m["resources"]) != "[https://ledger.example]" {
				t.Errorf("document %s", doc)
			}
			md, _ := desiredClientMetadata(c, nil, t0)
			reg := desiredRegistration(c, server(nil), md)
			got, err := registeredFrom(reg)
			if err != nil || got.SubjectKey == "" || !got.HeldSince.Equal(t0) || got.Holder.String() != "billing/worker" || reg.Name != "billing.worker" {
				t.Errorf("registeredFrom %+v %v (name %s)", got, err, reg.Name)
			}
		})
	}
}

func TestSubjectHeldSince(t *testing.T) {
	const uid, otherUID = types.UID("u1"), types.UID("u2")
	earlier := t0.Add(-24 * time.Hour)
	own := &registeredClient{HolderUID: uid, SubjectKey: "uri:spiffe://c/ns/a/sa/w", HeldSince: earlier}
	now := t0.Add(1500 * time.Millisecond)
	cases := map[string]struct {
		own    *registeredClient
		uid    types.UID
		key    string
		legacy time.Time
		want   time.Time
		known  bool
	}{
		"a new claim holds since now, in whole seconds":         {nil, uid, own.SubjectKey, time.Time{}, t0.Add(time.Second), false},
		"the same client and subject keep their hold":           {own, uid, own.SubjectKey, time.Time{}, earlier, true},
		"a changed subject starts a new hold":                   {own, uid, "uri:spiffe://c/ns/a/sa/other", time.Time{}, t0.Add(time.Second), false},
		"a client recreated under the same name starts anew":    {own, otherUID, own.SubjectKey, time.Time{}, t0.Add(time.Second), false},
		"a migrated registration Secret keeps its creation":     {nil, uid, own.SubjectKey, earlier.Add(300 * time.Millisecond), earlier, true},
		"a registration without a recorded hold is not trusted": {&registeredClient{HolderUID: uid, SubjectKey: own.SubjectKey}, uid, own.SubjectKey, time.Time{}, t0.Add(time.Second), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, known := subjectHeldSince(tc.own, tc.uid, tc.key, tc.legacy, now)
			if !got.Equal(tc.want) || known != tc.known {
				t.Errorf("got %s (established %v), want %s (%v)", got, known, tc.want, tc.known)
			}
		})
	}
}

func TestSubjectUnique(t *testing.T) {
	ours := claim{Holder: types.NamespacedName{Namespace: "b", Name: "new"}, SubjectKey: "dn:x", HeldSince: t0, Name: "auth/b.new", Established: true}
	newClaim := ours
	newClaim.Established = false
	holder := func(ns, name string, heldSince time.Time) registeredClient {
		return registeredClient{Name: "auth/" + ns + "." + name, Holder: types.NamespacedName{Namespace: ns, Name: name}, SubjectKey: "dn:x", HeldSince: heldSince}
	}
	cases := map[string]struct {
		ours    claim
		others  []registeredClient
		reason  string
		message string
	}{
		"no other registration": {ours, nil, ReasonRegistered, ""},
		"another subject": {ours, []registeredClient{func() registeredClient { r := holder("a", "old", t0.Add(-time.Hour)); r.SubjectKey = "dn:y"; return r }()},
			ReasonRegistered, ""},
		"an earlier hold in another namespace wins, unnamed": {ours, []registeredClient{holder("a", "old", t0.Add(-time.Hour))}, ReasonSubjectConflict, "another namespace"},
		"an earlier hold in our namespace is named":          {ours, []registeredClient{holder("b", "old", t0.Add(-time.Hour))}, ReasonSubjectConflict, "OAuthClient old"},
		"our own registration is no rival":                   {ours, []registeredClient{holder("b", "new", t0.Add(-time.Hour))}, ReasonRegistered, ""},
		"a race: our hold is earlier and keeps the subject":  {ours, []registeredClient{holder("a", "late", t0.Add(time.Second))}, ReasonRegistered, ""},
		"a race in the same second: the name decides":        {ours, []registeredClient{holder("a", "x", t0)}, ReasonSubjectConflict, ""},
		"a race in the same second: the lower name keeps it": {ours, []registeredClient{holder("z", "x", t0)}, ReasonRegistered, ""},
		"a new claim loses to a hold of the same second":     {newClaim, []registeredClient{holder("z", "x", t0)}, ReasonSubjectConflict, ""},
		"a new claim loses even to a later-recorded hold":    {newClaim, []registeredClient{holder("z", "x", t0.Add(time.Second))}, ReasonSubjectConflict, ""},
		"a self-signed client has no subject to conflict on": {claim{Holder: ours.Holder}, []registeredClient{{Holder: types.NamespacedName{Namespace: "a", Name: "t"}}}, ReasonRegistered, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := SubjectUnique(tc.ours, tc.others)
			if got.Reason != tc.reason || !strings.Contains(got.Message, tc.message) {
				t.Errorf("got %s (%s), want %s containing %q", got.Reason, got.Message, tc.reason, tc.message)
			}
			if strings.Contains(got.Message, "a/") || strings.Contains(got.Message, " old") && tc.message != "OAuthClient old" {
				t.Errorf("the message discloses another tenant's client: %s", got.Message)
			}
		})
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("a", 250)
	cases := map[string]struct {
		got, want string
	}{
		"legacy registration Secret name":      {legacyRegistrationSecretName("billing", "worker"), "oauthclient-billing-worker"},
		"certificate Secret defaults to -mtls": {CertificateSecretName("worker", ""), "worker-mtls"},
		"certificate Secret follows the spec":  {CertificateSecretName("worker", "custom"), "custom"},
		"config Secret":                        {ConfigSecretName("worker"), "worker-oauth-config"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	a, b := ConfigSecretName(long+"x"), ConfigSecretName(long+"y")
	if len(a) > 253 || len(b) > 253 || a == b {
		t.Errorf("long names: %d %d, distinct=%v", len(a), len(b), a != b)
	}
	if a != ConfigSecretName(long+"x") {
		t.Error("a long name is not deterministic")
	}
}

func TestEndpointsAndArgs(t *testing.T) {
	cases := map[string]struct {
		issuer string
		want   oauthv1alpha1.AuthorizationServerEndpoints
	}{
		"the default issuer": {"https://payments.auth.svc", oauthv1alpha1.AuthorizationServerEndpoints{
			Metadata: "https://payments.auth.svc/.well-known/oauth-authorization-server", Token: "https://payments.auth.svc/token",
			MTLSToken: "https://payments.auth.svc:9443/token", JWKS: "https://payments.auth.svc/jwks"}},
		"an issuer with a path puts well-known before it": {"https://as.example.com/tenant", oauthv1alpha1.AuthorizationServerEndpoints{
			Metadata: "https://as.example.com/.well-known/oauth-authorization-server/tenant", Token: "https://as.example.com/tenant/token",
			MTLSToken: "https://as.example.com:9443/tenant/token", JWKS: "https://as.example.com/tenant/jwks"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := endpoints(tc.issuer)
			if err != nil || got != tc.want {
				t.Errorf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	as := server(nil)
	if got := effectiveIssuer(as); got != "https://payments.auth.svc" {
		t.Errorf("default issuer %q", got)
	}
	dns, ips := servingDNSNames(server(func(as *oauthv1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://10.0.0.9" }), "https://10.0.0.9")
	if len(dns) != 4 || len(ips) != 1 || net.ParseIP(ips[0]) == nil {
		t.Errorf("dns %v ips %v", dns, ips)
	}
	dns, _ = servingDNSNames(as, "https://auth.example.com")
	if dns[len(dns)-1] != "auth.example.com" || dns[3] != "payments.auth.svc.cluster.local" {
		t.Errorf("dns %v", dns)
	}
	args, err := authorizationServerArgs(as, "https://payments.auth.svc", false)
	if err != nil || strings.Contains(strings.Join(args, " "), "--client-ca-file") {
		t.Errorf("args without trust anchors %v %v", args, err)
	}
}

func TestPDBOnlyWithMoreThanOneReplica(t *testing.T) {
	for replicas, want := range map[int32]bool{1: false, 2: true, 5: true} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			r := replicas
			got := desiredPDB(server(func(as *oauthv1alpha1.AuthorizationServer) { as.Spec.Replicas = &r })) != nil
			if got != want {
				t.Errorf("PDB %v, want %v", got, want)
			}
		})
	}
}

func TestDeploymentAvailable(t *testing.T) {
	available := func(gen, observed int64, status corev1.ConditionStatus) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		d.Status.ObservedGeneration = observed
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: status}}
		return d
	}
	cases := map[string]struct {
		d    *appsv1.Deployment
		want metav1.ConditionStatus
	}{
		"not created":                       {nil, metav1.ConditionFalse},
		"no status (no kubelet)":            {&appsv1.Deployment{}, metav1.ConditionFalse},
		"available":                         {available(2, 2, corev1.ConditionTrue), metav1.ConditionTrue},
		"available but an older generation": {available(3, 2, corev1.ConditionTrue), metav1.ConditionFalse},
		"unavailable":                       {available(1, 1, corev1.ConditionFalse), metav1.ConditionFalse},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := DeploymentAvailable(tc.d); got.Status != tc.want {
				t.Errorf("got %s, want %s", got.Status, tc.want)
			}
		})
	}
}

func TestTrustAnchorBundle(t *testing.T) {
	ca := pemOf(selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true, NotBefore: t0, NotAfter: t0.Add(time.Hour)}))
	ref := oauthv1alpha1.SecretKeySelector{Name: "clients-ca", Key: "ca.crt"}
	sec := func(data map[string][]byte) *corev1.Secret { return &corev1.Secret{Data: data} }
	cases := map[string]struct {
		anchors []trustAnchorInput
		status  metav1.ConditionStatus
		reason  string
		certs   int
	}{
		"none configured":         {nil, metav1.ConditionTrue, ReasonNoTrustAnchors, 0},
		"a missing Secret":        {[]trustAnchorInput{{Ref: ref}}, metav1.ConditionFalse, ReasonTrustAnchorSecretNotFound, 0},
		"a missing key":           {[]trustAnchorInput{{Ref: ref, Secret: sec(map[string][]byte{"other": ca})}}, metav1.ConditionFalse, ReasonTrustAnchorKeyNotFound, 0},
		"not PEM":                 {[]trustAnchorInput{{Ref: ref, Secret: sec(map[string][]byte{"ca.crt": []byte("nope")})}}, metav1.ConditionFalse, ReasonTrustAnchorInvalid, 0},
		"two anchors concatenate": {[]trustAnchorInput{{Ref: ref, Secret: sec(map[string][]byte{"ca.crt": ca})}, {Ref: ref, Secret: sec(map[string][]byte{"ca.crt": ca})}}, metav1.ConditionTrue, ReasonTrustAnchorsLoaded, 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bundle, got := TrustAnchorBundle(tc.anchors)
			if got.Status != tc.status || got.Reason != tc.reason {
				t.Fatalf("got %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.status, tc.reason)
			}
			if n, _ := countCertificates(bundle); n != tc.certs {
				t.Errorf("bundle holds %d certificates, want %d", n, tc.certs)
			}
			if got.Status == metav1.ConditionFalse && bundle != nil {
				t.Error("a partial bundle was produced")
			}
		})
	}
}

func TestSubjectIndexes(t *testing.T) {
	dn := "CN=Billing,  O=ACME"
	pki := oauthClient("a", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn} })
	md, err := desiredClientMetadata(pki, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	reg := desiredRegistration(pki, server(nil), md)
	want, err := registration.ParseSubject(registration.SubjectDN, "cn=billing,o=acme")
	if err != nil {
		t.Fatal(err)
	}
	selfSignedClient := oauthClient("a", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
		c.Spec.Subject = nil
	})
	broken := reg.DeepCopy()
	broken.Spec.Client.TLSClientAuthSANURI = ptr.To("spiffe://c/x")
	cases := map[string]struct {
		got, want []string
	}{
		"a registration by its canonical subject":         {registrationSubjectIndex(reg), []string{want.Key()}},
		"the claiming client by the same key":             {clientSubjectIndex(pki), []string{want.Key()}},
		"a self-signed client claims no subject":          {clientSubjectIndex(selfSignedClient), nil},
		"a registration with two subjects is not indexed": {registrationSubjectIndex(broken), nil},
		"an object of another kind is not indexed":        {registrationSubjectIndex(pki), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestServerChangesThatReachClients(t *testing.T) {
	base := server(nil)
	base.Generation = 1
	base.Status.Issuer = "https://payments.auth.svc"
	cases := map[string]struct {
		change func(*oauthv1alpha1.AuthorizationServer)
		want   bool
	}{
		"a spec change":                     {func(as *oauthv1alpha1.AuthorizationServer) { as.Generation = 2 }, true},
		"a new issuer":                      {func(as *oauthv1alpha1.AuthorizationServer) { as.Status.Issuer = "https://other" }, true},
		"new endpoints":                     {func(as *oauthv1alpha1.AuthorizationServer) { as.Status.Endpoints.MTLSToken = "https://x:9443/token" }, true},
		"a new count of registered clients": {func(as *oauthv1alpha1.AuthorizationServer) { as.Status.RegisteredClients = 7 }, false},
		"a condition change": {func(as *oauthv1alpha1.AuthorizationServer) {
			as.Status.Conditions = []metav1.Condition{{Type: "Ready"}}
		}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			after := base.DeepCopy()
			tc.change(after)
			if got := serverChangedForClients.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: after}); got != tc.want {
				t.Errorf("passes = %v, want %v", got, tc.want)
			}
		})
	}
}

// userKeySet is a JWK Set document of one P-256 key with its self-signed
// certificate, as a user gives it in spec.jwks.
func userKeySet(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "own"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "own", Use: "sig", Certificates: []*x509.Certificate{cert}}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(doc), cert
}

func TestClientManagedKeys(t *testing.T) {
	jwks, _ := userKeySet(t)
	selfSignedWith := func(mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
		return oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
			c.Spec.Subject = nil
			mutate(c)
		})
	}
	cases := map[string]struct {
		client  *oauthv1alpha1.OAuthClient
		manages bool
		status  metav1.ConditionStatus
		reason  string
		message string
	}{
		"a self-signed client with jwks brings its own certificate": {
			client: selfSignedWith(func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKS = jwks }), manages: true,
			status: metav1.ConditionTrue, reason: ReasonClientManagedKeys, message: "spec.jwks registers 1 key(s)",
		},
		"a self-signed client with jwksURI brings its own certificate": {
			client: selfSignedWith(func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example/jwks.json" }), manages: true,
			status: metav1.ConditionTrue, reason: ReasonClientManagedKeys, message: "from spec.jwksURI https://keys.example/jwks.json",
		},
		"an invalid jwks is not ready": {
			client: selfSignedWith(func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKS = `{"keys":[]}` }), manages: true,
			status: metav1.ConditionFalse, reason: ReasonInvalidSpec, message: "no keys",
		},
		"a self-signed client without keys gets an issued certificate": {
			client: selfSignedWith(func(*oauthv1alpha1.OAuthClient) {}), manages: false,
		},
		"a tls_client_auth client never manages keys": {
			client: oauthClient("b", func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKS = jwks }), manages: false,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := clientManagesKeys(tc.client); got != tc.manages {
				t.Fatalf("clientManagesKeys = %v, want %v", got, tc.manages)
			}
			if !tc.manages {
				return
			}
			got := ClientKeysReady(tc.client)
			if got.Status != tc.status || got.Reason != tc.reason || !strings.Contains(got.Message, tc.message) {
				t.Errorf("got %s/%s %q, want %s/%s containing %q", got.Status, got.Reason, got.Message, tc.status, tc.reason, tc.message)
			}
			if tc.status == metav1.ConditionTrue && !strings.Contains(got.Message, "supplies its own certificate") {
				t.Errorf("message %q does not say the client supplies its own certificate", got.Message)
			}
		})
	}
}

func TestRegistrationDocumentOfClientManagedKeys(t *testing.T) {
	jwks, cert := userKeySet(t)
	operatorIssued := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "issued"}, NotBefore: t0, NotAfter: t0.Add(time.Hour)})
	cases := map[string]struct {
		mutate   func(*oauthv1alpha1.OAuthClient)
		wantJWKS bool
		wantURI  string
	}{
		"jwks is registered as given":       {mutate: func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKS = jwks }, wantJWKS: true},
		"jwksURI is registered as jwks_uri": {mutate: func(c *oauthv1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example/jwks.json" }, wantURI: "https://keys.example/jwks.json"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := oauthClient("b", func(c *oauthv1alpha1.OAuthClient) {
				c.Spec.AuthenticationMethod = oauthv1alpha1.SelfSignedTLSClientAuth
				c.Spec.Subject = nil
				tc.mutate(c)
			})
			// An operator-issued certificate left from before the switch is
			// not registered.
			doc := documentOf(t, c, []*x509.Certificate{operatorIssued}, time.Time{})
			var reg struct {
				JWKS    *jose.JSONWebKeySet `json:"jwks"`
				JWKSURI string              `json:"jwks_uri"`
			}
			if err := json.Unmarshal(doc, &reg); err != nil {
				t.Fatal(err)
			}
			if reg.JWKSURI != tc.wantURI {
				t.Errorf("jwks_uri = %q, want %q", reg.JWKSURI, tc.wantURI)
			}
			if !tc.wantJWKS {
				if reg.JWKS != nil {
					t.Errorf("a jwks_uri registration also carries jwks: %s", doc)
				}
				return
			}
			if reg.JWKS == nil || len(reg.JWKS.Keys) != 1 || reg.JWKS.Keys[0].KeyID != "own" || !reg.JWKS.Keys[0].Certificates[0].Equal(cert) {
				t.Errorf("jwks of the registration is not the given set: %s", doc)
			}
		})
	}
}
