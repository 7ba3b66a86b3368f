// Package clientcert finds the client certificate of a request: from the TLS
// connection, or — when TLS was terminated by a trusted intermediary (RFC
// 8705 §6.5) — from the header that intermediary forwards it in.
//
// Three header formats are understood:
//
//   - rfc9440: the Client-Cert header (RFC 9440 §2), a structured-field byte
//     sequence (":" base64 DER ":"), with the optional Client-Cert-Chain list
//     of the same;
//   - xfcc: Envoy's x-forwarded-client-cert; the last element (the one the
//     nearest proxy appended) is used, its Cert (URL-encoded PEM leaf) and
//     optional Chain (URL-encoded PEM chain) keys;
//   - pem-urlencoded: a URL-encoded PEM leaf, as nginx's
//     $ssl_client_escaped_cert, in X-SSL-Client-Cert unless named otherwise.
//
// A header is honoured only when the request's TCP peer is inside one of the
// trusted proxy networks and, when a proxy identity is configured, the
// request's own TLS connection presented the proxy's client certificate
// (verified against the identity's roots and carrying its subject); from
// anyone else it is ignored (and reported), and the certificates of the
// request's own TLS connection are used. The address alone is weak where the
// trusted network is a pod network: every pod in it could connect directly
// and claim any client's certificate. From a
// trusted proxy the header is the only source: a request without it has no
// client certificate (the proxy's own TLS client certificate, if any, is
// never taken for the client's), and a header that does not parse is an
// error, never a fallback.
package clientcert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"k8s.io/utils/lru"
)

// Format is a way of forwarding a client certificate in an HTTP header.
type Format string

// The supported formats.
const (
	FormatRFC9440       Format = "rfc9440"
	FormatXFCC          Format = "xfcc"
	FormatPEMURLEncoded Format = "pem-urlencoded"
)

// The default header of each format.
const (
	HeaderClientCert      = "Client-Cert"
	HeaderClientCertChain = "Client-Cert-Chain"
	HeaderXFCC            = "X-Forwarded-Client-Cert"
	HeaderSSLClientCert   = "X-SSL-Client-Cert"
)

const (
	// MaxHeaderBytes bounds the value of one forwarded-certificate header
	// (all its lines together). A leaf is 1–2 KiB of base64; a chain of a
	// leaf and two intermediates fits in 8 KiB even URL-encoded.
	MaxHeaderBytes = 12 << 10
	// MaxChainCertificates bounds the certificates taken from a header.
	MaxChainCertificates = 5
)

// ErrMalformed is wrapped by every error about a header's content.
var ErrMalformed = errors.New("malformed forwarded client certificate")

// Config configures a Source.
type Config struct {
	// Format of the header. Required.
	Format Format
	// Header overrides the format's default header name (for rfc9440, the
	// name of the leaf header; the chain stays in Client-Cert-Chain).
	Header string
	// TrustedProxies are the networks whose requests may carry the header.
	// Required: a header honoured from anyone would let any caller claim
	// any certificate.
	TrustedProxies []netip.Prefix
	// ProxyIdentity, when set, must also be proved by the TLS client
	// certificate of the connection that carries the header.
	ProxyIdentity *ProxyIdentity
	// OnIgnored, when set, is called for every request that carried the
	// header but did not come from a trusted proxy.
	OnIgnored func(r *http.Request)
}

// ProxyIdentity is the identity a trusted proxy proves with its own TLS
// client certificate.
type ProxyIdentity struct {
	// Roots are the only trust anchors of the proxy's certificate, which
	// must be valid for client authentication. Required.
	Roots *x509.CertPool
	// Matches reports whether the verified certificate carries the
	// proxy's identity (a subject name). Required: the roots alone would
	// admit every workload the same CA issues certificates to.
	Matches func(*x509.Certificate) bool
}

// maxProvenProxies bounds the proxy certificates whose proof is
// remembered; a deployment has a few proxies, renewed now and then.
const maxProvenProxies = 64

