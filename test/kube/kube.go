// Package kube starts a real, throwaway Kubernetes control plane (etcd and
// kube-apiserver v1.36.3, nothing else) for sekisho's Kubernetes-mode tests.
//
// The binaries are not built here: `make tools` builds bin/kube-apiserver and
// bin/kubectl (from the test/tools module) and installs etcd, and the
// Makefile's test target does that first. Start fails the test, rather than
// skipping it, when they are missing.
//
// Start runs test/scripts/kube-up.sh. Set BIND_ADDRESS (see that script) to
// start the cluster on a non-loopback address inside a network namespace.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const module = "github.com/sekisho/sekisho"

// EtcdPath is where Debian's etcd-server package installs etcd.
const EtcdPath = "/usr/bin/etcd"

// Cluster is a running control plane. The admin token belongs to a user in
// group system:masters; authorization is RBAC.
type Cluster struct {
	// Dir holds the cluster's data, certificates and logs
	// (kube-apiserver.log, etcd.log).
	Dir string
	// Kubeconfig is the path of a kubeconfig for the admin user.
	Kubeconfig string
	// Server is the API server's URL, https://ADDR:PORT.
	Server string
	// Token is the admin user's bearer token.
	Token string
	// CAFile is the path of the CA certificate (PEM) that signed the API
	// server's serving certificate; CAData is its content.
	CAFile string
	CAData []byte
	// EtcdEndpoint is etcd's client URL.
	EtcdEndpoint string

	root string
}

// RepoRoot returns the main module's root directory, found by walking up
// from the working directory (a test's package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(data) == module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("finding the repository root: no go.mod of %s above the working directory", module)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Start starts a control plane in a fresh temporary directory and stops it
// when the test ends. It fails the test if the binaries are missing or the
// cluster does not come up.
func Start(t testing.TB) *Cluster {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{filepath.Join(root, "bin", "kube-apiserver"), filepath.Join(root, "bin", "kubectl")} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run 'make tools' (it builds kube-apiserver and kubectl from test/tools): %v", bin, err)
		}
	}
	if _, err := os.Stat(EtcdPath); err != nil {
		t.Fatalf("%s is missing: run 'make tools' (it installs Debian's etcd-server): %v", EtcdPath, err)
	}

	dir := filepath.Join(t.TempDir(), "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := exec.CommandContext(ctx, filepath.Join(root, "test", "scripts", "kube-up.sh"), dir)
	// The watchdog stops the cluster if this test binary dies without
	// running its cleanups (a panic, or go test's -timeout).
	up.Env = append(os.Environ(), fmt.Sprintf("WATCH_PID=%d", os.Getpid()))
	start := time.Now()
	out, err := up.CombinedOutput()
	// Registered even on failure: kube-down is harmless on a half-started DIR,
	// and kube-up already stopped what it started when it failed.
	t.Cleanup(func() { stop(t, root, dir) })
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd (test/scripts/kube-up.sh %s): %v\n%s", dir, err, out)
	}
	t.Logf("kube-apiserver ready in %v", time.Since(start).Round(time.Millisecond))

	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		Dir:          dir,
		Kubeconfig:   env["KUBECONFIG"],
		Server:       env["KUBE_SERVER"],
		Token:        env["KUBE_TOKEN"],
		CAFile:       env["KUBE_CA"],
		EtcdEndpoint: env["ETCD_ENDPOINT"],
		root:         root,
	}
	if c.Kubeconfig == "" || c.Server == "" || c.Token == "" || c.CAFile == "" {
		t.Fatalf("%s/env is incomplete: %v", dir, env)
	}
	if c.CAData, err = os.ReadFile(c.CAFile); err != nil {
		t.Fatalf("reading the cluster CA: %v", err)
	}
	return c
}

func stop(t testing.TB, root, dir string) {
	if t.Failed() {
		logTail(t, filepath.Join(dir, "kube-apiserver.log"), 40)
	}
	// KEEP=1: t.TempDir removes the directory after this cleanup.
	down := exec.Command(filepath.Join(root, "test", "scripts", "kube-down.sh"), dir)
	down.Env = append(os.Environ(), "KEEP=1")
	if out, err := down.CombinedOutput(); err != nil {
		t.Errorf("stopping kube-apiserver and etcd (test/scripts/kube-down.sh %s): %v\n%s", dir, err, out)
	}
}

func logTail(t testing.TB, path string, n int) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's env file: %w", err)
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// Kubectl runs bin/kubectl against the cluster and returns its standard
// output. The error, if any, includes kubectl's standard error.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlInput("", args...)
}

// KubectlInput is Kubectl with stdin as kubectl's standard input
// (for `apply -f -`).
func (c *Cluster) KubectlInput(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "bin", "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// HTTPClient returns a client that trusts the cluster's CA and sends the
// admin token, for raw requests to c.Server.
func (c *Cluster) HTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CAData) {
		return nil, errors.New("building an HTTP client for the cluster: no certificate in the CA file")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: &bearer{token: c.Token, next: transport}, Timeout: time.Minute}, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(req)
}
