package boundtoken_test

import (
	"context"
	"log"

	"github.com/certbound/certbound/pkg/boundtoken"
)

// A workload with the config Secret mounted at /etc/certbound/client and a
// projected service-account token at boundtoken.DefaultTokenFile calls a
// protected API: no key or secret is stored anywhere.
func Example() {
	// The Source rereads the mounted config before every renewal, so it
	// follows the kubelet's updates of the Secret.
	src, err := boundtoken.New(boundtoken.Options{ConfigDir: "/etc/certbound/client", Scopes: []string{"payments.read"}})
	if err != nil {
		log.Fatal(err)
	}
	// The client presents the in-memory certificate and the token bound to
	// it; nil verifies the API's server certificate with the system roots.
	resp, err := src.Client(nil).Get("https://payments.example/invoices")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()

	// For other protocols: the token and the certificate it is bound to.
	bound, err := src.BoundToken(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	_, _ = bound.AccessToken, bound.Certificate
}
