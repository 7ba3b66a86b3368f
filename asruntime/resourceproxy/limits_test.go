package resourceproxy_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

// shortTimeouts gives the proxy timeouts short enough to watch them act.
func shortTimeouts(readHeader, readWrite time.Duration) func(*resourceproxy.Proxy) {
	return func(p *resourceproxy.Proxy) { resourceproxy.SetTimeoutsForTest(p, readHeader, readWrite, readWrite) }
}

func TestAClientThatSendsItsHeadersSlowlyIsCutOff(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	proxyURL, proxyCA := startProxyWith(t, resourceproxy.Config{Upstream: up.url, Verifier: newVerifier(t, as)},
		shortTimeouts(200*time.Millisecond, time.Minute))
	conn, err := tls.Dial("tcp", strings.TrimPrefix(proxyURL, "https://"), &tls.Config{RootCAs: proxyCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /orders HTTP/1.1\r\nHost: orders.example.test\r\n"); err != nil {
		t.Fatal(err)
	}
	// The rest of the header never comes. The test's own deadline only
	// bounds a failure; the proxy should close the connection long before.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn)
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		t.Fatal("the proxy kept waiting for the rest of the request header")
	}
}

func TestAnOversizeHeaderIsRefusedWith431(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	proxyURL, proxyCA := startProxy(t, resourceproxy.Config{Upstream: up.url, Verifier: newVerifier(t, as)})
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	req := authorized(t, proxyURL+"/orders", as.Token(t, "orders", audience, &cert))
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := client(proxyCA, &cert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("got %d, want 431", resp.StatusCode)
	}
	if _, hits := up.seen(); hits != 0 {
		t.Fatalf("upstream saw %d requests, want 0", hits)
	}
}

// The write timeout must not cut off a verified response that keeps
// moving, only one the client stops reading.
func TestAStreamingResponseOutlivesTheWriteTimeout(t *testing.T) {
	const chunks, gap = 8, 100 * time.Millisecond // 800ms in all, 4 write timeouts
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return
			}
			_ = http.NewResponseController(w).Flush()
			if i < chunks-1 {
				time.Sleep(gap) // the upstream's pace, not a wait for the proxy
			}
		}
	}))
	t.Cleanup(srv.Close)
	up, _ := url.Parse(srv.URL)
	as := rstest.NewAuthority(t)
	proxyURL, proxyCA := startProxyWith(t, resourceproxy.Config{Upstream: up, Verifier: newVerifier(t, as)},
		shortTimeouts(time.Minute, 200*time.Millisecond))
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	resp, err := client(proxyCA, &cert).Do(authorized(t, proxyURL+"/events", as.Token(t, "orders", audience, &cert)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || strings.Count(string(body), "data: tick") != chunks {
		t.Fatalf("got %q, %v; want %d events", body, err, chunks)
	}
}

func TestAVerifiedClientThatStopsReadingIsCutOff(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		block := []byte(strings.Repeat("x", 32<<10))
		for range 8 << 10 { // at most 256 MiB, far more than the socket buffers hold
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	up, _ := url.Parse(srv.URL)
	as := rstest.NewAuthority(t)
	proxyURL, proxyCA := startProxyWith(t, resourceproxy.Config{Upstream: up, Verifier: newVerifier(t, as)},
		shortTimeouts(time.Minute, 200*time.Millisecond))
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	c := client(proxyCA, &cert)
	c.Timeout = 0
	resp, err := c.Do(authorized(t, proxyURL+"/export", as.Token(t, "orders", audience, &cert)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(time.Second) // the client stalls for five write timeouts
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the whole response arrived, want the connection cut off")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy kept writing to a client that had stopped reading")
	}
}
