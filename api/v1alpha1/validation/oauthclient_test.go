package validation

import (
	"strings"
	"testing"
	"time"

	"github.com/cert-manager/cert-manager/pkg/util/pki"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
)

func pkiClient(subject v1alpha1.ClientSubject) *v1alpha1.OAuthClient {
	return &v1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: "billing-worker", Namespace: "auth"},
		Spec: v1alpha1.OAuthClientSpec{
			AuthorizationServerRef: v1alpha1.AuthorizationServerReference{Name: "payments"},
			AuthenticationMethod:   v1alpha1.TLSClientAuth,
			Subject:                &subject,
			GrantTypes:             []v1alpha1.GrantType{v1alpha1.GrantTypeClientCredentials},
		},
	}
}

func dnClient(dn string) *v1alpha1.OAuthClient {
	return pkiClient(v1alpha1.ClientSubject{DN: dn})
}

func selfSignedClient() *v1alpha1.OAuthClient {
	c := pkiClient(v1alpha1.ClientSubject{})
	c.Spec.AuthenticationMethod = v1alpha1.SelfSignedTLSClientAuth
	c.Spec.Subject = nil
	return c
}

func with(c *v1alpha1.OAuthClient, change func(*v1alpha1.OAuthClient)) *v1alpha1.OAuthClient {
	change(c)
	return c
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// refusal is one expected field error: its path and a phrase of its detail
// (the fix a user reads).
type refusal struct{ path, detail string }

func assertRefusals(t *testing.T, errs field.ErrorList, want []refusal) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if got := errs[i].Field; got != w.path {
			t.Errorf("error %d names field %q, want %q (%v)", i, got, w.path, errs[i])
		}
		if !strings.Contains(errs[i].Error(), w.detail) {
			t.Errorf("error %d = %q, want it to say %q", i, errs[i].Error(), w.detail)
		}
	}
}

func assertWarnings(t *testing.T, got []string, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got warnings %q, want %d containing %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("warning %d = %q, want it to say %q", i, got[i], w)
		}
	}
}

