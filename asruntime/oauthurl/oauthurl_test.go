package oauthurl

import "testing"

func TestMetadataURL(t *testing.T) {
	cases := map[string]struct {
		issuer string
		want   string
	}{
		"no path":                     {"https://as.example.com", "https://as.example.com/.well-known/oauth-authorization-server"},
		"root path":                   {"https://as.example.com/", "https://as.example.com/.well-known/oauth-authorization-server"},
		"one segment":                 {"https://as.example.com/tenant", "https://as.example.com/.well-known/oauth-authorization-server/tenant"},
		"one segment, trailing slash": {"https://as.example.com/tenant/", "https://as.example.com/.well-known/oauth-authorization-server/tenant"},
		"two segments":                {"https://as.example.com/a/b", "https://as.example.com/.well-known/oauth-authorization-server/a/b"},
		"port":                        {"https://as.example.com:8443", "https://as.example.com:8443/.well-known/oauth-authorization-server"},
		"port and path":               {"https://as.example.com:8443/tenant/", "https://as.example.com:8443/.well-known/oauth-authorization-server/tenant"},
		"IPv6 literal with port":      {"https://[::1]:8443/t", "https://[::1]:8443/.well-known/oauth-authorization-server/t"},
		"cluster service name":        {"https://payments.auth.svc", "https://payments.auth.svc/.well-known/oauth-authorization-server"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := MetadataURL(tc.issuer)
			if err != nil || got != tc.want {
				t.Errorf("MetadataURL(%q) = %q, %v; want %q", tc.issuer, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "/tenant", "as.example.com", "https://", "https://as.example.com/%zz"} {
		if got, err := MetadataURL(bad); err == nil {
			t.Errorf("MetadataURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMetadataPath(t *testing.T) {
	for issuerPath, want := range map[string]string{
		"":         "/.well-known/oauth-authorization-server",
		"/":        "/.well-known/oauth-authorization-server",
		"/tenant":  "/.well-known/oauth-authorization-server/tenant",
		"/tenant/": "/.well-known/oauth-authorization-server/tenant",
		"/a/b":     "/.well-known/oauth-authorization-server/a/b",
	} {
		if got := MetadataPath(issuerPath); got != want {
			t.Errorf("MetadataPath(%q) = %q, want %q", issuerPath, got, want)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"https://as.example.com", TokenPath, "https://as.example.com/token"},
		{"https://as.example.com/", TokenPath, "https://as.example.com/token"},
		{"https://as.example.com/tenant", JWKSPath, "https://as.example.com/tenant/jwks"},
		{"https://as.example.com:9443/tenant/", IntrospectionPath, "https://as.example.com:9443/tenant/introspect"},
	} {
		if got := EndpointURL(tc.base, tc.path); got != tc.want {
			t.Errorf("EndpointURL(%q, %q) = %q, want %q", tc.base, tc.path, got, tc.want)
		}
	}
}
