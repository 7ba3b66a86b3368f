package resourceproxy

import (
	"net/http"
	"strings"
)

// certificateHeaders are the headers that proxies and load balancers
// commonly use to pass a client certificate on. A client can send any of
// them itself, so none reaches upstream: upstream learns who the client is
// only from the headers the proxy asserts (HeaderClientID, HeaderScope).
var certificateHeaders = []string{
	"Client-Cert",       // RFC 9440
	"Client-Cert-Chain", // RFC 9440
	"X-Forwarded-Client-Cert",
	"X-SSL-Client-Cert",
	"X-Client-Cert",
	"Ssl-Client-Cert",
	"X-ARR-ClientCert",
}

// reservedName reports whether a header or trailer named name must not be
// forwarded as the client sent it: a certificate header, a header the proxy
// asserts itself (the identityHeaderPrefix), or one of extra. The comparison
// ignores case and treats '_' as '-', because servers that map headers to
// variables (CGI, WSGI, nginx) read X_SSL_Client_Cert as X-SSL-Client-Cert.
func reservedName(name string, extra []string) bool {
	n := strings.ReplaceAll(name, "_", "-")
	if len(n) >= len(identityHeaderPrefix) && strings.EqualFold(n[:len(identityHeaderPrefix)], identityHeaderPrefix) {
		return true
	}
	for _, list := range [][]string{certificateHeaders, extra} {
		for _, r := range list {
			if strings.EqualFold(n, strings.ReplaceAll(r, "_", "-")) {
				return true
			}
		}
	}
	return false
}

// dropReserved removes every reserved header and trailer from an upstream
// request. (httputil.ReverseProxy already drops the hop-by-hop Trailer
// header, and in Go 1.26 forwards no request trailer values, but the
// trailers are cleared here so that does not have to stay true.)
func dropReserved(out *http.Request, extra []string) {
	for name := range out.Header {
		if reservedName(name, extra) {
			delete(out.Header, name)
		}
	}
	for name := range out.Trailer {
		if reservedName(name, extra) {
			delete(out.Trailer, name)
		}
	}
}