func TestValidateOAuthClientOnCreate(t *testing.T) {
	for name, tc := range map[string]struct {
		obj      *v1alpha1.OAuthClient
		errs     []refusal
		warnings []string
	}{
		"a DN with short names is accepted":                    {obj: dnClient("CN=billing-worker,OU=billing,O=Acme")},
		"a DN with a multi-valued RDN and escapes is accepted": {obj: dnClient(`CN=Smith\, J+UID=jsmith,DC=example,DC=com`)},
		"a DN with a dotted OID is accepted":                   {obj: dnClient("2.5.4.4=Smith,CN=worker")},
		"a DN with a #hex value is accepted":                   {obj: dnClient("CN=#0c06776f726b6572,O=Acme")},
		"a DNS name in any case is accepted":                   {obj: pkiClient(v1alpha1.ClientSubject{DNSName: "Worker.Billing.example.com"})},
		"a SPIFFE URI is accepted":                             {obj: pkiClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/auth/sa/worker"})},
		"a URN is accepted":                                    {obj: pkiClient(v1alpha1.ClientSubject{URI: "urn:example:worker"})},
		"an IPv4 address is accepted":                          {obj: pkiClient(v1alpha1.ClientSubject{IP: "192.0.2.10"})},
		"an IPv6 address is accepted":                          {obj: pkiClient(v1alpha1.ClientSubject{IP: "2001:db8::10"})},
		"an email address is accepted":                         {obj: pkiClient(v1alpha1.ClientSubject{Email: "billing-worker@example.com"})},
		"a self-signed client without a subject is accepted":   {obj: selfSignedClient()},
		"an unset method is judged as tls_client_auth":         {obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthenticationMethod = "" })},
		"a valid certificate configuration is accepted": {obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
			c.Spec.Certificate = v1alpha1.ClientCertificate{SecretName: "a-mtls", Duration: duration(24 * time.Hour), RenewBefore: duration(8 * time.Hour), PrivateKey: v1alpha1.PrivateKey{Algorithm: "RSA", Size: 3072}}
		})},
		"an Ed25519 key ignores its size": {obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
			c.Spec.Certificate.PrivateKey = v1alpha1.PrivateKey{Algorithm: "Ed25519", Size: 1}
		})},
		"an AuthorizationServer in another namespace is allowed": {obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Namespace = "platform" })},

		"an unparsable DN is refused": {
			obj:  dnClient("CN=a,,O=b"),
			errs: []refusal{{"spec.subject.dn", "not an RFC 4514 distinguished name"}},
		},
		"a DN with an unknown attribute type is refused": {
			obj:  dnClient("FOO=bar,CN=a"),
			errs: []refusal{{"spec.subject.dn", `unknown attribute type "FOO"`}},
		},
		"a DN with a malformed OID is refused": {
			obj:  dnClient("2.5..4=x"),
			errs: []refusal{{"spec.subject.dn", "dotted OIDs (2.5.4.4=Smith)"}},
		},
		"a DN attribute with an empty value is refused": {
			obj:  dnClient("CN=,O=Acme"),
			errs: []refusal{{"spec.subject.dn", "give every attribute a value"}},
		},
		"a DN type cert-manager cannot encode is refused with the OID form as the fix": {
			obj:  dnClient("SN=Smith,CN=a"),
			errs: []refusal{{"spec.subject.dn", "2.5.4.4=Smith instead of SN=Smith"}},
		},
		"a lower-case short name is refused because cert-manager reads only upper case": {
			obj:  dnClient("cn=worker"),
			errs: []refusal{{"spec.subject.dn", `the attribute with value "worker"`}},
		},
		"a wildcard DNS name is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{DNSName: "*.billing.example.com"}),
			errs: []refusal{{"spec.subject.dnsName", "register the exact DNS name"}},
		},
		"a DNS name with a trailing dot is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{DNSName: "worker.example.com."}),
			errs: []refusal{{"spec.subject.dnsName", `write "worker.example.com"`}},
		},
		"a DNS name with an underscore is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{DNSName: "my_worker.example.com"}),
			errs: []refusal{{"spec.subject.dnsName", "not a DNS name"}},
		},
		"a relative URI is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{URI: "/ns/auth/sa/worker"}),
			errs: []refusal{{"spec.subject.uri", "add a scheme"}},
		},
		"a URI that is only a scheme is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{URI: "spiffe:"}),
			errs: []refusal{{"spec.subject.uri", "nothing after it"}},
		},
		"a URI with an authority but no host is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{URI: "spiffe:///ns/auth"}),
			errs: []refusal{{"spec.subject.uri", "must name a host"}},
		},
		"a URI that does not parse is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/%zz"}),
			errs: []refusal{{"spec.subject.uri", "not a URI"}},
		},
		"a URI not in normalised form is refused with the normalised form": {
			obj:  pkiClient(v1alpha1.ClientSubject{URI: "SPIFFE://cluster.local/worker"}),
			errs: []refusal{{"spec.subject.uri", `write "spiffe://cluster.local/worker"`}},
		},
		"an IP that does not parse is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{IP: "10.0.0.300"}),
			errs: []refusal{{"spec.subject.ip", "not an IP address"}},
		},
		"an IPv6 address with a zone is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{IP: "fe80::1%eth0"}),
			errs: []refusal{{"spec.subject.ip", `write "fe80::1"`}},
		},
		"an email with a display name is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{Email: "Worker <worker@example.com>"}),
			errs: []refusal{{"spec.subject.email", "without a display name"}},
		},
		"an email that is not an addr-spec is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{Email: "worker@exa mple@com"}),
			errs: []refusal{{"spec.subject.email", "not a bare email address"}},
		},
		"a non-ASCII email is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{Email: "wörker@example.com"}),
			errs: []refusal{{"spec.subject.email", "IA5String"}},
		},
		"two subject values are refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{DN: "CN=a", DNSName: "a.example.com"}),
			errs: []refusal{{"spec.subject", "set exactly one of dn, dnsName, uri, ip or email"}},
		},
		"an empty subject is refused": {
			obj:  pkiClient(v1alpha1.ClientSubject{}),
			errs: []refusal{{"spec.subject", "set exactly one"}},
		},
		"a tls_client_auth client without a subject is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Subject = nil }),
			errs: []refusal{{"spec.subject", "registers exactly one subject value"}},
		},
		"a self-signed client with a subject is refused": {
			obj:  with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Subject = &v1alpha1.ClientSubject{DN: "CN=a"} }),
			errs: []refusal{{"spec.subject", "remove spec.subject"}},
		},
		"an unknown method is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthenticationMethod = "client_secret_basic" }),
			errs: []refusal{{"spec.authenticationMethod", "supported values"}},
		},
		"a grant type the method cannot use is refused": {
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
				c.Spec.GrantTypes = []v1alpha1.GrantType{"client_credentials", "password"}
			}),
			errs: []refusal{{"spec.grantTypes[1]", "a tls_client_auth client can use only the grant types client_credentials: remove password"}},
		},
		"an AuthorizationServer name that cannot exist is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Name = "Payments" }),
			errs: []refusal{{"spec.authorizationServerRef.name", "not the name of an AuthorizationServer"}},
		},
		"a missing AuthorizationServer name is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Name = "" }),
			errs: []refusal{{"spec.authorizationServerRef.name", "name the AuthorizationServer"}},
		},
		"an AuthorizationServer namespace that cannot exist is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Namespace = "a.b" }),
			errs: []refusal{{"spec.authorizationServerRef.namespace", "not a namespace name"}},
		},
		"a Secret name that cannot exist is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.SecretName = "A_mtls" }),
			errs: []refusal{{"spec.certificate.secretName", "not a Secret name"}},
		},
		"a certificate shorter than cert-manager issues is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.Duration = duration(30 * time.Minute) }),
			errs: []refusal{{"spec.certificate.duration", "at least 1h0m0s: raise duration"}},
		},
		"renewBefore below cert-manager's minimum is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.RenewBefore = duration(time.Minute) }),
			errs: []refusal{{"spec.certificate.renewBefore", "raise renewBefore"}},
		},
		"renewBefore not shorter than the default duration is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.RenewBefore = duration(2160 * time.Hour) }),
			errs: []refusal{{"spec.certificate.renewBefore", "must be less than the certificate duration 2160h0m0s"}},
		},
		"an ECDSA size that is not a curve is refused": {
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
				c.Spec.Certificate.PrivateKey = v1alpha1.PrivateKey{Algorithm: "ECDSA", Size: 2048}
			}),
			errs: []refusal{{"spec.certificate.privateKey.size", "use 256, 384 or 521"}},
		},
		"an RSA size out of range is refused": {
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
				c.Spec.Certificate.PrivateKey = v1alpha1.PrivateKey{Algorithm: "RSA", Size: 1024}
			}),
			errs: []refusal{{"spec.certificate.privateKey.size", "an RSA key is 2048 to 8192 bits"}},
		},
		"an unknown key algorithm is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.PrivateKey = v1alpha1.PrivateKey{Algorithm: "DSA"} }),
			errs: []refusal{{"spec.certificate.privateKey.algorithm", "supported values"}},
		},
		"a malformed certificate issuer is refused": {
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) {
				c.Spec.Certificate.IssuerRef = &v1alpha1.IssuerReference{Name: "ca", Kind: "Vault"}
			}),
			errs: []refusal{{"spec.certificate.issuerRef.kind", "supported values"}},
		},

		"unbound access tokens are allowed with a warning": {
			obj:      with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { f := false; c.Spec.CertificateBoundAccessTokens = &f }),
			warnings: []string{"bearer tokens"},
		},
		"an issuer on a self-signed client is allowed with a warning": {
			obj:      with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.IssuerRef = &v1alpha1.IssuerReference{Name: "ca"} }),
			warnings: []string{"spec.certificate.issuerRef is ignored"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidateOAuthClient(tc.obj, nil)
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, tc.warnings)
		})
	}
}