// proves reports whether the peer certificates of a TLS connection (leaf
// first) are a valid client certificate chain to the identity's roots
// whose leaf carries the identity. A leaf that proved it is remembered, by
// its SHA-256, until the first expiry in its chain, so a proxy's requests
// do not each pay for a chain verification.
func (s *Source) proves(peer []*x509.Certificate) bool {
	if len(peer) == 0 {
		return false
	}
	key := sha256.Sum256(peer[0].Raw)
	now := time.Now()
	if until, ok := s.proven.Get(key); ok && now.Before(until.(time.Time)) {
		return true
	}
	intermediates := x509.NewCertPool()
	for _, c := range peer[1:] {
		intermediates.AddCert(c)
	}
	chains, err := peer[0].Verify(x509.VerifyOptions{
		Roots:         s.identity.Roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil || !s.identity.Matches(peer[0]) {
		return false
	}
	until := peer[0].NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	s.proven.Add(key, until)
	return true
}

// Source extracts client certificates. A nil *Source uses the TLS
// connection only.
type Source struct {
	format    Format
	header    string
	chain     string // rfc9440 only
	trusted   []netip.Prefix
	identity  *ProxyIdentity
	proven    *lru.Cache // with identity: leaf SHA-256 → proved until
	onIgnored func(*http.Request)
}

// New checks cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	s := &Source{format: cfg.Format, trusted: cfg.TrustedProxies, identity: cfg.ProxyIdentity, onIgnored: cfg.OnIgnored}
	switch cfg.Format {
	case FormatRFC9440:
		s.header, s.chain = HeaderClientCert, HeaderClientCertChain
	case FormatXFCC:
		s.header = HeaderXFCC
	case FormatPEMURLEncoded:
		s.header = HeaderSSLClientCert
	default:
		return nil, fmt.Errorf("client certificate header format %q: want %s, %s or %s", cfg.Format, FormatRFC9440, FormatXFCC, FormatPEMURLEncoded)
	}
	if cfg.Header != "" {
		s.header = http.CanonicalHeaderKey(cfg.Header)
	}
	if len(cfg.TrustedProxies) == 0 {
		return nil, errors.New("a client certificate header needs at least one trusted proxy network")
	}
	if id := cfg.ProxyIdentity; id != nil {
		if id.Roots == nil || id.Matches == nil {
			return nil, errors.New("a proxy identity needs both roots and a subject to match")
		}
		s.proven = lru.New(maxProvenProxies)
	}
	return s, nil
}

// ParseCIDRs parses a comma-separated list of CIDRs (a bare address is a
// single-host network).
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Headers are the header names the source reads; a proxy in front of
// another service removes them from what it forwards.
func (s *Source) Headers() []string {
	if s == nil {
		return nil
	}
	if s.chain != "" {
		return []string{s.header, s.chain}
	}
	return []string{s.header}
}

// Certificates returns the client's certificates, leaf first. forwarded
// says they came from the header of a trusted proxy: the TLS handshake that
// proved possession of the key was the proxy's, and no per-connection state
// may be attached to them (one proxy connection carries many clients). An
// error wraps ErrMalformed.
func (s *Source) Certificates(r *http.Request) (certs []*x509.Certificate, forwarded bool, err error) {
	if s == nil {
		return tlsCertificates(r), false, nil
	}
	if !s.fromTrustedProxy(r) {
		if s.present(r.Header) && s.onIgnored != nil {
			s.onIgnored(r)
		}
		return tlsCertificates(r), false, nil
	}
	certs, err = s.parse(r.Header)
	return certs, true, err
}

func tlsCertificates(r *http.Request) []*x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

func (s *Source) present(h http.Header) bool {
	for _, name := range s.Headers() {
		if len(h.Values(name)) > 0 {
			return true
		}
	}
	return false
}

// fromTrustedProxy checks the TCP peer address (RemoteAddr as set by
// net/http, never a header) and then, if one is configured, the proxy
// identity proved by the connection's own client certificate.
func (s *Source) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap().WithZone("")
	for _, p := range s.trusted {
		if p.Contains(addr) {
			return s.identity == nil || (r.TLS != nil && s.proves(r.TLS.PeerCertificates))
		}
	}
	return false
}

