package asruntime

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// The token rate must not depend on how many clients are registered:
// compare BenchmarkTokenRegistryScale/clients=10 with clients=10000.
func BenchmarkTokenRegistryScale(b *testing.B) {
	for _, registered := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("clients=%d", registered), func(b *testing.B) {
			benchTokenAmong(b, registered)
		})
	}
}

// benchTokenAmong measures tls_client_auth issuance over kept-alive mTLS
// connections for one client of registered, the others registered with
// subject DNs of the same shape.
func benchTokenAmong(b *testing.B, registered int) {
	docs := make(map[string]map[string]any, registered)
	for i := range registered - 1 {
		id := fmt.Sprintf("filler-%05d", i)
		docs[id+".json"] = pkiClient(id, "tls_client_auth_subject_dn", "CN="+id+",O=Acme")
	}
	docs["billing.json"] = pkiClient("billing", "tls_client_auth_subject_dn", "CN=billing,O=Acme")
	as := startAS(b, docs)
	cert := as.clientCA.leaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "billing", Organization: []string{"Acme"}}})
	// One kept-alive connection per benchmark goroutine, so every token
	// rides an established mTLS connection.
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:              as.servingCA.pool(),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		},
		MaxIdleConnsPerHost: 4 * runtime.GOMAXPROCS(0),
	}}
	defer c.CloseIdleConnections()
	body := []byte(ccForm("billing").Encode())
	url := as.mtlsURL + tokenPath
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/x-www-form-urlencoded", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("HTTP %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
