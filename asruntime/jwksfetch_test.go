package asruntime

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDestinationAllowed(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	podRange := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
	for name, c := range map[string]struct {
		addr    string
		allowed []netip.Prefix
		want    bool
	}{
		"a public IPv4 address is allowed":                          {addr: "93.184.215.14", want: true},
		"a public IPv6 address is allowed":                          {addr: "2606:2800:21f:cb07:6820:80da:af6b:8b2c", want: true},
		"IPv4 loopback is refused":                                  {addr: "127.0.0.1"},
		"IPv4 loopback is allowed inside an allowed range":          {addr: "127.0.0.1", allowed: loopback, want: true},
		"the rest of 127/8 is refused too":                          {addr: "127.45.0.9"},
		"IPv6 loopback is refused":                                  {addr: "::1"},
		"IPv6 loopback is not in an IPv4 allowed range":             {addr: "::1", allowed: loopback},
		"the unspecified IPv4 address is refused":                   {addr: "0.0.0.0"},
		"the unspecified IPv6 address is refused":                   {addr: "::"},
		"this-network 0/8 is refused":                               {addr: "0.1.2.3"},
		"RFC 1918 10/8 is refused":                                  {addr: "10.96.0.1"},
		"RFC 1918 172.16/12 is refused":                             {addr: "172.31.255.1"},
		"RFC 1918 192.168/16 is refused":                            {addr: "192.168.1.1"},
		"an address just outside 172.16/12 is allowed":              {addr: "172.32.0.1", want: true},
		"shared address space 100.64/10 is refused":                 {addr: "100.64.0.1"},
		"the cloud metadata address is refused":                     {addr: "169.254.169.254"},
		"the cloud metadata address IPv4-mapped is refused":         {addr: "::ffff:169.254.169.254"},
		"IPv4-mapped loopback is refused":                           {addr: "::ffff:127.0.0.1"},
		"IPv4-mapped loopback is allowed inside an IPv4 range":      {addr: "::ffff:127.0.0.1", allowed: loopback, want: true},
		"an IPv4-mapped public address is allowed":                  {addr: "::ffff:93.184.215.14", want: true},
		"IPv4-compatible loopback is refused":                       {addr: "::127.0.0.1"},
		"the metadata address through NAT64 is refused":             {addr: "64:ff9b::a9fe:a9fe"},
		"a public address through NAT64 is allowed":                 {addr: "64:ff9b::5db8:d70e", want: true},
		"local-use NAT64 is refused":                                {addr: "64:ff9b:1::a00:1"},
		"6to4 is refused":                                           {addr: "2002:7f00:1::1"},
		"Teredo is refused":                                         {addr: "2001:0:4136:e378::1"},
		"a pod address is refused":                                  {addr: "10.244.1.7"},
		"a pod address is allowed inside the allowed pod range":     {addr: "10.244.1.7", allowed: podRange, want: true},
		"an allowed range allows nothing outside it":                {addr: "10.96.0.1", allowed: podRange},
		"documentation 192.0.2/24 is refused":                       {addr: "192.0.2.1"},
		"benchmarking 198.18/15 is refused":                         {addr: "198.19.0.1"},
		"multicast IPv4 is refused":                                 {addr: "224.0.0.251"},
		"the limited broadcast address is refused":                  {addr: "255.255.255.255"},
		"class E is refused":                                        {addr: "240.0.0.1"},
		"unique local IPv6 is refused":                              {addr: "fd00:ec2::254"},
		"link-local IPv6 is refused":                                {addr: "fe80::1"},
		"link-local IPv6 with a zone is refused":                    {addr: "fe80::1%eth0"},
		"site-local IPv6 is refused":                                {addr: "fec0::1"},
		"multicast IPv6 is refused":                                 {addr: "ff02::1"},
		"IPv6 documentation is refused":                             {addr: "2001:db8::1"},
		"a zoned link-local address is allowed in an allowed range": {addr: "fe80::1%eth0", allowed: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, want: true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := destinationAllowed(netip.MustParseAddr(c.addr), c.allowed); got != c.want {
				t.Fatalf("destinationAllowed(%s, %v) = %v, want %v", c.addr, c.allowed, got, c.want)
			}
		})
	}
	if destinationAllowed(netip.Addr{}, nil) {
		t.Fatal("the zero address is allowed")
	}
}

