//go:build linux

package kubelet

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod logs: the suite reads echo-basic's logs (the mirror tests) through
// the API server, which asks the Pod's node's kubelet. The Emulator
// registers a Node whose kubelet endpoint is LogAddress and serves
// /containerLogs/NS/POD/CONTAINER there (sinceTime and timestamps
// honoured), from each process's log, whose lines it timestamps as they
// are written.

// tsWriter writes each complete line as "RFC3339Nano line".
type tsWriter struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

func (w *tsWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := fmt.Sprintf("%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), w.buf[:i])
		w.buf = w.buf[i+1:]
		if _, err := w.f.WriteString(line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *tsWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_, _ = fmt.Fprintf(w.f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), w.buf)
		w.buf = nil
	}
	return w.f.Close()
}

func (e *Emulator) logPath(ns, name string) string {
	return filepath.Join(e.cfg.LogDir, ns+"_"+name+".log")
}

// serveLogs registers the Node and serves the kubelet's log endpoint until
// ctx ends.
func (e *Emulator) serveLogs(ctx context.Context) error {
	host, portStr, err := net.SplitHostPort(e.cfg.LogAddress)
	if err != nil {
		return fmt.Errorf("serving Pod logs: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("serving Pod logs: %w", err)
	}
	cert, err := selfSigned(host)
	if err != nil {
		return fmt.Errorf("serving Pod logs: %w", err)
	}
	ln, err := tls.Listen("tcp", e.cfg.LogAddress, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return fmt.Errorf("serving Pod logs: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", e.containerLogs)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	n, err := e.cfg.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		n, err = e.cfg.Client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering Node %s: %w", nodeName, err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}}
	if _, err := e.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing the status of Node %s: %w", nodeName, err)
	}
	return nil
}

func (e *Emulator) containerLogs(w http.ResponseWriter, r *http.Request) {
	f, err := os.Open(e.logPath(r.PathValue("ns"), r.PathValue("pod")))
	if errors.Is(err, os.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if s := q.Get("sinceSeconds"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			since = time.Now().Add(-time.Duration(n) * time.Second)
		}
	}
	timestamps := q.Get("timestamps") == "true"
	w.Header().Set("Content-Type", "text/plain")
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.Before(since) {
			continue
		}
		if timestamps {
			line = ts + " " + line
		}
		_, _ = fmt.Fprintln(w, line)
	}
}

func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: nodeName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
