package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sekisho/sekisho/proxy/hcm"
	"github.com/sekisho/sekisho/proxy/router"
)

// defaultMaxHeaderBytes is Envoy's default max_request_headers_kb (60 KiB).
const defaultMaxHeaderBytes = 60 << 10

func compileListener(l *listenerv3.Listener, tables map[string]*router.Table, secrets map[string]*tlsv3.Secret, env *compileEnv) (*listenerConfig, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, errors.New("address: a socket address is required")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("address.socket_address.protocol: %v is not supported", sa.GetProtocol())
	}
	lc := &listenerConfig{
		name:     l.GetName(),
		addr:     listenerAddr(l),
		sniExact: map[string]*chainConfig{},
	}
	for i, lf := range l.GetListenerFilters() {
		if lf.GetName() != "envoy.filters.listener.tls_inspector" {
			return nil, fmt.Errorf("listener_filters[%d]: %q is not supported", i, lf.GetName())
		}
	}
	if len(l.GetFilterChains()) == 0 {
		return nil, errors.New("filter_chains: at least one filter chain is required")
	}
	for i, fc := range l.GetFilterChains() {
		cc, isTLS, err := compileChain(fc, tables, secrets, env)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d] %q: %w", i, fc.GetName(), err)
		}
		if i == 0 {
			lc.tls = isTLS
		} else if lc.tls != isTLS {
			return nil, fmt.Errorf("filter_chains[%d] %q: mixing TLS and plaintext chains on one listener is not supported", i, fc.GetName())
		}
		names := fc.GetFilterChainMatch().GetServerNames()
		if len(names) > 0 && !isTLS {
			return nil, fmt.Errorf("filter_chains[%d] %q: filter_chain_match.server_names needs TLS", i, fc.GetName())
		}
		if len(names) == 0 {
			if lc.fallback != nil {
				return nil, fmt.Errorf("filter_chains[%d] %q: filter_chain_match: two chains match any server name", i, fc.GetName())
			}
			lc.fallback = cc
		}
		for _, n := range names {
			n = lowerSNI(n)
			switch {
			case strings.HasPrefix(n, "*."):
				lc.sniWild = append(lc.sniWild, sniWild{suffix: n[1:], chain: cc})
			case strings.Contains(n, "*"):
				return nil, fmt.Errorf("filter_chains[%d] %q: server name %q: only a leading \"*.\" wildcard is supported", i, fc.GetName(), n)
			default:
				if lc.sniExact[n] != nil {
					return nil, fmt.Errorf("filter_chains[%d] %q: server name %q is in two chains", i, fc.GetName(), n)
				}
				lc.sniExact[n] = cc
			}
		}
		if cc.maxHead > lc.maxHead {
			lc.maxHead = cc.maxHead
		}
		lc.chains = append(lc.chains, cc)
	}
	if !lc.tls && len(lc.chains) != 1 {
		return nil, errors.New("filter_chains: a plaintext listener has exactly one filter chain")
	}
	sort.SliceStable(lc.sniWild, func(i, j int) bool { return len(lc.sniWild[i].suffix) > len(lc.sniWild[j].suffix) })
	return lc, nil
}

// chainFor returns the chain for a server name: an exact name, else the
// longest "*.x" wildcard, else the chain with no server names. nil: none.
func (lc *listenerConfig) chainFor(sni string) *chainConfig {
	if !lc.tls {
		return lc.chains[0]
	}
	sni = lowerSNI(sni)
	if c := lc.sniExact[sni]; c != nil {
		return c
	}
	for _, w := range lc.sniWild {
		if len(sni) > len(w.suffix) && strings.HasSuffix(sni, w.suffix) {
			return w.chain
		}
	}
	return lc.fallback
}