// parse reads the header of the source's format; no header is no
// certificate.
func (s *Source) parse(h http.Header) ([]*x509.Certificate, error) {
	value, ok, err := joined(h, s.header)
	if err != nil || !ok {
		return nil, err
	}
	switch s.format {
	case FormatRFC9440:
		chain, _, err := joined(h, s.chain)
		if err != nil {
			return nil, err
		}
		return ParseRFC9440(value, chain)
	case FormatXFCC:
		return ParseXFCC(value)
	default:
		return ParsePEMURLEncoded(value)
	}
}

// joined combines the lines of one header as RFC 9110 §5.3 says (a comma
// list), bounded by MaxHeaderBytes.
func joined(h http.Header, name string) (string, bool, error) {
	values := h.Values(name)
	if len(values) == 0 {
		return "", false, nil
	}
	n := 0
	for _, v := range values {
		n += len(v) + 1
	}
	if n > MaxHeaderBytes {
		return "", true, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, name, MaxHeaderBytes)
	}
	return strings.Join(values, ","), true, nil
}

// ParseRFC9440 parses a Client-Cert value (one sf-binary: ":" base64 ":")
// and an optional Client-Cert-Chain value (a list of sf-binary; empty: no
// chain).
func ParseRFC9440(leaf, chain string) ([]*x509.Certificate, error) {
	der, err := sfBinary(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: Client-Cert: %v", ErrMalformed, err)
	}
	certs, err := appendCertificate(nil, der)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(chain) == "" {
		return certs, nil
	}
	for _, member := range strings.Split(chain, ",") {
		der, err := sfBinary(member)
		if err != nil {
			return nil, fmt.Errorf("%w: Client-Cert-Chain: %v", ErrMalformed, err)
		}
		if certs, err = appendCertificate(certs, der); err != nil {
			return nil, err
		}
	}
	return certs, nil
}

// sfBinary decodes an RFC 8941 §3.3.5 byte sequence, allowing surrounding
// optional white space and refusing parameters.
func sfBinary(v string) ([]byte, error) {
	v = strings.Trim(v, " \t")
	if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
		return nil, errors.New("not a byte sequence")
	}
	body := v[1 : len(v)-1]
	if body == "" {
		return nil, errors.New("empty byte sequence")
	}
	der, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		// RFC 8941 §3.3.5 lets parsers accept missing padding.
		if der, err = base64.RawStdEncoding.DecodeString(body); err != nil {
			return nil, errors.New("invalid base64")
		}
	}
	return der, nil
}

// ParseXFCC parses an x-forwarded-client-cert value and returns the
// certificates of its last element: Cert, then the members of Chain other
// than Cert. An element with Chain but no Cert takes the first member of
// Chain as the leaf. An element with neither is no certificate.
func ParseXFCC(value string) ([]*x509.Certificate, error) {
	elements, err := splitXFCC(value)
	if err != nil {
		return nil, err
	}
	if len(elements) == 0 {
		return nil, fmt.Errorf("%w: empty x-forwarded-client-cert", ErrMalformed)
	}
	last := elements[len(elements)-1]
	var leaf []*x509.Certificate
	if v, ok := last["cert"]; ok {
		if leaf, err = pemCertificates(v, 1); err != nil {
			return nil, err
		}
	}
	var chain []*x509.Certificate
	if v, ok := last["chain"]; ok {
		if chain, err = pemCertificates(v, MaxChainCertificates); err != nil {
			return nil, err
		}
	}
	switch {
	case len(leaf) == 0 && len(chain) == 0:
		return nil, nil
	case len(leaf) == 0:
		return chain, nil
	}
	for _, c := range chain {
		if !c.Equal(leaf[0]) {
			leaf = append(leaf, c)
		}
	}
	if len(leaf) > MaxChainCertificates {
		return nil, fmt.Errorf("%w: more than %d certificates", ErrMalformed, MaxChainCertificates)
	}
	return leaf, nil
}

