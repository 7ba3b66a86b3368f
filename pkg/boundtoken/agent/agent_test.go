package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"files only", []string{"--output-dir", "/run/certbound"}, ""},
		{"a unix socket only", []string{"--socket", "/run/certbound/agent.sock"}, ""},
		{"a loopback HTTP endpoint", []string{"--listen-address", "127.0.0.1:8099"}, ""},
		{"an IPv6 loopback HTTP endpoint", []string{"--listen-address", "[::1]:8099"}, ""},
		{"a group-readable file mode", []string{"--output-dir", "/x", "--file-mode", "0640"}, ""},
		{"no output at all is refused", nil, "set at least one of --output-dir, --socket and --listen-address"},
		{"an endpoint on every interface is refused", []string{"--listen-address", ":8099"}, "is not a loopback IP address"},
		{"an endpoint on the pod IP is refused", []string{"--listen-address", "10.0.0.7:8099"}, "is not a loopback IP address"},
		{"a host name is refused", []string{"--listen-address", "localhost:8099"}, "is not a loopback IP address"},
		{"a world-readable key is refused", []string{"--output-dir", "/x", "--file-mode", "0644"}, "readable by any user"},
		{"a file mode that is not octal is refused", []string{"--output-dir", "/x", "--file-mode", "rw"}, "not an octal permission"},
		{"a certificate lifetime under a minute is refused", []string{"--output-dir", "/x", "--certificate-lifetime", "30s"}, "shorter than a minute"},
		{"stray arguments are refused", []string{"--output-dir", "/x", "extra"}, "unexpected arguments: extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRunStopsAtOnceOnConfigurationErrors(t *testing.T) {
	config := t.TempDir()
	for name, content := range map[string]string{"client_id": "team.worker", "issuer": "https://as.example", "token_endpoint": "https://as.example:8443/token"} {
		if err := os.WriteFile(filepath.Join(config, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no config Secret mounted", []string{"--config-dir", t.TempDir(), "--token-file", tokenFile, "--output-dir", t.TempDir()}, "mount the OAuthClient's config Secret"},
		{"no projected token", []string{"--config-dir", config, "--token-file", filepath.Join(t.TempDir(), "absent"), "--output-dir", t.TempDir()}, "project one with audience https://as.example"},
		{"an output directory that does not exist", []string{"--config-dir", config, "--token-file", tokenFile, "--output-dir", filepath.Join(t.TempDir(), "absent")}, "is not a directory"},
		{"a socket in a missing directory", []string{"--config-dir", config, "--token-file", tokenFile, "--socket", filepath.Join(t.TempDir(), "absent", "agent.sock")}, "--socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteAtomicReplacesTheFileAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"first", "second"} {
		if err := writeAtomic(dir, FileToken, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, FileToken))
	if err != nil || string(got) != "second" {
		t.Fatalf("token = %q, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only %s", len(entries), FileToken)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileToken)); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}
