// Package agent is `certbound token-agent`: a sidecar that keeps a
// certificate-bound access token for a workload that cannot import
// boundtoken, and hands the token, the certificate it is bound to and that
// certificate's key to the pod's other containers, as files in a shared
// in-memory volume and/or over a local socket.
package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certbound/certbound/pkg/boundtoken"
)

// Names of the files written into --output-dir and of the paths served on
// --socket and --listen-address.
const (
	FileToken = "token"
	FileCert  = "tls.crt"
	FileKey   = "tls.key"
)

// DefaultConfigDir is where the OAuthClient's config Secret is mounted
// unless --config-dir says otherwise.
const DefaultConfigDir = "/etc/certbound/client"

// options are the command-line flags.
type options struct {
	configDir     string
	tokenFile     string
	outputDir     string
	fileMode      os.FileMode
	socket        string
	listenAddress string
	healthAddress string
	scopes        stringList
	resources     stringList
	certLifetime  time.Duration
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string) (*options, error) {
	o := options{fileMode: 0o600}
	fs := flag.NewFlagSet("token-agent", flag.ContinueOnError)
	fs.StringVar(&o.configDir, "config-dir", DefaultConfigDir, "directory where the OAuthClient's config Secret is mounted (client_id, issuer, token_endpoint, ca.crt)")
	fs.StringVar(&o.tokenFile, "token-file", boundtoken.DefaultTokenFile, "projected service-account token whose audience is the authorization server's issuer; re-read at every exchange")
	fs.StringVar(&o.outputDir, "output-dir", "", "directory (an emptyDir with medium: Memory) to write "+FileToken+", "+FileCert+" and "+FileKey+" into, each replaced atomically on renewal (default: no files)")
	fs.Func("file-mode", "octal permissions of the written files and of --socket (default 0600; 0640 with a shared fsGroup when the application runs as another user)", func(v string) error {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m&^0o777 != 0 {
			return fmt.Errorf("%q is not an octal permission like 0600", v)
		}
		if m&0o007 != 0 {
			return fmt.Errorf("%s makes the key readable by any user; grant a group (fsGroup) instead", v)
		}
		o.fileMode = os.FileMode(m)
		return nil
	})
	fs.StringVar(&o.socket, "socket", "", "unix socket to serve GET /token, /tls.crt and /tls.key on (default: none)")
	fs.StringVar(&o.listenAddress, "listen-address", "", "loopback address (127.0.0.1:port or [::1]:port) to serve GET /token, /tls.crt and /tls.key on, over plain HTTP to the pod's own containers (default: none)")
	fs.StringVar(&o.healthAddress, "health-address", "", "address of a plain-HTTP listener for the kubelet's probes: /readyz (200 once a usable token is held) and /healthz (default: none)")
	fs.Var(&o.scopes, "scope", "scope to request (repeatable; default: every scope the client is registered for)")
	fs.Var(&o.resources, "resource", "RFC 8707 resource the token is for (repeatable; default: the client's registered audiences)")
	fs.DurationVar(&o.certLifetime, "certificate-lifetime", boundtoken.DefaultCertificateLifetime, "validity of each generated self-signed certificate; a new key, certificate and token replace it at 80% of it")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.outputDir == "" && o.socket == "" && o.listenAddress == "" {
		return nil, errors.New("nothing to hand the token to: set at least one of --output-dir, --socket and --listen-address")
	}
	if o.listenAddress != "" {
		if err := checkLoopback(o.listenAddress); err != nil {
			return nil, fmt.Errorf("--listen-address: %w", err)
		}
	}
	if o.certLifetime < time.Minute {
		return nil, fmt.Errorf("--certificate-lifetime %s is shorter than a minute", o.certLifetime)
	}
	return &o, nil
}

// checkLoopback refuses addresses reachable from outside the pod: the
// endpoint hands out the token and the key without authentication.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback IP address: the endpoint serves the key and the token without authentication", addr)
	}
	return nil
}

// Run is the token-agent subcommand: it renews the token until ctx ends.
// Configuration errors end it at once with an error.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return run(ctx, o, log)
}

