package main

// The authorization server under test: the real certbound binary as a
// child process on the server's core, with the standalone registry.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// serverSetup is how one server of the run is configured.
type serverSetup struct {
	alg jose.SignatureAlgorithm
	crl bool
}

// serverStartTimeout bounds the wait for the server's mTLS listener.
const serverStartTimeout = 30 * time.Second

type server struct {
	cmd        *exec.Cmd
	mtlsURL    string
	metricsURL string
	logFile    string
	exited     chan error
}

// startServer starts certbound authorization-server and waits until its
// mTLS listener completes a TLS handshake.
func startServer(ctx context.Context, o options, fx *fixture, setup serverSetup, pinned bool, dir string) (*server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	public, mtls, metrics := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1]), "127.0.0.1:"+strconv.Itoa(ports[2])
	args := []string{"authorization-server",
		"--issuer", "https://" + public,
		"--listen-address", public,
		"--mtls-listen-address", mtls,
		"--metrics-address", metrics,
		"--tls-cert-file", fx.certFile,
		"--tls-key-file", fx.keyFile,
		"--client-ca-file", fx.caFile,
		"--clients-dir", fx.clientsDir,
		"--signing-key-file", fx.keyFiles[setup.alg],
		"--log-level", "warn",
	}
	if setup.crl {
		args = append(args, "--client-crl-file", fx.crlFile)
	}
	logFile := filepath.Join(dir, fmt.Sprintf("server-%s-crl-%t.log", setup.alg, setup.crl))
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	name, args := onServerCore(pinned, o.certbound, args...)
	s := &server{cmd: exec.CommandContext(ctx, name, args...), mtlsURL: "https://" + mtls, metricsURL: "http://" + metrics + "/metrics", logFile: logFile, exited: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()

	cfg := &tls.Config{RootCAs: fx.servingRoots}
	deadline := time.Now().Add(serverStartTimeout)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", mtls, cfg)
		if err == nil {
			conn.Close()
			return s, nil
		}
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("the server exited (%v); its log:\n%s", err, readLog(logFile))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server's mTLS listener did not answer within %s; its log:\n%s", serverStartTimeout, readLog(logFile))
		}
	}
}

// stop ends the server and waits for it.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// freePorts asks the kernel for n unused loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// userHZ is the unit of the CPU times in /proc/PID/stat, fixed at 100 by
// the Linux ABI whatever the kernel's own tick rate.
const userHZ = 100

// cpuTime is the user plus system CPU time the server has used, from
// /proc/PID/stat (fields 14 and 15, counted after the parenthesised name).
func (s *server) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state): utime and stime are fields[11] and [12].
	if len(fields) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// revocationChecksMetric counts the server's client certificate
// revocation checks that found the chain good.
const revocationChecksMetric = `certbound_as_client_certificate_revocation_checks_total{result="good"}`

// goodRevocationChecks reads revocationChecksMetric from the server's
// /metrics: proof that the CRL scenario did check revocation.
func (s *server) goodRevocationChecks(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", s.metricsURL, resp.StatusCode)
	}
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), revocationChecksMetric+" "); ok {
			return strconv.ParseFloat(value, 64)
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s", s.metricsURL, revocationChecksMetric)
}
