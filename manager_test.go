package main

import (
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/controllers"
)

func TestParseManagerFlags(t *testing.T) {
	cases := []struct {
		name        string
		args        []string
		wantErr     string
		wantWorkers int
		wantResync  time.Duration
	}{
		{name: "defaults", wantWorkers: controllers.DefaultClientWorkers, wantResync: time.Minute},
		{name: "set", args: []string{"--oauthclient-workers=8", "--trust-anchor-resync-period=0"}, wantWorkers: 8, wantResync: 0},
		{name: "no workers", args: []string{"--oauthclient-workers=0"}, wantErr: "--oauthclient-workers must be at least 1"},
		{name: "negative resync", args: []string{"--trust-anchor-resync-period=-1s"}, wantErr: "--trust-anchor-resync-period must not be negative"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _, err := parseManagerFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.controllers.ClientWorkers != tc.wantWorkers || f.controllers.TrustAnchorResyncPeriod != tc.wantResync {
				t.Fatalf("workers %d, resync %s; want %d, %s", f.controllers.ClientWorkers, f.controllers.TrustAnchorResyncPeriod, tc.wantWorkers, tc.wantResync)
			}
		})
	}
}
