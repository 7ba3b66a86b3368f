package asruntime

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"runtime"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/internal/registration"
)

// selfSignedRegistrations are n ClientRegistrations of
// self_signed_tls_client_auth clients, each with its own certificate in an
// inline jwks, and the managedFields a server-side apply by the operator
// leaves on them, as the API server serves them.
func selfSignedRegistrations(tb testing.TB, namespace, asName string, n int) []k8sruntime.Object {
	tb.Helper()
	key := newKey(tb)
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	objs := make([]k8sruntime.Object, n)
	for i := range n {
		name := fmt.Sprintf("client-%05d", i)
		u := clientRegistration(tb, namespace, name, asName, asName, created,
			selfSignedClient(namespace+"."+name, map[string]any{"jwks": ownCertificateJWKS(tb, key, name)}))
		u.SetManagedFields(operatorManagedFields(created))
		objs[i] = u
	}
	return objs
}

// ownCertificateJWKS is the JWK Set of a client's own certificate for key,
// decoded as it sits in an unstructured object.
func ownCertificateJWKS(tb testing.TB, key *ecdsa.PrivateKey, cn string) any {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert := createCert(tb, tmpl, tmpl, &key.PublicKey, key)
	var jwks any
	if err := json.Unmarshal(jwksJSON(tb, jose.JSONWebKey{Key: &key.PublicKey, Certificates: []*x509.Certificate{cert}, Use: "sig"}), &jwks); err != nil {
		tb.Fatal(err)
	}
	return jwks
}

// operatorManagedFields is what the API server records of the operator's
// apply of a ClientRegistration and of a server's status write.
func operatorManagedFields(at time.Time) []metav1.ManagedFieldsEntry {
	applied := `{"f:metadata":{"f:labels":{"f:` + registration.LabelAuthorizationServer + `":{}},"f:ownerReferences":{}},` +
		`"f:spec":{"f:authorizationServerName":{},"f:holder":{"f:name":{},"f:namespace":{},"f:uid":{}},` +
		`"f:client":{"f:client_id":{},"f:grant_types":{},"f:jwks":{},"f:scope":{},"f:tls_client_certificate_bound_access_tokens":{},"f:token_endpoint_auth_method":{}}}}`
	status := `{"f:status":{"f:authenticationFailures":{}}}`
	when := metav1.NewTime(at)
	return []metav1.ManagedFieldsEntry{
		{Manager: "certbound-operator", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "certbound.dev/v1alpha1", Time: &when, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(applied)}},
		{Manager: "certbound-as", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "certbound.dev/v1alpha1", Time: &when, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(status)}, Subresource: "status"},
	}
}

// runSyncedRegistry runs a ClientRegistration registry over the n
// objects of client until the benchmark ends and returns it once its first
// snapshot is loaded.
func runSyncedRegistry(b *testing.B, client dynamic.Interface, n int) *ClientRegistrationRegistry {
	b.Helper()
	reg, err := NewClientRegistrationRegistry(client, "auth", "payments", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	// Listing and parsing 10,000 registrations outlasts waitFor on a busy machine.
	poll.Until(b, 2*time.Minute, "the first load", func() (bool, string) { return reg.Synced(), "" })
	if got := reg.Clients().Len(); got != n {
		b.Fatalf("%d clients loaded, want %d", got, n)
	}
	return reg
}

// BenchmarkRegistrySelfSignedMemory reports the heap a ClientRegistration
// registry keeps per self-signed registration (its informer's copy, the
// client set and what rebuilds keep), after a GC, over the heap of the
// fake API server's objects alone.
func BenchmarkRegistrySelfSignedMemory(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("registrations=%d", n), func(b *testing.B) {
			objs := selfSignedRegistrations(b, "auth", "payments", n)
			var perRegistration float64
			for range b.N {
				client := newFakeDynamic(objs...)
				before := heapInUse()
				reg := runSyncedRegistry(b, client, n)
				perRegistration = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(reg)
			}
			b.ReportMetric(perRegistration, "heapB/registration")
		})
	}
}

// BenchmarkRegistryRebuild is the cost of one snapshot rebuild after one
// registration of n changed: it must not grow with n the way parsing every
// registration again would.
func BenchmarkRegistryRebuild(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("registrations=%d", n), func(b *testing.B) {
			objs := selfSignedRegistrations(b, "auth", "payments", n)
			reg := runSyncedRegistry(b, newFakeDynamic(objs...), n)
			store := reg.informer.GetStore()
			changed := objs[0].(*unstructured.Unstructured)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// A new object in the store, as a watch event leaves it.
				if err := store.Update(changed.DeepCopy()); err != nil {
					b.Fatal(err)
				}
				reg.rebuild()
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