func TestValidateOAuthClientOnUpdate(t *testing.T) {
	for name, tc := range map[string]struct {
		old, obj *v1alpha1.OAuthClient
		errs     []refusal
		warnings []string
	}{
		"changing the scopes is allowed": {
			old: dnClient("CN=a"),
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} }),
		},
		"spelling out the client's own namespace is not a change of server": {
			old: dnClient("CN=a"),
			obj: with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Namespace = "auth" }),
		},
		"moving to another AuthorizationServer is refused": {
			old:  dnClient("CN=a"),
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.AuthorizationServerRef.Name = "ledger" }),
			errs: []refusal{{"spec.authorizationServerRef", "cannot change from auth/payments to auth/ledger"}},
		},
		"changing the authentication method is refused": {
			old:  dnClient("CN=a"),
			obj:  selfSignedClient(),
			errs: []refusal{{"spec.authenticationMethod", "cannot change from tls_client_auth to self_signed_tls_client_auth"}},
		},
		"changing the subject is allowed with a warning": {
			old:      dnClient("CN=a"),
			obj:      pkiClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/a"}),
			warnings: []string{"spec.subject changed"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidateOAuthClient(tc.obj, tc.old)
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, tc.warnings)
		})
	}
}

func TestValidateOAuthClientWithoutAnObjectRefusesInsteadOfPanicking(t *testing.T) {
	_, errs := ValidateOAuthClient(nil, nil)
	if len(errs) != 1 {
		t.Fatalf("errs = %v, want one", errs)
	}
	_, errs = ValidateOAuthClient(&v1alpha1.OAuthClient{}, &v1alpha1.OAuthClient{})
	if len(errs) == 0 {
		t.Fatal("an empty OAuthClient was accepted")
	}
}

// TestCertManagerDNTypesAreTheOnesCertManagerKnows keeps the list quoted in
// the refusal true to the cert-manager version in go.mod.
func TestCertManagerDNTypesAreTheOnesCertManagerKnows(t *testing.T) {
	for _, name := range certManagerDNTypes {
		rdns, err := pki.UnmarshalSubjectStringToRDNSequence(name + "=x")
		if err != nil || len(rdns) != 1 || rdns[0][0].Type == nil {
			t.Errorf("cert-manager does not encode %s: %v", name, err)
		}
		if errs := validateSubjectDN(name+"=x", field.NewPath("dn")); len(errs) > 0 {
			t.Errorf("%s=x is refused: %v", name, errs)
		}
	}
}
