package main

// The raw signing rate: crypto/ecdsa or crypto/ed25519 signing the JWS
// signing input of a typical access token with the server's key — the
// signature alone, no JWS assembly — in a process of its own on the
// server's core, before any server runs. It is the ceiling a token endpoint
// on that core cannot pass.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	signer, ok := set.Keys[0].Key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("%s: the first key cannot sign", *keyFile)
	}
	sign, err := rawSigner(signer, jose.SignatureAlgorithm(set.Keys[0].Algorithm))
	if err != nil {
		return err
	}
	input := []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"k","typ":"at+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(typicalClaims))
	n := 0
	start := time.Now()
	deadline := start.Add(*d)
	for time.Now().Before(deadline) {
		// Check the clock every 64 signatures only.
		for range 64 {
			if _, err := sign(input); err != nil {
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

// rawSigner signs a JWS signing input the way alg needs, with nothing
// around the signature: SHA-256 then ECDSA for ES256, Ed25519 over the
// message for EdDSA.
func rawSigner(signer crypto.Signer, alg jose.SignatureAlgorithm) (func([]byte) ([]byte, error), error) {
	switch alg {
	case jose.ES256:
		return func(input []byte) ([]byte, error) {
			digest := sha256.Sum256(input)
			return signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		}, nil
	case jose.EdDSA:
		return func(input []byte) ([]byte, error) {
			return signer.Sign(rand.Reader, input, crypto.Hash(0))
		}, nil
	}
	return nil, fmt.Errorf("no raw signing rate for %s", alg)
}
