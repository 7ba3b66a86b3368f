package asruntime

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// bcryptHash hashes secret at cost.
func bcryptHash(t testing.TB, secret string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestClientSecretMembersAreCheckedAtLoad(t *testing.T) {
	long := strings.Repeat("x", MinClientSecretLength)
	lowCost := bcryptHash(t, long, bcrypt.MinCost)
	// bcrypt.Cost reads the cost from the hash; hashing at cost 14 for real
	// would take seconds.
	highCost := strings.Replace(lowCost, "$04$", "$14$", 1)
	good := bcryptHash(t, long, minBcryptCost)
	for name, c := range map[string]struct {
		members string
		wantErr string
	}{
		"a 32-character secret":               {members: `"client_secret":"` + long + `"`},
		"a 31-character secret":               {members: `"client_secret":"` + long[1:] + `"`, wantErr: `client "a": client_secret has 31 characters, at least 32`},
		"32 characters, some of them 2 bytes": {members: `"client_secret":"` + strings.Repeat("é", 32) + `"`},
		"31 characters in 62 bytes":           {members: `"client_secret":"` + strings.Repeat("é", 31) + `"`, wantErr: "31 characters"},
		"a bcrypt hash":                       {members: `"client_secret_hash":"` + good + `"`},
		"both a secret and a hash":            {members: `"client_secret":"` + long + `","client_secret_hash":"` + good + `"`, wantErr: "both registered"},
		"a hash that is not bcrypt":           {members: `"client_secret_hash":"{SHA}` + long + `"`, wantErr: "not a bcrypt hash"},
		"a truncated bcrypt hash":             {members: `"client_secret_hash":"` + good[:40] + `"`, wantErr: "client_secret_hash: crypto/bcrypt"},
		"a bcrypt cost below 10":              {members: `"client_secret_hash":"` + lowCost + `"`, wantErr: "cost 4, want 10 to 13"},
		"a bcrypt cost above 13":              {members: `"client_secret_hash":"` + highCost + `"`, wantErr: "cost 14, want 10 to 13"},
		"a hash on a certificate client":      {members: `"client_secret_hash":"` + good + `","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks_uri":"https://a/jwks"`, wantErr: "client_secret or client_secret_hash is registered"},
		"no secret at all":                    {members: `"token_endpoint_auth_method":"client_secret_post"`, wantErr: "needs a client_secret or client_secret_hash"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseClient([]byte(`{"client_id":"a",` + c.members + `}`))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
			case err != nil && strings.Contains(err.Error(), long[1:]):
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestClientSecretComparison(t *testing.T) {
	registered := strings.Repeat("k", MinClientSecretLength)
	plain, err := parseClientSecret(registered, "")
	if err != nil {
		t.Fatal(err)
	}
	hashed, err := parseClientSecret("", bcryptHash(t, registered, minBcryptCost))
	if err != nil {
		t.Fatal(err)
	}
	for name, presented := range map[string]string{
		"the secret":                  registered,
		"one byte changed":            registered[1:] + "K",
		"a prefix":                    registered[:10],
		"the secret and more":         registered + "k",
		"empty":                       "",
		"72 bytes beyond the secret":  registered + strings.Repeat("k", 72),
		"a different secret, 80 long": strings.Repeat("q", 80),
	} {
		want := presented == registered
		for kind, s := range map[string]*clientSecret{"plain": plain, "bcrypt": hashed} {
			if got := s.matches(context.Background(), presented); got != want {
				t.Errorf("%s secret, %s presented: matches = %v, want %v", kind, name, got, want)
			}
		}
	}
}

func TestAVerifiedBcryptSecretIsRememberedOnlyForItself(t *testing.T) {
	registered := strings.Repeat("v", MinClientSecretLength)
	hash := bcryptHash(t, registered, minBcryptCost)
	s, err := parseClientSecret("", hash)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := verifiedSecrets.Get(hash); ok {
		t.Fatal("a secret is remembered before the first request")
	}
	if !s.matches(context.Background(), registered) {
		t.Fatal("the registered secret does not match")
	}
	if s.matches(context.Background(), registered+"x") {
		t.Fatal("after a verified secret, another one matches")
	}
	// With every bcrypt slot taken and the request over, nothing can run
	// bcrypt: a wrong secret gives up rather than queueing forever, and the
	// verified one matches from memory, also after the registry reloaded
	// the client.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range cap(bcryptSlots) {
		bcryptSlots <- struct{}{}
	}
	defer func() {
		for range cap(bcryptSlots) {
			<-bcryptSlots
		}
	}()
	if s.matches(ctx, "a wrong secret while every slot is taken") {
		t.Fatal("a wrong secret matched")
	}
	reloaded, err := parseClientSecret("", hash)
	if err != nil {
		t.Fatal(err)
	}
	if !reloaded.matches(ctx, registered) {
		t.Fatal("the verified secret needed bcrypt again")
	}
}

func TestHashedClientSecretAuthenticatesAtTheTokenEndpoint(t *testing.T) {
	secret := "hashed-" + strings.Repeat("s", MinClientSecretLength)
	doc := secretClient("hashed", AuthMethodClientSecretBasic, map[string]any{"client_secret_hash": bcryptHash(t, secret, minBcryptCost)})
	delete(doc, "client_secret")
	short := secretClient("short", AuthMethodClientSecretBasic, map[string]any{"client_secret": "only-16-letters!"})
	as := startAS(t, map[string]map[string]any{"hashed.json": doc, "short.json": short})

	if _, ok := as.registry.Clients().Lookup("short"); ok {
		t.Fatal("a client with a 16-character secret was loaded")
	}
	c := as.client(nil)
	for name, tc := range map[string]struct {
		id, secret string
		want       int
	}{
		"the right secret":            {"hashed", secret, http.StatusOK},
		"the right secret again":      {"hashed", secret, http.StatusOK},
		"a wrong secret":              {"hashed", secret[:len(secret)-1] + "S", http.StatusUnauthorized},
		"the bcrypt hash as a secret": {"hashed", doc["client_secret_hash"].(string), http.StatusUnauthorized},
		"the refused short client":    {"short", "only-16-letters!", http.StatusUnauthorized},
	} {
		if got := as.post(t, c, as.publicURL, ccForm("", "scope", "read"), basic(tc.id, tc.secret)); got.status != tc.want {
			t.Errorf("%s: status %d, want %d: %s", name, got.status, tc.want, got.raw)
		}
	}
}