func compileChain(fc *listenerv3.FilterChain, tables map[string]*router.Table, secrets map[string]*tlsv3.Secret, env *compileEnv) (*chainConfig, bool, error) {
	cc := &chainConfig{name: fc.GetName(), maxHead: defaultMaxHeaderBytes}
	if len(fc.GetFilters()) != 1 || fc.GetFilters()[0].GetName() != hcmFilterName {
		return nil, false, fmt.Errorf("filters: exactly one filter, %q, is supported", hcmFilterName)
	}
	tc := fc.GetFilters()[0].GetTypedConfig()
	if tc == nil {
		return nil, false, errors.New("filters[0].typed_config: missing")
	}
	h := &hcmv3.HttpConnectionManager{}
	if err := tc.UnmarshalTo(h); err != nil {
		return nil, false, fmt.Errorf("filters[0].typed_config: decoding HttpConnectionManager: %w", err)
	}
	switch h.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
	default:
		return nil, false, fmt.Errorf("http connection manager: codec_type %v is not supported (AUTO only)", h.GetCodecType())
	}
	if !h.GetNormalizePath().GetValue() || !h.GetMergeSlashes() {
		return nil, false, errors.New("http connection manager: normalize_path and merge_slashes must both be true")
	}
	if h.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		return nil, false, fmt.Errorf("http connection manager: path_with_escaped_slashes_action %v is not supported (REJECT_REQUEST only)", h.GetPathWithEscapedSlashesAction())
	}
	if kb := h.GetMaxRequestHeadersKb(); kb != nil {
		if kb.GetValue() == 0 || kb.GetValue() > 8192 {
			return nil, false, fmt.Errorf("http connection manager: max_request_headers_kb %d is out of range", kb.GetValue())
		}
		cc.maxHead = int(kb.GetValue()) << 10
	}
	filters, err := compileHTTPFilters(h.GetHttpFilters(), env)
	if err != nil {
		return nil, false, fmt.Errorf("http connection manager: %w", err)
	}
	cc.filters = filters
	for i, u := range h.GetUpgradeConfigs() {
		if !strings.EqualFold(u.GetUpgradeType(), "websocket") {
			return nil, false, fmt.Errorf("http connection manager: upgrade_configs[%d]: upgrade type %q is not supported", i, u.GetUpgradeType())
		}
		cc.websocket = true
	}
	rds := h.GetRds()
	if rds == nil {
		return nil, false, errors.New("http connection manager: rds is required")
	}
	t := tables[rds.GetRouteConfigName()]
	if t == nil {
		return nil, false, fmt.Errorf("http connection manager: rds: route configuration %q: %w", rds.GetRouteConfigName(), errWarming)
	}
	cc.table = t
	if err := checkRouteFilterKinds(cc.filters, t); err != nil {
		return nil, false, fmt.Errorf("http connection manager: rds: route configuration %q: %w", rds.GetRouteConfigName(), err)
	}

	ts := fc.GetTransportSocket()
	if ts == nil {
		return cc, false, nil
	}
	if ts.GetName() != tlsTransportSocketName {
		return nil, false, fmt.Errorf("transport_socket: %q is not supported", ts.GetName())
	}
	dtc := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(dtc); err != nil {
		return nil, false, fmt.Errorf("transport_socket: decoding DownstreamTlsContext: %w", err)
	}
	ctc := dtc.GetCommonTlsContext()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: append([]string(nil), ctc.GetAlpnProtocols()...)}
	for _, p := range cfg.NextProtos {
		if p != "h2" && p != "http/1.1" {
			return nil, false, fmt.Errorf("transport_socket: alpn_protocols: %q is not supported", p)
		}
	}
	for i, sds := range ctc.GetTlsCertificateSdsSecretConfigs() {
		sec := secrets[sds.GetName()]
		if sec == nil {
			return nil, false, fmt.Errorf("transport_socket: tls_certificate_sds_secret_configs[%d]: secret %q: %w", i, sds.GetName(), errWarming)
		}
		tc := sec.GetTlsCertificate()
		if tc == nil {
			return nil, false, fmt.Errorf("secret %q: tls_certificate is required", sds.GetName())
		}
		cert, err := tls.X509KeyPair(dataBytes(tc.GetCertificateChain()), dataBytes(tc.GetPrivateKey()))
		if err != nil {
			return nil, false, fmt.Errorf("secret %q: loading the certificate and key: %w", sds.GetName(), err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if len(cfg.Certificates) == 0 {
		return nil, false, errors.New("transport_socket: no certificate")
	}
	cc.tls = cfg
	return cc, true, nil
}

func dataBytes(d *corev3.DataSource) []byte {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString)
	}
	return nil
}

