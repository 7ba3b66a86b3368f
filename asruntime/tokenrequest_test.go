package asruntime

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseTokenForm(t *testing.T) {
	for name, c := range map[string]struct {
		body    string
		want    tokenRequest
		errCode string
	}{
		"a client_credentials request": {
			body: "grant_type=client_credentials&client_id=a&scope=read+write",
			want: tokenRequest{grantType: "client_credentials", clientID: "a", scope: "read write"},
		},
		"percent-encoded values": {
			body: "client_id=a%2Bb&client_secret=%3D%26",
			want: tokenRequest{clientID: "a+b", clientSecret: "=&"},
		},
		"repeated resource parameters are a list (RFC 8707)": {
			body: "resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb",
			want: tokenRequest{resources: []string{"https://a", "https://b"}},
		},
		"an empty value counts as omitted": {
			body: "grant_type=client_credentials&scope=",
			want: tokenRequest{grantType: "client_credentials"},
		},
		"empty pairs are skipped":        {body: "&&grant_type=x&", want: tokenRequest{grantType: "x"}},
		"unknown parameters are ignored": {body: "foo=1&foo=2&grant_type=x", want: tokenRequest{grantType: "x"}},
		"an empty body":                  {body: "", want: tokenRequest{}},
		"a repeated grant_type":          {body: "grant_type=a&grant_type=a", errCode: "invalid_request"},
		"a repeated empty scope":         {body: "scope=&scope=", errCode: "invalid_request"},
		"a repeated client_secret":       {body: "client_secret=a&client_secret=b", errCode: "invalid_request"},
		"a bad escape in a value":        {body: "client_id=%g1", errCode: "invalid_request"},
		"a bad escape in a key":          {body: "%=1", errCode: "invalid_request"},
		"invalid UTF-8":                  {body: "client_id=%c3%28", errCode: "invalid_request"},
		"a token exchange (RFC 8693 §2.1)": {
			body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=a&subject_token=eyJ.x.y" +
				"&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
			want: tokenRequest{grantType: GrantTypeTokenExchange, clientID: "a", subjectToken: "eyJ.x.y",
				subjectTokenType: tokenTypeJWT, requestedTokenType: tokenTypeAccessToken},
		},
		"a refresh (RFC 6749 §6)": {
			body: "grant_type=refresh_token&client_id=a&refresh_token=f.s",
			want: tokenRequest{grantType: GrantTypeRefreshToken, clientID: "a", refreshToken: "f.s"},
		},
		"an actor token is read, to be refused": {body: "actor_token=x", want: tokenRequest{actorToken: "x"}},
		"a repeated subject_token":              {body: "subject_token=a&subject_token=b", errCode: "invalid_request"},
		"a repeated subject_token_type":         {body: "subject_token_type=a&subject_token_type=a", errCode: "invalid_request"},
		"a repeated requested_token_type":       {body: "requested_token_type=a&requested_token_type=a", errCode: "invalid_request"},
		"a repeated refresh_token":              {body: "refresh_token=a&refresh_token=b", errCode: "invalid_request"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseTokenForm(c.body)
			if c.errCode != "" {
				if err == nil || err.code != c.errCode {
					t.Fatalf("error %v, want %s", err, c.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.grantType != c.want.grantType || got.clientID != c.want.clientID || got.clientSecret != c.want.clientSecret ||
				got.scope != c.want.scope || !slices.Equal(got.resources, c.want.resources) ||
				got.subjectToken != c.want.subjectToken || got.subjectTokenType != c.want.subjectTokenType ||
				got.actorToken != c.want.actorToken || got.requestedTokenType != c.want.requestedTokenType ||
				got.refreshToken != c.want.refreshToken {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSetBasic(t *testing.T) {
	enc := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for name, c := range map[string]struct {
		header     string
		id, secret string
		ok         bool
	}{
		"form-encoded credentials are decoded (RFC 6749 §2.3.1)": {enc("my%3Aclient:p%40ss+word"), "my:client", "p@ss word", true},
		"the scheme is case-insensitive":                         {"basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "a", "b", true},
		"no colon":                                               {enc("ab"), "", "", false},
		"an empty client id":                                     {enc(":b"), "", "", false},
		"not base64":                                             {"Basic ***", "", "", false},
		"a bad escape":                                           {enc("a%zz:b"), "", "", false},
		"another scheme":                                         {"Digest x", "", "", false},
	} {
		t.Run(name, func(t *testing.T) {
			var req tokenRequest
			err := req.setBasic(c.header)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if c.ok && (req.basicID != c.id || req.basicSecret != c.secret || !req.basicPresent) {
				t.Fatalf("got %q %q", req.basicID, req.basicSecret)
			}
		})
	}
}

func TestAppendJSONStringAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x1f\n\t", "ünïcødé ✓", "\u2028\u2029", "\ufffd", "<&>"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil || back != s {
			t.Fatalf("%q → %s → %q (%v)", s, appendJSONString(nil, s), back, err)
		}
	}
}

// FuzzParseTokenForm checks that no body panics the parser and that every
// accepted body agrees with net/url's reading of the same body.
func FuzzParseTokenForm(f *testing.F) {
	f.Add("grant_type=client_credentials&client_id=billing")
	f.Add("grant_type=client_credentials&client_id=a&client_secret=%3D&scope=read+write&resource=https%3A%2F%2Fapi")
	f.Add("grant_type=a&grant_type=b")
	f.Add("scope=%zz&&=&a")
	f.Add("resource=x&resource=y&resource=")
	f.Fuzz(func(t *testing.T, body string) {
		req, oerr := parseTokenForm(body)
		if oerr != nil {
			if oerr.code != "invalid_request" || oerr.status != 400 {
				t.Fatalf("error %v", oerr)
			}
			return
		}
		values, err := url.ParseQuery(body)
		if err != nil {
			// net/url also rejects ';' separators, which this parser
			// leaves inside values of ignored or checked parameters.
			if !strings.Contains(body, ";") {
				t.Fatalf("accepted a body net/url rejects: %v", err)
			}
			return
		}
		for key, got := range map[string]string{"grant_type": req.grantType, "client_id": req.clientID, "client_secret": req.clientSecret, "scope": req.scope} {
			if len(values[key]) > 1 {
				t.Fatalf("accepted a repeated %s", key)
			}
			if values.Get(key) != got {
				t.Fatalf("%s = %q, net/url says %q", key, got, values.Get(key))
			}
		}
	})
}
