package asruntime

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPublicClientFlags(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, c := range map[string]struct {
		args         []string
		setup        publicClientSetup
		wantErr      string
		wantReviewer bool
		wantKube     bool
	}{
		"standalone without --kubeconfig: no grants": {},
		"standalone with --kubeconfig: reviewed, refresh tokens in memory": {
			setup: publicClientSetup{kubeconfig: kubeconfig, explicitKubeconfig: true}, wantReviewer: true,
		},
		"in cluster: reviewed, refresh tokens in ConfigMaps": {
			setup: publicClientSetup{inCluster: true, kubeconfig: kubeconfig, storeNamespace: "auth", storeServer: "payments"}, wantReviewer: true, wantKube: true,
		},
		"limits": {
			args: []string{"--refresh-token-ttl=5m", "--refresh-token-max-lifetime=2h", "--refresh-token-families-per-client=3"},
		},
		"a zero TTL":          {args: []string{"--refresh-token-ttl=0"}, wantErr: "must be positive"},
		"a negative quota":    {args: []string{"--refresh-token-families-per-client=-1"}, wantErr: "must be positive"},
		"a negative lifetime": {args: []string{"--refresh-token-max-lifetime=-1h"}, wantErr: "must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var f publicClientFlags
			f.register(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			var cfg Config
			err := f.configure(&cfg, c.setup, log)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.TokenReviewer != nil) != c.wantReviewer {
				t.Errorf("token reviewer %v, want one: %v", cfg.TokenReviewer, c.wantReviewer)
			}
			if _, ok := cfg.RefreshTokens.(*KubeRefreshTokenStore); ok != c.wantKube {
				t.Errorf("refresh token store %T", cfg.RefreshTokens)
			}
			if name == "limits" && (cfg.RefreshTokenTTL != 5*time.Minute || cfg.RefreshTokenMaxLifetime != 2*time.Hour || cfg.RefreshFamiliesPerClient != 3) {
				t.Errorf("limits %v %v %d", cfg.RefreshTokenTTL, cfg.RefreshTokenMaxLifetime, cfg.RefreshFamiliesPerClient)
			}
		})
	}
}
