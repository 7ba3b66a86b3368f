package asruntime

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseClient(t *testing.T) {
	_, jwk := selfSigned(t, "a")
	jwks := string(jwksJSON(t, jwk))
	for name, c := range map[string]struct {
		doc     string
		wantErr string
	}{
		"a tls_client_auth client with one subject DN": {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a"}`},
		"a tls_client_auth client with one SAN IP":     {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_ip":"::1"}`},
		"a self-signed client with inline jwks":        {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks":` + jwks + `}`},
		"a self-signed client with jwks_uri":           {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks_uri":"https://x.example/jwks"}`},
		"a secret client, basic by default (RFC 7591)": {doc: `{"client_id":"a","client_secret":"0123456789abcdef0123456789abcdef"}`},
		"unknown metadata members are ignored":         {doc: `{"client_id":"a","client_secret":"0123456789abcdef0123456789abcdef","client_name":"A","x":[1]}`},
		"no subject value for tls_client_auth":         {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth"}`, wantErr: "exactly one"},
		"two subject values for tls_client_auth":       {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a.example"}`, wantErr: "exactly one"},
		"an empty subject value":                       {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":""}`, wantErr: "empty distinguished name"},
		"a malformed DN":                               {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN"}`, wantErr: "tls_client_auth_subject_dn"},
		"a malformed SAN IP":                           {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_ip":"1.2.3"}`, wantErr: "not an IP"},
		"a relative SAN URI":                           {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_uri":"/x"}`, wantErr: "absolute"},
		"a SAN email without a domain":                 {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_email":"a@"}`, wantErr: "email"},
		"a subject value on a secret client":           {doc: `{"client_id":"a","client_secret":"s","tls_client_auth_san_dns":"a.example"}`, wantErr: "subject value"},
		"jwks and jwks_uri together":                   {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks":` + jwks + `,"jwks_uri":"https://x.example/"}`, wantErr: "both"},
		"an http jwks_uri":                             {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks_uri":"http://x.example/"}`, wantErr: "https"},
		"a broken inline jwks":                         {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks":{"keys":[{"kty":"EC","x5c":["!!"]}]}}`, wantErr: "jwks"},
		"an inline jwks without certificates":          {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks":{"keys":[]}}`, wantErr: "x5c"},
		"a self-signed client without keys":            {doc: `{"client_id":"a","token_endpoint_auth_method":"self_signed_tls_client_auth"}`, wantErr: "jwks or jwks_uri"},
		"a secret client without a secret":             {doc: `{"client_id":"a","token_endpoint_auth_method":"client_secret_post"}`, wantErr: "client_secret"},
		"a secret on an mTLS client":                   {doc: `{"client_id":"a","client_secret":"s","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a"}`, wantErr: "client_secret"},
		"an unsupported method":                        {doc: `{"client_id":"a","token_endpoint_auth_method":"private_key_jwt"}`, wantErr: "not supported"},
		"no client_id":                                 {doc: `{"client_secret":"s"}`, wantErr: "client_id"},
		"a scope token with a quote":                   {doc: `{"client_id":"a","client_secret":"s","scope":"a \"b\""}`, wantErr: "scope"},
		"a resource with a fragment":                   {doc: `{"client_id":"a","client_secret":"s","resources":["https://a/#x"]}`, wantErr: "fragment"},
		"not JSON":                                     {doc: `client_id: a`, wantErr: "decode"},
		"two JSON documents":                           {doc: `{"client_id":"a","client_secret":"s"} {}`, wantErr: "trailing"},
		"a wrong JSON type":                            {doc: `{"client_id":1}`, wantErr: "decode"},
		"min_certificate_not_before, mTLS client":      {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a","min_certificate_not_before":"2026-01-02T03:04:05Z"}`},
		"min_certificate_not_before, secret client":    {doc: `{"client_id":"a","client_secret":"s","min_certificate_not_before":"2026-01-02T03:04:05Z"}`, wantErr: "uses no certificate"},
		"min_certificate_not_before, not RFC 3339":     {doc: `{"client_id":"a","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a","min_certificate_not_before":"yesterday"}`, wantErr: "decode"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseClient([]byte(c.doc))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.wantErr)
			}
		})
	}
}

func TestBuildClientSetRefusesDuplicates(t *testing.T) {
	doc := func(id, dn string) ClientDocument {
		return ClientDocument{Source: id + ".json", Data: mustJSON(t, pkiClient(id, "tls_client_auth_subject_dn", dn))}
	}
	var rejected []string
	set := BuildClientSet([]ClientDocument{
		doc("a", "CN=a,O=Acme"),
		doc("a", "CN=other"),
		doc("b", "cn=A,  o=ACME"), // the same DN as a's, written differently
		doc("c", "CN=c"),
		{Source: "bad.json", Data: []byte("{")},
	}, func(source string, err error) { rejected = append(rejected, source) })
	if set.Len() != 2 {
		t.Fatalf("%d clients, want a and c", set.Len())
	}
	if _, ok := set.Lookup("c"); !ok {
		t.Fatal("c is missing")
	}
	if strings.Join(rejected, " ") != "a.json b.json bad.json" {
		t.Fatalf("rejected %v", rejected)
	}
}

func TestDirectoryRegistryReloadsAndSkipsBadFiles(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"post.json": secretClient("post", AuthMethodClientSecretPost, nil),
		"bad.json":  {"client_id": "bad", "token_endpoint_auth_method": "tls_client_auth"},
	})
	// An unreadable document: a directory where a file should be.
	if err := os.Mkdir(filepath.Join(as.dir, "unreadable.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(as.dir, "broken.json"), []byte(`{"client_id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(as.dir, "notes.txt"), []byte(`ignored`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(as.dir, "missing"), filepath.Join(as.dir, "dangling.json")); err != nil {
		t.Fatal(err)
	}
	c := as.client(nil)
	if resp := as.post(t, c, as.publicURL, ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple")); resp.status != http.StatusOK {
		t.Fatalf("the good client must keep working: %d %s", resp.status, resp.raw)
	}

	// A new client appears without a restart.
	writeClient(t, as.dir, "new.json", secretClient("new", AuthMethodClientSecretPost, nil))
	waitFor(t, "the new client", func() bool {
		_, ok := as.registry.Clients().Lookup("new")
		return ok
	})
	if resp := as.post(t, c, as.publicURL, ccForm("new", "client_secret", "s3cret+/=-correct-horse-battery-staple")); resp.status != http.StatusOK {
		t.Fatalf("new client: %d %s", resp.status, resp.raw)
	}
	errs := counterValue(t, as.srv.Metrics(), "certbound_as_registry_load_errors_total", "", "")
	if errs < 5 {
		// bad.json at the initial load, then bad, unreadable, broken and
		// dangling at every reload.
		t.Fatalf("registry_load_errors_total = %v", errs)
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_clients_loaded", "", ""); n != 2 {
		t.Fatalf("clients_loaded = %v, want 2", n)
	}

	// Its secret changes, then it is removed.
	doc := secretClient("new", AuthMethodClientSecretPost, nil)
	doc["client_secret"] = "rotated-0123456789abcdef0123456789"
	writeClient(t, as.dir, "new.json", doc)
	waitFor(t, "the rotated secret", func() bool {
		return as.post(t, c, as.publicURL, ccForm("new", "client_secret", "rotated-0123456789abcdef0123456789")).status == http.StatusOK
	})
	if err := os.Remove(filepath.Join(as.dir, "new.json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal", func() bool {
		_, ok := as.registry.Clients().Lookup("new")
		return !ok
	})
}

func TestDirectoryRegistryNeedsItsDirectory(t *testing.T) {
	if _, err := NewDirectoryRegistry(filepath.Join(t.TempDir(), "missing"), nil, nil); err == nil {
		t.Fatal("a missing directory was accepted")
	}
	dir := t.TempDir()
	r, err := NewDirectoryRegistry(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeClient(t, dir, "a.json", secretClient("a", AuthMethodClientSecretPost, nil))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("listing a removed directory succeeded")
	}
	if _, ok := r.Clients().Lookup("a"); !ok {
		t.Fatal("a failed reload dropped the previous clients")
	}
}

func TestOversizeClientDocumentIsSkipped(t *testing.T) {
	dir := t.TempDir()
	big := secretClient("big", AuthMethodClientSecretPost, map[string]any{"client_name": strings.Repeat("x", maxClientDocument)})
	b, _ := json.Marshal(big)
	if err := os.WriteFile(filepath.Join(dir, "big.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewDirectoryRegistry(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Clients().Len() != 0 {
		t.Fatal("an oversize document was loaded")
	}
}
