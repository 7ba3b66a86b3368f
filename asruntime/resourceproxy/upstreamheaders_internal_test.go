package resourceproxy

import "testing"

func TestReservedName(t *testing.T) {
	extra := []string{"X-Forwarded-Tls-Client-Cert"}
	for name, want := range map[string]bool{
		"Client-Cert":                 true,
		"client-cert-chain":           true,
		"X_SSL_CLIENT_CERT":           true,
		"x-arr-clientcert":            true,
		"Ssl_Client_Cert":             true,
		"X-Certbound-Client-Id":       true,
		"x_certbound_anything":        true,
		"X-Forwarded-Tls-Client-Cert": true,
		"Content-Type":                false,
		"X-Request-Id":                false,
		"Client-Certificate-Hint":     false,
		"X-Certbound":                 false,
	} {
		if got := reservedName(name, extra); got != want {
			t.Errorf("reservedName(%q) = %v, want %v", name, got, want)
		}
	}
}
