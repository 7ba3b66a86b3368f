package asruntime

// Where a jwks_uri fetch may go. Anyone can make the server fetch a
// self-signed client's jwks_uri by presenting an unknown certificate with
// that client's client_id, so the fetch must not become a way into the
// server's own network: the address actually connected to (checked after
// name resolution, so DNS rebinding cannot slip past) must be globally
// reachable unless the operator allowed its range, and redirects stay on
// the registered origin.

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

var (
	// errJWKSDestinationRefused: the fetch would connect to a
	// special-purpose address outside the allowed ranges.
	errJWKSDestinationRefused = errors.New("jwks_uri destination is a special-purpose address")
	// errJWKSRedirectRefused: the jwks_uri redirected off its origin or
	// off https.
	errJWKSRedirectRefused = errors.New("jwks_uri redirect refused")
)

// jwksMaxRedirects is how many same-origin redirects a fetch follows.
const jwksMaxRedirects = 3

// specialPurposeRanges are the ranges of the IANA IPv4 and IPv6
// Special-Purpose Address Registries that are not globally reachable, plus
// multicast and the reserved class E space. IPv4-mapped IPv6 addresses are
// unmapped before the check, and the well-known NAT64 prefix is checked by
// the IPv4 address it embeds (destinationAllowed).
var specialPurposeRanges = mustParsePrefixes(
	"0.0.0.0/8",      // "this network"; 0.0.0.0 reaches the local host
	"10.0.0.0/8",     // private (RFC 1918)
	"100.64.0.0/10",  // shared address space (carrier-grade NAT, some pod networks)
	"127.0.0.0/8",    // loopback
	"169.254.0.0/16", // link-local, cloud metadata at 169.254.169.254
	"172.16.0.0/12",  // private (RFC 1918)
	"192.0.0.0/24",   // IETF protocol assignments
	"192.0.2.0/24",   // documentation
	"192.88.99.0/24", // 6to4 relay anycast
	"192.168.0.0/16", // private (RFC 1918)
	"198.18.0.0/15",  // benchmarking
	"198.51.100.0/24",
	"203.0.113.0/24", // documentation
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, limited broadcast included
	"::/96",          // unspecified, loopback, IPv4-compatible
	"64:ff9b:1::/48", // local-use IPv4/IPv6 translation
	"100::/64",       // discard-only
	"2001::/23",      // IETF protocol assignments, Teredo included
	"2001:db8::/32",  // documentation
	"2002::/16",      // 6to4, which embeds an IPv4 address
	"3fff::/20",      // documentation
	"5f00::/16",      // segment routing (SRv6) SIDs
	"fc00::/7",       // unique local, fd00:ec2::254 (cloud metadata) included
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

// nat64WellKnown (RFC 6052) reaches the IPv4 address in its last 32 bits.
var nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")

func mustParsePrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// destinationAllowed reports whether a jwks_uri fetch may connect to addr:
// a globally reachable address always, a special-purpose one only inside
// an allowed range.
func destinationAllowed(addr netip.Addr, allowed []netip.Prefix) bool {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	for _, p := range allowed {
		if p.Contains(addr) {
			return true
		}
	}
	if nat64WellKnown.Contains(addr) {
		b := addr.As16()
		return destinationAllowed(netip.AddrFrom4([4]byte(b[12:])), allowed)
	}
	for _, p := range specialPurposeRanges {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// dialControl is the net.Dialer Control of jwks_uri fetches: it sees the
// resolved address of every connection attempt.
func dialControl(allowed []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("jwks_uri destination %q: %w", address, err)
		}
		if !destinationAllowed(ap.Addr(), allowed) {
			return fmt.Errorf("%w: %s (outside the allowed CIDRs)", errJWKSDestinationRefused, ap.Addr())
		}
		return nil
	}
}

// checkJWKSRedirect is the CheckRedirect of jwks_uri fetches: https only,
// the registered origin only, a few hops at most.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	switch {
	case len(via) >= jwksMaxRedirects:
		return fmt.Errorf("%w: more than %d redirects", errJWKSRedirectRefused, jwksMaxRedirects)
	case req.URL.Scheme != "https":
		return fmt.Errorf("%w: to a non-https URL", errJWKSRedirectRefused)
	case !sameOrigin(req.URL, via[0].URL):
		return fmt.Errorf("%w: to another host %s", errJWKSRedirectRefused, req.URL.Host)
	}
	return nil
}

// sameOrigin compares the host and port of two https URLs.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Hostname(), b.Hostname()) && httpsPort(a) == httpsPort(b)
}

func httpsPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
}

// parseAllowedCIDRs parses a comma-separated list of CIDRs in which jwks_uri
// fetches may reach special-purpose addresses.
func parseAllowedCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.96.0.0/12 or fd00::/8: %w", f, err)
		}
		if err := checkAllowedCIDR(p); err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func checkAllowedCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("allowed CIDR %s is not valid", p)
	case p.Addr().Is4In6():
		// Connected addresses are unmapped before the check, so this range
		// would never match anything.
		return fmt.Errorf("allowed CIDR %s is IPv4-mapped: give its IPv4 form", p)
	}
	return nil
}
