package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// ftTLSClient is an HTTPS client that dials 127.0.0.1:port whatever the URL
// says, trusts only ca, sends serverName as SNI and speaks only proto
// ("h2" or "http/1.1"). The state of the last handshake goes to *state.
func ftTLSClient(t *testing.T, port int, ca *ftCA, serverName, proto string, state *tls.ConnectionState) *http.Client {
	t.Helper()
	var protos http.Protocols
	if proto == "h2" {
		protos.SetHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	tr := &http.Transport{
		Protocols: &protos,
		TLSClientConfig: &tls.Config{
			RootCAs:    ca.Pool,
			ServerName: serverName,
			NextProtos: []string{proto},
			VerifyConnection: func(cs tls.ConnectionState) error {
				*state = cs
				return nil
			},
		},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: proto == "h2",
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestFeaturesTLSSNI(t *testing.T) {
	alpha := ftEcho(t, "alpha")
	ca := ftNewCA(t)
	certA, keyA := ca.Leaf(t, 2, "a.example.com")
	certB, keyB := ca.Leaf(t, 3, "b.example.com")
	port := ftPort(t)
	dir := ftConfigDir(t, "tls.yaml", map[string]string{"PORT": strconv.Itoa(port)},
		ftServiceYAML(t, "alpha", alpha, ""),
		ftTLSSecretYAML("cert-a", certA, keyA),
		ftTLSSecretYAML("cert-b", certB, keyB),
	)
	ftRun(t, dir)

	// Wait until the listener serves both names.
	for _, name := range []string{"a.example.com", "b.example.com"} {
		var st tls.ConnectionState
		c := ftTLSClient(t, port, ca, name, "http/1.1", &st)
		waitFor(t, 15*time.Second, func() bool {
			resp, err := c.Get("https://" + name + "/")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode == http.StatusOK
		})
	}

	t.Run("certificate, protocol and listener by server name", func(t *testing.T) {
		for _, tc := range []struct {
			sni, proto   string
			wantProto    string
			wantListener string
		}{
			{"a.example.com", "h2", "HTTP/2.0", "https-a"},
			{"a.example.com", "http/1.1", "HTTP/1.1", "https-a"},
			{"b.example.com", "h2", "HTTP/2.0", "https-b"},
			{"b.example.com", "http/1.1", "HTTP/1.1", "https-b"},
		} {
			t.Run(tc.sni+" "+tc.proto, func(t *testing.T) {
				var st tls.ConnectionState
				c := ftTLSClient(t, port, ca, tc.sni, tc.proto, &st)
				url := fmt.Sprintf("https://%s:%d/path?x=1", tc.sni, port)
				resp, err := c.Get(url)
				if err != nil {
					t.Fatalf("GET %s: %v", url, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if len(st.PeerCertificates) == 0 {
					t.Fatal("no peer certificate")
				}
				if got := st.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != tc.sni {
					t.Errorf("SNI %s: the certificate is for %v, want [%s]", tc.sni, got, tc.sni)
				}
				if st.NegotiatedProtocol != tc.proto {
					t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, tc.proto)
				}
				if resp.Proto != tc.wantProto {
					t.Errorf("response protocol %s, want %s", resp.Proto, tc.wantProto)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, body %q", resp.StatusCode, body)
				}
				if got := resp.Header.Get("X-Listener"); got != tc.wantListener {
					t.Errorf("served by listener %q, want %q", got, tc.wantListener)
				}
				got, ok := ftDecodeEcho(body)
				if !ok || got.Backend != "alpha" || got.Path != "/path" || got.RawQuery != "x=1" {
					t.Fatalf("backend saw %+v, want alpha GET /path?x=1", got)
				}
				if xfp := got.Headers["X-Forwarded-Proto"]; len(xfp) != 1 || xfp[0] != "https" {
					t.Errorf("X-Forwarded-Proto = %q, want [https]", xfp)
				}
			})
		}
	})

	t.Run("a Host of the other listener is not served on this one", func(t *testing.T) {
		for _, proto := range []string{"h2", "http/1.1"} {
			t.Run(proto, func(t *testing.T) {
				var st tls.ConnectionState
				c := ftTLSClient(t, port, ca, "a.example.com", proto, &st)
				req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://a.example.com:%d/", port), nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = "b.example.com"
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMisdirectedRequest {
					t.Errorf("SNI a, Host b: status %d (listener %q), want 404 or 421", resp.StatusCode, resp.Header.Get("X-Listener"))
				}
			})
		}
	})

	t.Run("HTTP/1.1 over TLS refuses ambiguous framing", func(t *testing.T) {
		for _, tc := range []struct {
			name, raw string
		}{
			{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
			{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"},
			{"obs-fold", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: a\r\n b\r\n\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
					net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
					&tls.Config{ServerName: "a.example.com", RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(conn, tc.raw); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("status %d (X-Echo-Backend %q), want 400", resp.StatusCode, resp.Header.Get("X-Echo-Backend"))
				}
			})
		}
	})

	t.Run("an unknown server name gets no certificate", func(t *testing.T) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
			net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			&tls.Config{ServerName: "c.example.com", InsecureSkipVerify: true})
		if err == nil {
			names := conn.ConnectionState().PeerCertificates[0].DNSNames
			conn.Close()
			t.Fatalf("handshake for c.example.com succeeded with a certificate for %v", names)
		}
	})
}