func run(ctx context.Context, o *options, log *slog.Logger) error {
	cfg, err := boundtoken.LoadConfig(o.configDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.tokenFile); err != nil {
		return fmt.Errorf("projected service-account token: %w (project one with audience %s)", err, cfg.Issuer)
	}
	if o.outputDir != "" {
		if fi, err := os.Stat(o.outputDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--output-dir %s is not a directory", o.outputDir)
		}
	}
	src, err := boundtoken.New(boundtoken.Options{
		Config: cfg, ConfigDir: o.configDir, TokenFile: o.tokenFile, Scopes: o.scopes, Resources: o.resources, CertificateLifetime: o.certLifetime,
	})
	if err != nil {
		return err
	}
	a := &agent{opts: o, log: log}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 3)
	serving := 0
	for _, l := range []struct {
		name, network, addr string
		handler             http.Handler
	}{
		{"socket", "unix", o.socket, a.tokenHandler()},
		{"listen-address", "tcp", o.listenAddress, a.tokenHandler()},
		{"health-address", "tcp", o.healthAddress, a.healthHandler()},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := a.listen(l.network, l.addr)
		if err != nil {
			return fmt.Errorf("--%s: %w", l.name, err)
		}
		serving++
		go func() { serveErr <- serve(ctx, ln, l.handler) }()
	}
	renewErr := make(chan error, 1)
	go func() { renewErr <- a.renewLoop(ctx, src) }()
	select {
	case err = <-renewErr:
	case err = <-serveErr:
		serving--
	}
	cancel()
	for ; serving > 0; serving-- {
		<-serveErr
	}
	return err
}

// agent holds the latest token for the endpoints.
type agent struct {
	opts    *options
	log     *slog.Logger
	current atomic.Pointer[published]
}

// published is a token in the forms the agent hands out.
type published struct {
	token   *boundtoken.BoundToken
	certPEM []byte
	keyPEM  []byte
}

// renewLoop keeps a fresh token published until ctx ends.
func (a *agent) renewLoop(ctx context.Context, src *boundtoken.Source) error {
	failures := 0
	for {
		t, err := src.BoundToken(ctx)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			wait = backoff(failures)
			a.log.Error("cannot get a bound token", "error", err.Error(), "retry_in", wait.String())
		default:
			if prev := a.current.Load(); prev == nil || prev.token != t {
				if err := a.publish(t); err != nil {
					return err
				}
				a.log.Info("bound token renewed", "x5t#S256", t.Thumbprint, "expires", t.Expiry.UTC().Format(time.RFC3339))
			}
			wait = time.Until(t.RefreshAt)
			if wait <= 0 {
				// The source kept a still-usable token after a failed
				// renewal; it retries on its own schedule.
				failures++
				wait = backoff(failures)
			} else {
				failures = 0
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// backoff is the wait after the n-th consecutive failure.
func backoff(n int) time.Duration {
	d := time.Second << min(n-1, 6)
	return min(d, time.Minute)
}

// publish encodes t and writes the files: the key and certificate first,
// then the token, so a reader that sees a new token finds its certificate.
func (a *agent) publish(t *boundtoken.BoundToken) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(t.Certificate.PrivateKey)
	if err != nil {
		return fmt.Errorf("encode the key: %w", err)
	}
	p := &published{
		token:   t,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: t.Certificate.Certificate[0]}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	if dir := a.opts.outputDir; dir != "" {
		prev := a.current.Load()
		if prev == nil || prev.token.Thumbprint != t.Thumbprint {
			if err := writeAtomic(dir, FileKey, p.keyPEM, a.opts.fileMode); err != nil {
				return err
			}
			if err := writeAtomic(dir, FileCert, p.certPEM, a.opts.fileMode); err != nil {
				return err
			}
		}
		if err := writeAtomic(dir, FileToken, []byte(t.AccessToken), a.opts.fileMode); err != nil {
			return err
		}
	}
	a.current.Store(p)
	return nil
}

// writeAtomic replaces dir/name with data: a reader sees the old or the
// new content, never a partial file.
func writeAtomic(dir, name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// listen binds an endpoint; a unix socket gets the file mode and replaces
// a stale socket of a previous run.
func (a *agent) listen(network, addr string) (net.Listener, error) {
	if network != "unix" {
		return net.Listen(network, addr)
	}
	if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(addr); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, a.opts.fileMode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// tokenResponse is the body of GET /token.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (a *agent) tokenHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.usable(w)
		if !ok {
			return
		}
		b, _ := json.Marshal(tokenResponse{
			AccessToken: p.token.AccessToken,
			TokenType:   "Bearer",
			ExpiresIn:   int64(time.Until(p.token.Expiry).Seconds()),
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	for path, pick := range map[string]func(*published) []byte{
		"GET /" + FileCert: func(p *published) []byte { return p.certPEM },
		"GET /" + FileKey:  func(p *published) []byte { return p.keyPEM },
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			p, ok := a.usable(w)
			if !ok {
				return
			}
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(pick(p))
		})
	}
	return mux
}

// usable returns the published token, or answers 503 when there is none
// that is still valid.
func (a *agent) usable(w http.ResponseWriter) (*published, bool) {
	p := a.current.Load()
	if p == nil || !time.Now().Before(p.token.Expiry) {
		http.Error(w, "no valid bound token yet", http.StatusServiceUnavailable)
		return nil, false
	}
	return p, true
}

func (a *agent) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.usable(w); ok {
			_, _ = w.Write([]byte("ok"))
		}
	})
	return mux
}
