package certrevocation

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Flags are the command-line flags of revocation checking.
type Flags struct {
	files              fileList
	distributionPoints bool
	failureMode        string
	maxBytes           int64
	maxAge             time.Duration
	fetchTimeout       time.Duration
}

// fileList is a repeatable flag whose values may also be comma-separated.
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, ",") }

func (l *fileList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			return errors.New("empty CRL file path")
		}
		*l = append(*l, p)
	}
	return nil
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.Var(&f.files, "client-crl-file", "CRL file (DER or PEM) of an issuer of tls_client_auth certificates, reloaded when it changes; repeatable or comma-separated (enables revocation checking)")
	fs.BoolVar(&f.distributionPoints, "client-crl-distribution-points", false, "fetch CRLs from the CRL distribution points (http, https) of tls_client_auth certificates whose issuer no --client-crl-file covers (enables revocation checking)")
	fs.StringVar(&f.failureMode, "client-revocation-failure-mode", string(FailClosed), "when a certificate's revocation status cannot be established (no current CRL of its issuer): closed refuses the client, open accepts it")
	fs.Int64Var(&f.maxBytes, "client-crl-max-bytes", DefaultMaxCRLBytes, "largest CRL read from a file or a distribution point")
	fs.DurationVar(&f.maxAge, "client-crl-cache-max-age", DefaultMaxCacheAge, "longest a fetched CRL is used before it is fetched again, whatever its nextUpdate; also the life of a CRL without nextUpdate")
	fs.DurationVar(&f.fetchTimeout, "client-crl-fetch-timeout", DefaultFetchTimeout, "time limit of one CRL distribution point fetch")
}

// Checker builds the checker the parsed flags describe; nil when no CRL
// source is given (revocation checking is opt-in). fs is the parsed flag
// set, to tell flags given from defaults.
func (f *Flags) Checker(fs *flag.FlagSet, log *slog.Logger, observer Observer) (*Checker, error) {
	var given []string
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "client-revocation-failure-mode", "client-crl-max-bytes", "client-crl-cache-max-age", "client-crl-fetch-timeout":
			given = append(given, "--"+fl.Name)
		}
	})
	if len(f.files) == 0 && !f.distributionPoints {
		if len(given) > 0 {
			return nil, fmt.Errorf("%s needs --client-crl-file or --client-crl-distribution-points", strings.Join(given, ", "))
		}
		return nil, nil
	}
	mode, err := ParseFailureMode(f.failureMode)
	if err != nil {
		return nil, fmt.Errorf("--client-revocation-failure-mode: %w", err)
	}
	if f.maxBytes <= 0 || f.maxAge <= 0 || f.fetchTimeout <= 0 {
		return nil, errors.New("--client-crl-max-bytes, --client-crl-cache-max-age and --client-crl-fetch-timeout must be positive")
	}
	c, err := New(Config{
		Files: f.files, DistributionPoints: f.distributionPoints, FailureMode: mode,
		MaxCRLBytes: f.maxBytes, MaxCacheAge: f.maxAge, FetchTimeout: f.fetchTimeout,
		Logger: log, Observer: observer,
	})
	if err != nil {
		return nil, fmt.Errorf("--client-crl-file: %w", err)
	}
	return c, nil
}