func TestDialControl(t *testing.T) {
	control := dialControl([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for address, wantErr := range map[string]string{
		"93.184.215.14:443":      "",
		"10.1.2.3:443":           "",
		"127.0.0.1:443":          "special-purpose address: 127.0.0.1",
		"[::ffff:10.1.2.3]:443":  "",
		"[fe80::1%eth0]:443":     "special-purpose address: fe80::1",
		"metadata.internal:80":   "jwks_uri destination",
		"169.254.169.254:80":     "special-purpose address: 169.254.169.254",
		"[fd00:ec2::254]:80":     "special-purpose address",
		"[2606:2800::1]:443":     "",
		"[::ffff:127.0.0.1]:443": "special-purpose address",
	} {
		err := control("tcp", address, nil)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", address, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: error %v, want one containing %q", address, err, wantErr)
		}
	}
}

func TestCheckJWKSRedirect(t *testing.T) {
	request := func(raw string) *http.Request {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	origin := []*http.Request{request("https://keys.example.com/jwks")}
	for name, c := range map[string]struct {
		to      string
		via     []*http.Request
		wantErr string
	}{
		"another path on the same origin is followed":        {to: "https://keys.example.com/v2/jwks", via: origin},
		"the host compares case-insensitively":               {to: "https://KEYS.example.com/jwks", via: origin},
		"an explicit default port is the same origin":        {to: "https://keys.example.com:443/jwks", via: origin},
		"another host is refused":                            {to: "https://metadata.internal/jwks", via: origin, wantErr: "another host"},
		"an address literal is another host":                 {to: "https://169.254.169.254/latest", via: origin, wantErr: "another host"},
		"another port is another origin":                     {to: "https://keys.example.com:8443/jwks", via: origin, wantErr: "another host"},
		"a subdomain is another host":                        {to: "https://a.keys.example.com/jwks", via: origin, wantErr: "another host"},
		"plain http on the same host is refused":             {to: "http://keys.example.com/jwks", via: origin, wantErr: "non-https"},
		"the origin is the first request, not the last hop":  {to: "https://keys.example.com/c", via: []*http.Request{origin[0], request("https://keys.example.com/b")}},
		"a redirect chain longer than the limit is refused":  {to: "https://keys.example.com/d", via: []*http.Request{origin[0], origin[0], origin[0]}, wantErr: "redirects"},
		"a host given with a userinfo part is still checked": {to: "https://keys.example.com@evil.example/jwks", via: origin, wantErr: "another host"},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkJWKSRedirect(request(c.to), c.via)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestJWKSLifetime(t *testing.T) {
	const minAge, maxAge = time.Minute, 5 * time.Minute
	for name, c := range map[string]struct {
		header http.Header
		want   time.Duration
	}{
		"no Cache-Control: the maximum age":             {header: http.Header{}, want: maxAge},
		"a max-age within the bounds is honoured":       {header: http.Header{"Cache-Control": {"public, max-age=120"}}, want: 2 * time.Minute},
		"a max-age below the minimum is raised":         {header: http.Header{"Cache-Control": {"max-age=5"}}, want: minAge},
		"max-age=0 is raised to the minimum":            {header: http.Header{"Cache-Control": {"max-age=0"}}, want: minAge},
		"a max-age above the maximum is capped":         {header: http.Header{"Cache-Control": {"max-age=86400"}}, want: maxAge},
		"an overflowing max-age is capped":              {header: http.Header{"Cache-Control": {"max-age=99999999999999999999999"}}, want: maxAge},
		"a quoted max-age is read":                      {header: http.Header{"Cache-Control": {`max-age="180"`}}, want: 3 * time.Minute},
		"directive names are case-insensitive":          {header: http.Header{"Cache-Control": {"Max-Age=180"}}, want: 3 * time.Minute},
		"the Age already spent is subtracted":           {header: http.Header{"Cache-Control": {"max-age=240"}, "Age": {"60"}}, want: 3 * time.Minute},
		"an Age beyond max-age gives the minimum":       {header: http.Header{"Cache-Control": {"max-age=240"}, "Age": {"600"}}, want: minAge},
		"an Age without max-age changes nothing":        {header: http.Header{"Age": {"60"}}, want: maxAge},
		"no-store gives the minimum":                    {header: http.Header{"Cache-Control": {"no-store"}}, want: minAge},
		"no-cache wins over a max-age":                  {header: http.Header{"Cache-Control": {"max-age=240, no-cache"}}, want: minAge},
		"a negative max-age is stale":                   {header: http.Header{"Cache-Control": {"max-age=-1"}}, want: minAge},
		"a max-age that is not a number is stale":       {header: http.Header{"Cache-Control": {"max-age=soon"}}, want: minAge},
		"a repeated max-age is stale":                   {header: http.Header{"Cache-Control": {"max-age=240", "max-age=200"}}, want: minAge},
		"a max-age in a second header line is honoured": {header: http.Header{"Cache-Control": {"public", "max-age=200"}}, want: 200 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if got := jwksLifetime(c.header, minAge, maxAge); got != c.want {
				t.Fatalf("lifetime = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseAllowedCIDRs(t *testing.T) {
	for list, c := range map[string]struct {
		want    []string
		wantErr string
	}{
		"":                              {},
		"127.0.0.0/8":                   {want: []string{"127.0.0.0/8"}},
		" 10.96.0.0/12 , fd00::/8 ,":    {want: []string{"10.96.0.0/12", "fd00::/8"}},
		"10.1.2.3/8":                    {want: []string{"10.0.0.0/8"}},
		"127.0.0.1":                     {wantErr: "not a CIDR"},
		"10.0.0.0/33":                   {wantErr: "not a CIDR"},
		"::ffff:10.0.0.0/104":           {wantErr: "give its IPv4 form"},
		"127.0.0.0/8,cluster.internal/": {wantErr: `"cluster.internal/" is not a CIDR`},
	} {
		got, err := parseAllowedCIDRs(list)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", list, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", list, err)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if strings.Join(gotS, ",") != strings.Join(c.want, ",") {
			t.Errorf("%q: %v, want %v", list, gotS, c.want)
		}
	}
}

func TestJWKSFetchPolicyDefaults(t *testing.T) {
	p, err := JWKSFetchPolicy{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if p.MinAge != DefaultJWKSMinAge || p.MaxAge != DefaultJWKSMaxAge || p.ClientFetchInterval != DefaultJWKSClientFetchInterval || p.ClientFetchBurst != DefaultJWKSClientFetchBurst || p.AllowedCIDRs != nil {
		t.Fatalf("defaults = %+v", p)
	}
	for name, c := range map[string]struct {
		policy  JWKSFetchPolicy
		wantErr string
	}{
		"a maximum below the minimum":         {policy: JWKSFetchPolicy{MinAge: 2 * time.Minute, MaxAge: time.Minute}, wantErr: "shorter than the minimum age"},
		"a minimum below a second":            {policy: JWKSFetchPolicy{MinAge: time.Millisecond}, wantErr: "shorter than a second"},
		"a maximum below the default minimum": {policy: JWKSFetchPolicy{MaxAge: 30 * time.Second}, wantErr: "shorter than the minimum age"},
		"a negative fetch interval":           {policy: JWKSFetchPolicy{ClientFetchInterval: -time.Second}, wantErr: "negative"},
		"a negative burst":                    {policy: JWKSFetchPolicy{ClientFetchBurst: -1}, wantErr: "negative"},
		"an IPv4-mapped allowed range":        {policy: JWKSFetchPolicy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, wantErr: "IPv4-mapped"},
		"an invalid allowed range":            {policy: JWKSFetchPolicy{AllowedCIDRs: []netip.Prefix{{}}}, wantErr: "not valid"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.policy.withDefaults(); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}