// splitXFCC splits the header into elements (",") of key=value pairs (";"),
// honouring double quotes and backslash escapes inside them. Keys are
// lower-cased. Only Cert and Chain are kept (DNS, for one, may repeat);
// either repeated in one element is an error.
func splitXFCC(v string) ([]map[string]string, error) {
	var (
		elements []map[string]string
		cur      = map[string]string{}
		key, val strings.Builder
		inKey    = true
		quoted   bool
		wasQuote bool
	)
	flushPair := func() error {
		k := strings.ToLower(strings.TrimSpace(key.String()))
		value := val.String()
		if !wasQuote {
			value = strings.TrimSpace(value)
		}
		key.Reset()
		val.Reset()
		inKey, wasQuote = true, false
		if k == "" {
			if value == "" {
				return nil
			}
			return errors.New("a value without a key")
		}
		if k != "cert" && k != "chain" {
			cur[""] = "" // the element is not empty
			return nil
		}
		if _, dup := cur[k]; dup {
			return fmt.Errorf("key %q repeated in one element", k)
		}
		cur[k] = value
		return nil
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '\\':
			if i+1 == len(v) {
				return nil, fmt.Errorf("%w: dangling escape", ErrMalformed)
			}
			i++
			val.WriteByte(v[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			val.WriteByte(c)
		case c == '"' && !inKey && strings.TrimSpace(val.String()) == "" && !wasQuote:
			quoted, wasQuote = true, true
			val.Reset()
		case c == '"':
			return nil, fmt.Errorf("%w: unexpected quote", ErrMalformed)
		case c == '=' && inKey:
			inKey = false
		case c == ';' || c == ',':
			if inKey && strings.TrimSpace(key.String()) != "" {
				return nil, fmt.Errorf("%w: a key without a value", ErrMalformed)
			}
			if err := flushPair(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			if c == ',' {
				if len(cur) > 0 {
					elements = append(elements, cur)
				}
				cur = map[string]string{}
			}
		case inKey:
			key.WriteByte(c)
		case wasQuote:
			if c != ' ' && c != '\t' {
				return nil, fmt.Errorf("%w: text after a closing quote", ErrMalformed)
			}
		default:
			val.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("%w: unterminated quote", ErrMalformed)
	}
	if inKey && strings.TrimSpace(key.String()) != "" {
		return nil, fmt.Errorf("%w: a key without a value", ErrMalformed)
	}
	if err := flushPair(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(cur) > 0 {
		elements = append(elements, cur)
	}
	return elements, nil
}

// ParsePEMURLEncoded parses a URL-encoded PEM leaf certificate (nginx's
// $ssl_client_escaped_cert). Only the first certificate is used; nothing
// else may follow it.
func ParsePEMURLEncoded(value string) ([]*x509.Certificate, error) {
	return pemCertificates(value, 1)
}

// pemCertificates URL-decodes v ("+" stays "+": it is a base64 character,
// not a space) and parses up to max PEM CERTIFICATE blocks; anything else in
// it is an error.
func pemCertificates(v string, max int) ([]*x509.Certificate, error) {
	decoded, err := url.PathUnescape(strings.TrimSpace(v))
	if err != nil {
		return nil, fmt.Errorf("%w: URL encoding: %v", ErrMalformed, err)
	}
	rest := []byte(decoded)
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %q", ErrMalformed, block.Type)
		}
		if len(certs) == max {
			return nil, fmt.Errorf("%w: more than %d certificates", ErrMalformed, max)
		}
		if certs, err = appendCertificate(certs, block.Bytes); err != nil {
			return nil, err
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrMalformed)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%w: trailing data after the PEM certificates", ErrMalformed)
	}
	return certs, nil
}

func appendCertificate(certs []*x509.Certificate, der []byte) ([]*x509.Certificate, error) {
	if len(certs) == MaxChainCertificates {
		return nil, fmt.Errorf("%w: more than %d certificates", ErrMalformed, MaxChainCertificates)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append(certs, c), nil
}
