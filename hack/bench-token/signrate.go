package main

// The raw signing rate: go-jose signing a typical access token's claims
// with the server's key and options (typ at+jwt, compact serialization), in
// a process of its own on the server's core, before any server runs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const signRateCommand = "sign-rate"

// typicalClaims has the size and shape of a bound access token's claims.
var typicalClaims = []byte(`{"iss":"https://as.example.com","sub":"billing","client_id":"billing","aud":"https://api.example.com",` +
	`"scope":"read write","iat":1700000000,"exp":1700000600,"jti":"3q2-7wAAAAAAAAAAAAAAAA",` +
	`"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}`)

// measureSignRate runs the sign-rate subcommand of this binary on the
// server's core and returns its signatures per second.
func measureSignRate(ctx context.Context, pinned bool, keyFile string, d time.Duration) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	name, args := onServerCore(pinned, self, signRateCommand, "--signing-key-file", keyFile, "--duration", d.String())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
}

// runSignRate signs on one goroutine for the duration and prints the rate.
func runSignRate(args []string) error {
	fs := flag.NewFlagSet(signRateCommand, flag.ContinueOnError)
	keyFile := fs.String("signing-key-file", "", "private JWK Set; the first key signs")
	d := fs.Duration("duration", 3*time.Second, "measured time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	if len(set.Keys) == 0 || set.Keys[0].IsPublic() {
		return fmt.Errorf("%s: the first key must be private", *keyFile)
	}
	key := set.Keys[0]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return err
	}
	n := 0
	start := time.Now()
	deadline := start.Add(*d)
	for time.Now().Before(deadline) {
		// Check the clock every 64 signatures only.
		for range 64 {
			jws, err := signer.Sign(typicalClaims)
			if err != nil {
				return err
			}
			if _, err := jws.CompactSerialize(); err != nil {
				return err
			}
		}
		n += 64
	}
	elapsed := time.Since(start).Seconds()
	if elapsed <= 0 {
		return errors.New("no time elapsed")
	}
	fmt.Printf("%.0f\n", float64(n)/elapsed)
	return nil
}
