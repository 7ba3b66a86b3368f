// Package clientcertflag is the command-line configuration of a
// clientcert.Source, shared by every certbound server that may sit behind a
// TLS-terminating proxy. It is apart from clientcert so that the resource
// server library, which uses clientcert, does not depend on the
// registration model (and through it on the Kubernetes API types) that the
// proxy identity is matched with.
package clientcertflag

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/internal/registration"
)

// The widest trusted proxy networks taken without a warning: 256
// addresses, in both families. A node's pod range (an IPv4 /24, an IPv6
// /64) or a whole pod network is wider, and every pod in it can reach the
// server directly.
const (
	WarnWiderThanIPv4 = 24
	WarnWiderThanIPv6 = 120
)

// Flags are the options of the client certificate header.
type Flags struct {
	Header       string
	Proxies      string
	ProxyCAFile  string
	ProxySubject string
}

// Register adds --client-cert-header, --trusted-proxy-cidrs,
// --trusted-proxy-ca-file and --trusted-proxy-subject to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Header, "client-cert-header", "", "take the client certificate from a header set by a TLS-terminating proxy (RFC 8705 §6.5): "+
		"rfc9440 (Client-Cert, Client-Cert-Chain), xfcc (Envoy X-Forwarded-Client-Cert) or pem-urlencoded (nginx $ssl_client_escaped_cert in X-SSL-Client-Cert); "+
		"FORMAT=HEADER-NAME renames the header; honoured only from --trusted-proxy-cidrs (default: TLS only)")
	fs.StringVar(&f.Proxies, "trusted-proxy-cidrs", "", "comma-separated CIDRs of the proxies whose --client-cert-header is honoured (required with --client-cert-header)")
	fs.StringVar(&f.ProxyCAFile, "trusted-proxy-ca-file", "", "PEM roots that must verify the proxy's own TLS client certificate before its --client-cert-header is honoured (with --trusted-proxy-subject; default: the address alone is trusted)")
	fs.StringVar(&f.ProxySubject, "trusted-proxy-subject", "", "identity the proxy's own TLS client certificate must carry: uri:URI-SAN, dns:DNS-SAN or dn:RFC-4514-DN (with --trusted-proxy-ca-file)")
}

// Source builds the Source the flags describe; nil when no header is
// configured. onIgnored may be nil. Trusted networks wider than
// WarnWiderThanIPv4/WarnWiderThanIPv6 are logged as a warning on log.
func (f *Flags) Source(onIgnored func(*http.Request), log *slog.Logger) (*clientcert.Source, error) {
	withIdentity := f.ProxyCAFile != "" || f.ProxySubject != ""
	if f.Header == "" {
		switch {
		case f.Proxies != "":
			return nil, errors.New("--trusted-proxy-cidrs needs --client-cert-header")
		case withIdentity:
			return nil, errors.New("--trusted-proxy-ca-file and --trusted-proxy-subject need --client-cert-header")
		}
		return nil, nil
	}
	proxies, err := clientcert.ParseCIDRs(f.Proxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxy-cidrs: %w", err)
	}
	if len(proxies) == 0 {
		return nil, errors.New("--client-cert-header needs --trusted-proxy-cidrs")
	}
	var identity *clientcert.ProxyIdentity
	if withIdentity {
		if identity, err = f.proxyIdentity(); err != nil {
			return nil, err
		}
	}
	format, name, _ := strings.Cut(f.Header, "=")
	s, err := clientcert.New(clientcert.Config{Format: clientcert.Format(format), Header: name, TrustedProxies: proxies, ProxyIdentity: identity, OnIgnored: onIgnored})
	if err != nil {
		return nil, fmt.Errorf("--client-cert-header: %w", err)
	}
	if wide := WideNetworks(proxies); len(wide) > 0 {
		warnWide(log, wide, identity != nil)
	}
	return s, nil
}

func (f *Flags) proxyIdentity() (*clientcert.ProxyIdentity, error) {
	if f.ProxyCAFile == "" || f.ProxySubject == "" {
		return nil, errors.New("--trusted-proxy-ca-file and --trusted-proxy-subject go together")
	}
	roots, err := loadRoots(f.ProxyCAFile)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxy-ca-file: %w", err)
	}
	subject, err := ParseProxySubject(f.ProxySubject)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxy-subject: %w", err)
	}
	return &clientcert.ProxyIdentity{
		Roots: roots,
		Matches: func(c *x509.Certificate) bool {
			return subject.Matches(c, func() (registration.DistinguishedName, error) {
				return registration.CertificateSubjectDN(c.RawSubject)
			})
		},
	}, nil
}

// proxySubjectKinds are the prefixes of --trusted-proxy-subject.
var proxySubjectKinds = map[string]registration.SubjectKind{
	"uri": registration.SubjectSANURI,
	"dns": registration.SubjectSANDNS,
	"dn":  registration.SubjectDN,
}

// ParseProxySubject parses "uri:VALUE", "dns:VALUE" or "dn:VALUE" into the
// subject model clients are registered with, so that a proxy's identity is
// matched exactly as a tls_client_auth client's (RFC 8705 §2.1.2).
func ParseProxySubject(v string) (registration.Subject, error) {
	prefix, value, ok := strings.Cut(v, ":")
	kind, known := proxySubjectKinds[prefix]
	if !ok || !known {
		return registration.Subject{}, fmt.Errorf("%q: want uri:URI, dns:NAME or dn:DISTINGUISHED-NAME", v)
	}
	s, err := registration.ParseSubject(kind, value)
	if err != nil {
		return registration.Subject{}, fmt.Errorf("%s: %w", prefix, err)
	}
	return s, nil
}

// loadRoots reads every certificate of a PEM file into a pool of its own;
// the system roots are never added.
func loadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

// WideNetworks returns the prefixes wider than WarnWiderThanIPv4 (IPv4) or
// WarnWiderThanIPv6 (IPv6) bits.
func WideNetworks(prefixes []netip.Prefix) []netip.Prefix {
	var wide []netip.Prefix
	for _, p := range prefixes {
		bound := WarnWiderThanIPv6
		if p.Addr().Is4() {
			bound = WarnWiderThanIPv4
		}
		if p.Bits() < bound {
			wide = append(wide, p)
		}
	}
	return wide
}

// warnWide logs, once, the trusted networks WideNetworks found and what
// protects the header from the other hosts in them.
func warnWide(log *slog.Logger, wide []netip.Prefix, withIdentity bool) {
	names := make([]string, len(wide))
	everyAddress := false
	for i, p := range wide {
		names[i] = p.String()
		everyAddress = everyAddress || p.Bits() == 0
	}
	attrs := []any{"networks", strings.Join(names, ","), "every_address", everyAddress, "proxy_identity", withIdentity}
	if withIdentity {
		log.Warn("--trusted-proxy-cidrs has networks wider than /24 (IPv4) or /120 (IPv6); the client certificate header is still honoured only on connections that present the --trusted-proxy-subject certificate", attrs...)
		return
	}
	log.Warn("--trusted-proxy-cidrs has networks wider than /24 (IPv4) or /120 (IPv6): any host in them can connect directly and claim any client's certificate in the header; "+
		"narrow them to the proxies, or require the proxy's own certificate with --trusted-proxy-ca-file and --trusted-proxy-subject", attrs...)
}
