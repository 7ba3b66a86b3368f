package registration

import (
	"strings"
	"testing"

	"github.com/certbound/certbound/api/v1alpha1"
)

func TestPatternFromAPIRejects(t *testing.T) {
	for name, c := range map[string]struct {
		pattern v1alpha1.SubjectPattern
		want    string
	}{
		"no member":                        {v1alpha1.SubjectPattern{}, "set exactly one"},
		"two members":                      {v1alpha1.SubjectPattern{URI: "spiffe://*/ns/{namespace}/sa/*", DNSName: "*.{namespace}.svc"}, "set exactly one"},
		"an unknown placeholder":           {v1alpha1.SubjectPattern{URI: "spiffe://*/ns/{namespace}/sa/{serviceAccount}"}, "unknown placeholder {serviceAccount}"},
		"an empty placeholder":             {v1alpha1.SubjectPattern{DNSName: "{}.{namespace}.svc"}, "unknown placeholder {}"},
		"a wildcard inside a DNS label":    {v1alpha1.SubjectPattern{DNSName: "w*.{namespace}.svc"}, "* must stand alone"},
		"a wildcard inside a URI segment":  {v1alpha1.SubjectPattern{URI: "spiffe://*/ns/{namespace}/sa/worker-*"}, "* must stand alone"},
		"a wildcard inside an authority":   {v1alpha1.SubjectPattern{URI: "spiffe://*.local/ns/{namespace}/sa/*"}, "* must stand alone"},
		"a wildcard inside a DN value":     {v1alpha1.SubjectPattern{DN: "CN=worker*,OU={namespace}"}, "* must stand alone"},
		"a wildcard inside an email local": {v1alpha1.SubjectPattern{Email: "team-*@{namespace}.example.com"}, "* must stand alone"},
		"a double wildcard":                {v1alpha1.SubjectPattern{DNSName: "**.{namespace}.svc"}, "* must stand alone"},
		"a URI without an authority":       {v1alpha1.SubjectPattern{URI: "urn:{namespace}:*"}, "scheme://authority/path"},
		"a URI with a query":               {v1alpha1.SubjectPattern{URI: "spiffe://*/ns/{namespace}/sa/*?x=1"}, "no query or fragment"},
		"an email without a domain":        {v1alpha1.SubjectPattern{Email: "{namespace}"}, "local@domain"},
		"a DN that does not parse":         {v1alpha1.SubjectPattern{DN: "CN=*,{namespace}"}, "not an RFC 4514"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := PatternFromAPI(c.pattern)
			if err == nil {
				t.Fatalf("accepted as %v", p)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestBindsNamespace(t *testing.T) {
	for _, c := range []struct {
		pattern v1alpha1.SubjectPattern
		binds   bool
	}{
		{v1alpha1.SubjectPattern{URI: v1alpha1.DefaultSubjectPattern}, true},
		{v1alpha1.SubjectPattern{URI: "spiffe://cluster.local/ns/{namespace}/sa/{name}"}, true},
		{v1alpha1.SubjectPattern{URI: "spiffe://{namespace}/workload/*"}, true},
		{v1alpha1.SubjectPattern{URI: "spiffe://cluster.local/sa/{name}"}, false},
		{v1alpha1.SubjectPattern{URI: "spiffe://cluster.local/ns/team-{namespace}/sa/*"}, false},
		{v1alpha1.SubjectPattern{DNSName: "*.{namespace}.svc"}, true},
		{v1alpha1.SubjectPattern{DNSName: "{name}.{namespace}.svc.cluster.local"}, true},
		{v1alpha1.SubjectPattern{DNSName: "{namespace}-x.example.com"}, false},
		{v1alpha1.SubjectPattern{DNSName: "*.example.com"}, false},
		{v1alpha1.SubjectPattern{DN: "OU={namespace}, CN=*"}, true},
		{v1alpha1.SubjectPattern{DN: "CN=*+OU={namespace},O=Acme"}, true},
		{v1alpha1.SubjectPattern{DN: "CN={name},O=Acme"}, false},
		{v1alpha1.SubjectPattern{Email: "*@{namespace}.example.com"}, true},
		{v1alpha1.SubjectPattern{Email: "{namespace}@example.com"}, true},
		{v1alpha1.SubjectPattern{Email: "{namespace}.team@example.com"}, false},
	} {
		p, err := PatternFromAPI(c.pattern)
		if err != nil {
			t.Errorf("%+v: %v", c.pattern, err)
			continue
		}
		if got := p.BindsNamespace(); got != c.binds {
			t.Errorf("%v BindsNamespace = %v, want %v", p, got, c.binds)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	type try struct {
		kind      SubjectKind
		value     string
		namespace string
		name      string
		match     bool
	}
	for _, c := range []struct {
		pattern v1alpha1.SubjectPattern
		tries   []try
	}{
		{v1alpha1.SubjectPattern{URI: v1alpha1.DefaultSubjectPattern}, []try{
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x", "a", "client", true},
			{SubjectSANURI, "spiffe://prod.example.com/ns/a/sa/y", "a", "client", true},
			{SubjectSANURI, "SPIFFE://cluster.local/ns/a/sa/x", "a", "client", true},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x", "b", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x/y", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/a-b/sa/x", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/b/sa/x", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/", "a", "client", false},
			{SubjectSANURI, "spiffe:///ns/a/sa/x", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x?q", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/A/sa/x", "a", "client", false},
			{SubjectSANURI, "spiffe://cluster.local/ns/%61/sa/x", "a", "client", false},
			{SubjectSANURI, "https://cluster.local/ns/a/sa/x", "a", "client", false},
			// {namespace} in a subject is literal text, not the client's
			// namespace.
			{SubjectSANURI, "spiffe://cluster.local/ns/{namespace}/sa/x", "a", "client", false},
			{SubjectSANDNS, "x.a.svc", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{DNSName: "*.{namespace}.svc"}, []try{
			{SubjectSANDNS, "worker.a.svc", "a", "client", true},
			{SubjectSANDNS, "Worker.A.SVC.", "a", "client", true},
			{SubjectSANDNS, "worker.a.svc", "b", "client", false},
			{SubjectSANDNS, "x.worker.a.svc", "a", "client", false},
			{SubjectSANDNS, "a.svc", "a", "client", false},
			{SubjectSANDNS, "worker.a.svc.cluster.local", "a", "client", false},
			{SubjectSANDNS, "worker.{namespace}.svc", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{DNSName: "{name}.{namespace}.svc"}, []try{
			{SubjectSANDNS, "client.a.svc", "a", "client", true},
			{SubjectSANDNS, "other.a.svc", "a", "client", false},
			{SubjectSANDNS, "{name}.a.svc", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{DN: "OU={namespace}, CN=*"}, []try{
			{SubjectDN, "OU=a,CN=worker", "a", "client", true},
			{SubjectDN, "ou = A , cn = Worker", "a", "client", true},
			{SubjectDN, "OU=b,CN=worker", "a", "client", false},
			{SubjectDN, "CN=worker,OU=a", "a", "client", false},
			{SubjectDN, "OU=a,CN=worker,O=Acme", "a", "client", false},
			{SubjectDN, "OU=a,CN=worker+UID=1", "a", "client", false},
			{SubjectDN, "OU=a,O=worker", "a", "client", false},
			{SubjectDN, "OU={namespace},CN=worker", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{DN: "CN={name},OU={namespace},O=Acme"}, []try{
			{SubjectDN, "CN=client,OU=a,O=Acme", "a", "client", true},
			{SubjectDN, "CN=other,OU=a,O=Acme", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{Email: "*@{namespace}.example.com"}, []try{
			{SubjectSANEmail, "worker@a.example.com", "a", "client", true},
			{SubjectSANEmail, "worker@A.Example.com", "a", "client", true},
			{SubjectSANEmail, "worker@b.example.com", "a", "client", false},
			{SubjectSANEmail, "worker@x.a.example.com", "a", "client", false},
			{SubjectSANEmail, "worker@{namespace}.example.com", "a", "client", false},
		}},
		{v1alpha1.SubjectPattern{URI: "spiffe://cluster.local/ns/{namespace}/sa/{name}"}, []try{
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/client", "a", "client", true},
			{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/other", "a", "client", false},
			{SubjectSANURI, "spiffe://other.local/ns/a/sa/client", "a", "client", false},
		}},
	} {
		p, err := PatternFromAPI(c.pattern)
		if err != nil {
			t.Fatalf("%+v: %v", c.pattern, err)
		}
		for _, try := range c.tries {
			s, err := ParseSubject(try.kind, try.value)
			if err != nil {
				t.Fatalf("%s %q: %v", try.kind, try.value, err)
			}
			if got := p.Match(s, try.namespace, try.name); got != try.match {
				t.Errorf("%v .Match(%s, namespace %s, name %s) = %v, want %v", p, s, try.namespace, try.name, got, try.match)
			}
		}
	}
}

func TestSubjectAllowed(t *testing.T) {
	s, err := ParseSubject(SubjectSANURI, "spiffe://cluster.local/ns/b/sa/x")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := SubjectAllowed(s, DefaultPatterns(), "b", "client"); !ok {
		t.Error("the default patterns refuse a SPIFFE ID of the client's namespace")
	}
	ok, shown := SubjectAllowed(s, DefaultPatterns(), "a", "client")
	if ok {
		t.Fatal("the default patterns admit a SPIFFE ID of another namespace")
	}
	if want := `uri "spiffe://*/ns/a/sa/*"`; shown != want {
		t.Errorf("shown patterns = %s, want %s", shown, want)
	}
	if ok, _ := SubjectAllowed(s, nil, "b", "client"); ok {
		t.Error("no patterns admit a subject")
	}
}
