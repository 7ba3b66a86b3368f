package resourceproxy

import "time"

// SetTimeoutsForTest shortens p's server timeouts so tests can watch them
// act; it must be called before Serve.
func SetTimeoutsForTest(p *Proxy, readHeader, read, write time.Duration) {
	p.limits.readHeaderTimeout, p.limits.readTimeout, p.limits.writeTimeout = readHeader, read, write
}