// server is one bound listener.
type server struct {
	rt   *Runtime
	name string
	addr string
	tls  bool
	ln   net.Listener
	srv  *http.Server
	// fast serves plaintext HTTP/1.1 itself; srv then serves only the h2c
	// connections it hands over. nil for TLS listeners.
	fast *hcm.H1Server
}

func (r *Runtime) newServer(lc *listenerConfig, ln net.Listener) *server {
	s := &server{rt: r, name: lc.name, addr: lc.addr, tls: lc.tls, ln: ln}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	h := hcm.NewHandler((*hcmRuntime)(r), lc.name)
	if !lc.tls {
		s.fast = hcm.NewH1Server(ln, lc.name, r.log, s.maxHead, h)
	}
	s.srv = &http.Server{
		Handler:           h,
		Protocols:         &protos,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    lc.maxHead,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		// net/http configures HTTP/2 over TLS for Serve when the TLS
		// config offers h2; connections arrive already handshaken.
		TLSConfig: &tls.Config{NextProtos: []string{"h2", "http/1.1"}},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			switch c := c.(type) {
			case *tls.Conn:
				return hcm.WithConnInfo(ctx, &hcm.ConnInfo{TLS: true, SNI: c.ConnectionState().ServerName})
			case *guardConn:
				if c.isTLS {
					return hcm.WithConnInfo(ctx, &hcm.ConnInfo{TLS: true, SNI: c.sni})
				}
			}
			return hcm.WithConnInfo(ctx, hcm.PlainConn)
		},
		DisableGeneralOptionsHandler: true,
	}
	return s
}

func (s *server) start() {
	var l net.Listener
	if s.tls {
		l = newTLSListener(s)
	} else {
		l = s.fast.H2()
		go s.fast.Serve()
	}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.rt.log.Error("serving listener", "listener", s.name, "error", err)
		}
	}()
}

// shutdown stops accepting and waits for the connections to finish their
// requests (idle ones are closed), until ctx is done.
func (s *server) shutdown(ctx context.Context) error {
	if s.fast == nil {
		return s.srv.Shutdown(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Shutdown(ctx) }()
	err := s.fast.Shutdown(ctx)
	return errors.Join(err, <-errc)
}

// maxHead is the header limit of the listener's current configuration.
func (s *server) maxHead() int {
	if lc := s.rt.cfg.Load().listeners[s.name]; lc != nil && lc.maxHead > 0 {
		return lc.maxHead
	}
	return defaultMaxHeaderBytes
}

// tlsListener terminates TLS itself (the certificate chosen by SNI from the
// current configuration) and hands net/http either the TLS connection (h2)
// or a guardConn around it (HTTP/1.1).
type tlsListener struct {
	s      *server
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	config *tls.Config
}

func newTLSListener(s *server) *tlsListener {
	l := &tlsListener{s: s, conns: make(chan net.Conn), done: make(chan struct{})}
	l.config = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			lc := s.rt.cfg.Load().listeners[s.name]
			if lc == nil {
				return nil, fmt.Errorf("listener %q is gone", s.name)
			}
			cc := lc.chainFor(hello.ServerName)
			if cc == nil || cc.tls == nil {
				return nil, fmt.Errorf("listener %q: no filter chain for server name %q", s.name, hello.ServerName)
			}
			return cc.tls, nil
		},
	}
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.s.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.s.rt.log.Error("accepting", "listener", l.s.name, "error", err)
			return
		}
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	defer func() {
		if v := recover(); v != nil {
			l.s.rt.log.Error("panic in TLS handshake", "listener", l.s.name, "panic", v)
			_ = c.Close()
		}
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.s.rt.log.Debug("TLS handshake", "listener", l.s.name, "remote", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	st := tc.ConnectionState()
	var out net.Conn = tc
	if st.NegotiatedProtocol != "h2" {
		g := newGuardConn(tc, l.s.maxHead())
		g.isTLS, g.sni = true, st.ServerName
		out = g
	}
	select {
	case l.conns <- out:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.s.ln.Close()
	})
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.s.ln.Addr() }
