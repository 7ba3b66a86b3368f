package resourceproxy

import (
	"io"
	"net/http"
	"time"

	"github.com/certbound/certbound/internal/httplimits"
)

// serverLimits bound what one connection may cost the proxy: the
// authorization server's limits (internal/httplimits); tests shorten them.
type serverLimits struct {
	readHeaderTimeout time.Duration
	// readTimeout and writeTimeout bound a whole exchange until the token
	// is verified; once it is, they bound each read of the request body and
	// each write of the response instead (see progressDeadlines).
	readTimeout    time.Duration
	writeTimeout   time.Duration
	idleTimeout    time.Duration
	maxHeaderBytes int
}

var defaultLimits = serverLimits{
	readHeaderTimeout: httplimits.ReadHeaderTimeout,
	readTimeout:       httplimits.ReadTimeout,
	writeTimeout:      httplimits.WriteTimeout,
	idleTimeout:       httplimits.IdleTimeout,
	maxHeaderBytes:    httplimits.MaxHeaderBytes,
}

// server returns an http.Server with the limits.
func (l serverLimits) server() *http.Server {
	return &http.Server{
		ReadHeaderTimeout: l.readHeaderTimeout,
		ReadTimeout:       l.readTimeout,
		WriteTimeout:      l.writeTimeout,
		IdleTimeout:       l.idleTimeout,
		MaxHeaderBytes:    l.maxHeaderBytes,
	}
}

// progressDeadlines turns the server's whole-exchange ReadTimeout and
// WriteTimeout into per-operation deadlines for a verified request: every
// read of the request body and every write or flush of the response gets
// the full timeout again. A stalled client is still cut off after one
// timeout, but an upload, a download or a stream (server-sent events,
// long polling) that keeps moving is not cut off at a fixed time, which a
// plain WriteTimeout would do to every upstream response longer than it.
// Refused requests never get here and keep the whole-exchange limits.
// Upgraded connections (101) are hijacked, which clears the deadlines.
//
// Where the connection does not support deadlines, SetReadDeadline and
// SetWriteDeadline fail and the server's whole-exchange limits stay in
// force: the safe side, so those errors are not reported.
func (l serverLimits) progressDeadlines(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	rc := http.NewResponseController(w)
	pw := &progressWriter{ResponseWriter: w, rc: rc, timeout: l.writeTimeout}
	if r.Body != nil && r.Body != http.NoBody {
		r2 := *r
		r2.Body = &progressBody{ReadCloser: r.Body, rc: rc, timeout: l.readTimeout}
		r = &r2
	}
	// The server writes the end of the response after the handler returns.
	return pw, r, pw.extend
}

type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *progressWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *progressWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController.Flush calls.
func (w *progressWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer (Hijack,
// EnableFullDuplex).
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type progressBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}
