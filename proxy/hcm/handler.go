package hcm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sekisho/sekisho/internal/httppath"
	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/router"
	"github.com/sekisho/sekisho/proxy/upstream"
)

// Handler serves the requests of one listener.
type Handler struct {
	rt       Runtime
	listener string
}

// NewHandler returns the handler of a listener.
func NewHandler(rt Runtime, listener string) *Handler { return &Handler{rt: rt, listener: listener} }

// reqState is what the access log and the metrics need at the end.
type reqState struct {
	start    time.Time
	route    *router.Route
	backend  string
	upstream string
	code     int
	bytes    int64
	path     string
}

var (
	xfpHTTP  = []string{"http"}
	xfpHTTPS = []string{"https"}
)

// hopHeaders are removed from requests and responses (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	st := reqState{start: time.Now()}
	// On the HTTP/1.1 fast path the request's header is still its parsed
	// fields (req.Header is nil): the map is built only for what reads it,
	// the filters and a route table that matches on headers here, some
	// routes in forward. hc is nil once it is built.
	var hc *h1Conn
	if rw, ok := w.(*respWriter); ok && rw.req == req && !rw.c.hdrReady {
		hc = rw.c
	}
	wrote := false
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				h.finish(req, &st)
				panic(v)
			}
			h.rt.Log().Error("panic serving request", "listener", h.listener, "path", st.path, "panic", v)
			if !wrote {
				st.code = http.StatusInternalServerError
				w.WriteHeader(st.code)
			}
		}
		h.finish(req, &st)
	}()

	cfg := h.rt.Config()
	ci := connInfoOf(req.Context())
	chain, ok := cfg.Chain(h.listener, ci.SNI)
	if !ok {
		st.code = http.StatusNotFound
		wrote = true
		w.WriteHeader(st.code)
		return
	}
	table, filters := chain.Routes(), chain.HTTPFilters()
	if hc != nil && (len(filters) != 0 || table.ReadsHeaders()) {
		hc.header()
		hc = nil
	}

	raw := req.RequestURI
	if len(raw) == 0 || raw[0] != '/' {
		if req.URL != nil && req.URL.IsAbs() {
			raw = req.URL.EscapedPath()
		}
	} else if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	path, err := httppath.Normalize(raw)
	st.path = path
	if err != nil {
		st.path = raw
		st.code = http.StatusBadRequest
		wrote = true
		http.Error(w, "Bad Request", st.code)
		return
	}
	rt := table.Match(req.Host, path, req)
	if rt == nil {
		st.code = http.StatusNotFound
		wrote = true
		w.WriteHeader(st.code)
		return
	}
	st.route = rt
	scheme := "http"
	if ci.TLS {
		scheme = "https"
	}
	if len(filters) != 0 {
		rq, done := h.runFilters(w, req, filters, rt, path, scheme, st.start)
		if done {
			st.code, st.bytes = rq.Replied()
			wrote = true
			return
		}
		if rq.EditsResponse() {
			w = &filteredWriter{ResponseWriter: w, rq: rq}
		}
	}

	switch rt.Action {
	case router.ActionDirect:
		d := rt.Direct
		hdr := w.Header()
		rt.ResponseHeaders.Apply(hdr)
		if len(d.Body) > 0 {
			hdr.Set("Content-Type", "text/plain")
			hdr.Set("Content-Length", strconv.Itoa(len(d.Body)))
		}
		st.code = d.Status
		wrote = true
		w.WriteHeader(d.Status)
		if len(d.Body) > 0 && req.Method != http.MethodHead {
			n, _ := w.Write(d.Body)
			st.bytes = int64(n)
		}
		return
	case router.ActionRedirect:
		loc := rt.Redirect.Location(rt, scheme, req.Host, path, req.URL.RawQuery)
		hdr := w.Header()
		rt.ResponseHeaders.Apply(hdr)
		hdr.Set("Location", loc)
		st.code = rt.Redirect.Code
		wrote = true
		w.WriteHeader(st.code)
		return
	}
	wrote = h.forward(w, req, hc, cfg, chain, rt, path, scheme, &st)
}

// finish records the request in the metrics and the access log.
func (h *Handler) finish(req *http.Request, st *reqState) {
	d := time.Since(st.start)
	if st.route != nil {
		if ext, ok := st.route.Ext.(*RouteExt); ok {
			rs := ext.NoBackend
			if st.backend != "" {
				if b := ext.Stats[st.backend]; b != nil {
					rs = b
				}
			}
			rs.observe(st.code, d)
		}
	}
	accessLog := h.rt.AccessLog()
	if accessLog == nil {
		return
	}
	routeName := ""
	if st.route != nil {
		routeName = st.route.StatName
	}
	accessLog.LogAttrs(req.Context(), slog.LevelInfo, "request",
		slog.String("listener", h.listener),
		slog.String("method", req.Method),
		slog.String("authority", req.Host),
		slog.String("path", st.path),
		slog.String("protocol", req.Proto),
		slog.Int("status", st.code),
		slog.Float64("duration_ms", float64(d)/float64(time.Millisecond)),
		slog.String("route", routeName),
		slog.String("backend", st.backend),
		slog.String("upstream_address", st.upstream),
		slog.Int64("bytes_received", max(req.ContentLength, 0)),
		slog.Int64("bytes_sent", st.bytes),
		slog.String("downstream_address", req.RemoteAddr),
	)
}

// failure kinds of an attempt upstream.
const (
	failNone = iota
	failConnect
	failReset
	failTimeout // per-try timeout
	failProtocol
)

// forward sends the request upstream and copies the response back. It
// reports whether anything was written downstream. hc, when not nil, is the
// fast path's connection whose request header is still its fields.
func (h *Handler) forward(w http.ResponseWriter, req *http.Request, hc *h1Conn, cfg Config, chain Chain, rt *router.Route, path, scheme string, st *reqState) bool {
	f := rt.Forward
	name, wc := f.PickCluster()
	st.backend = name
	cl := cfg.Cluster(name)
	if cl == nil {
		st.code = f.NotFoundCode
		w.WriteHeader(st.code)
		return true
	}
	client, _ := cl.RT.(*upstream.Client)

	// The request's fields go upstream as they are, edited on the way (see
	// h1Conn.upstreamFields), unless the header map is needed: an upgrade,
	// mirrors, header mutations, or a cluster that takes http.Header.
	if hc != nil && (client == nil || hc.head.Upgrade || len(f.Mirrors) != 0 ||
		!rt.RequestHeaders.Empty() || (wc != nil && !wc.RequestHeaders.Empty())) {
		hc.header()
		hc = nil
	}
	upgrade := false
	var hdr http.Header
	var fields []byte
	if hc != nil {
		fields = hc.upstreamFields(scheme)
	} else {
		hdr = req.Header
		upgrade = h.editRequestHeader(req, chain, rt, wc, scheme)
	}
	// The response's fields are written downstream as they are when nothing
	// edits them.
	rw, _ := w.(*respWriter)
	rawResp := client != nil && rw != nil && !upgrade && len(rw.hdr) == 0 &&
		rt.ResponseHeaders.Empty() && (wc == nil || wc.ResponseHeaders.Empty())
	// sekisho's client holds on to no request once its exchange is over: the
	// connection's own can be reused.
	var reuse *attempt
	if client != nil && rw != nil {
		reuse = &rw.c.up
	}

	host := req.Host
	if f.HostRewrite != "" {
		host = f.HostRewrite
	}
	fwdPath := httppath.Forward(f.RewritePath(rt, path))
	if strings.HasPrefix(fwdPath, "//") {
		fwdPath = "/" + strings.TrimLeft(fwdPath, "/")
	}

	// A body that can be replayed is buffered when retries or mirrors need it.
	var body []byte
	replayable := req.ContentLength == 0 && len(req.TransferEncoding) == 0
	needBody := (f.Retry != nil && f.Retry.NumRetries > 0) || len(f.Mirrors) > 0
	if needBody && !upgrade && req.ContentLength > 0 && req.ContentLength <= MaxReplayBody {
		body = make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, body); err != nil {
			st.code = http.StatusBadRequest
			w.WriteHeader(st.code)
			return true
		}
		replayable = true
	}

	for i := range f.Mirrors {
		m := &f.Mirrors[i]
		if replayable && m.Sampled() {
			if mc := cfg.Cluster(m.Cluster); mc != nil {
				h.mirror(req, mc, host, fwdPath, body)
			}
		}
	}

	ctx := req.Context()
	if f.Timeout > 0 && !upgrade {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}

	// out is copied (with its URL and context) for each attempt.
	out := http.Request{
		Method:     req.Method,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       host,
	}
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
		out.ContentLength = req.ContentLength
		if body != nil {
			out.ContentLength = int64(len(body))
		} else {
			out.Body = req.Body
			if req.ContentLength < 0 {
				out.ContentLength = -1
			}
		}
	}

	retries := 0
	if f.Retry != nil && replayable && !upgrade {
		retries = f.Retry.NumRetries
	}
	var (
		resp     *http.Response
		ep       *upstream.Endpoint
		lastFail int
	)
	// The current attempt's per-try timeout, cancelled when the attempt is
	// given up or, for the last one, when its response has been copied.
	var tries attemptContext
	defer tries.stop()
	for attempt := 0; ; attempt++ {
		ep = cl.Pick()
		if ep == nil {
			st.code = http.StatusServiceUnavailable
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(st.code)
			_, _ = io.WriteString(w, "no healthy upstream")
			return true
		}
		st.upstream = ep.Addr
		var perTry time.Duration
		if f.Retry != nil {
			perTry = f.Retry.PerTryTimeout
		}
		tryCtx := tries.next(ctx, perTry)
		try := reuse.prepare(&out, tryCtx, ep.Addr, fwdPath, req.URL.RawQuery)
		if body != nil {
			try.Body = io.NopCloser(bytes.NewReader(body))
			try.GetBody = replay(body)
		}
		var err error
		if client != nil {
			resp, err = client.RoundTripRaw(try, fields, rawResp)
		} else {
			resp, err = cl.RT.RoundTrip(try)
		}
		lastFail = failNone
		if err != nil {
			switch {
			case upstream.IsConnectError(err):
				lastFail = failConnect
			case ctx.Err() != nil:
				lastFail = failTimeout
			case tryCtx.Err() != nil:
				lastFail = failTimeout
			case isProtocolError(err):
				lastFail = failProtocol
			default:
				lastFail = failReset
			}
			cl.Done(ep, true)
			if req.Context().Err() != nil {
				// The client went away.
				st.code = 499
				return false
			}
			if ctx.Err() == nil && attempt < retries && h.retriable(f.Retry, lastFail, 0) {
				if !sleepCtx(ctx, f.Retry.Backoff(attempt+1)) {
					break
				}
				continue
			}
			break
		}
		if attempt < retries && f.Retry.RetriableStatus(resp.StatusCode) {
			cl.Done(ep, resp.StatusCode >= 500)
			drain(resp.Body)
			resp = nil
			if !sleepCtx(ctx, f.Retry.Backoff(attempt+1)) {
				lastFail = failTimeout
				break
			}
			continue
		}
		break
	}
	if resp == nil {
		switch {
		case lastFail == failTimeout || ctx.Err() != nil:
			st.code = http.StatusGatewayTimeout
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(st.code)
			_, _ = io.WriteString(w, "upstream request timeout")
		case lastFail == failProtocol:
			st.code = http.StatusBadGateway
			w.WriteHeader(st.code)
		default:
			st.code = http.StatusServiceUnavailable
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(st.code)
			_, _ = io.WriteString(w, "upstream connect error or disconnect/reset before headers")
		}
		return true
	}
	failed := resp.StatusCode >= 500
	defer func() { cl.Done(ep, failed) }()

	if upgrade && resp.StatusCode == http.StatusSwitchingProtocols {
		st.code = resp.StatusCode
		h.tunnel(w, resp, rt, wc)
		return true
	}

	// Response headers.
	dst := w.Header()
	st.code = resp.StatusCode
	if rawResp {
		head, rh := upstream.ResponseHead(resp)
		rw.writeUpstreamHead(resp.StatusCode, head, rh)
	} else {
		for k, vv := range resp.Header {
			dst[k] = vv
		}
		removeHop(dst)
		if wc != nil {
			wc.ResponseHeaders.Apply(dst)
		}
		rt.ResponseHeaders.Apply(dst)
		if _, ok := dst["Content-Type"]; !ok {
			// The response goes out with the Content-Type the upstream and
			// the route gave it, or none: never one guessed from the body.
			dst["Content-Type"] = nil
		}
		w.WriteHeader(resp.StatusCode)
	}

	flush := resp.ContentLength < 0 || resp.ProtoMajor == 2
	n, err := copyBody(w, resp.Body, flush)
	st.bytes = n
	trailer := resp.Trailer
	_ = resp.Body.Close() // resp must not be used after this

	if err != nil {
		if !errors.Is(err, context.Canceled) {
			failed = true
		}
		// The response is cut short: abort the downstream stream too, so the
		// client does not take a truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range trailer {
		dst[http.TrailerPrefix+k] = vv
	}
	return true
}

// editRequestHeader edits req.Header for the trip upstream: hop-by-hop
// fields out, forwarding fields in, then the weighted cluster's and the
// route's mutations. It reports whether the request is an upgrade the
// listener takes (a WebSocket), whose Connection and Upgrade stay.
func (h *Handler) editRequestHeader(req *http.Request, chain Chain, rt *router.Route, wc *router.WeightedCluster, scheme string) bool {
	upgrade := false
	hdr := req.Header
	if req.ProtoMajor == 1 && len(hdr["Upgrade"]) > 0 && headerHasToken(hdr["Connection"], "upgrade") {
		if chain != nil && chain.WebSocket() && strings.EqualFold(hdr.Get("Upgrade"), "websocket") {
			upgrade = true
		}
	}
	keepTE := headerHasToken(hdr["Te"], "trailers")
	var upgradeVal []string
	if upgrade {
		upgradeVal = hdr["Upgrade"]
	}
	removeHop(hdr)
	if keepTE {
		hdr["Te"] = []string{"trailers"}
	}
	if upgrade {
		hdr["Connection"] = []string{"Upgrade"}
		hdr["Upgrade"] = upgradeVal
	}
	if ip := remoteIP(req.RemoteAddr); ip != "" {
		if prior := hdr["X-Forwarded-For"]; len(prior) > 0 {
			hdr["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
		} else {
			hdr["X-Forwarded-For"] = []string{ip}
		}
	}
	if scheme == "https" {
		hdr["X-Forwarded-Proto"] = xfpHTTPS
	} else {
		hdr["X-Forwarded-Proto"] = xfpHTTP
	}
	if wc != nil {
		wc.RequestHeaders.Apply(hdr)
	}
	rt.RequestHeaders.Apply(hdr)
	return upgrade
}

// attempt is the request of an attempt upstream and its URL, reused from
// one request of a connection to the next.
type attempt struct {
	req http.Request // with the connection's context
	url url.URL
}

// prepare returns the request of an attempt: out with ctx and the URL of
// path and query at addr. It is a's own when ctx is the connection's, a new
// one otherwise (a is nil: always).
func (a *attempt) prepare(out *http.Request, ctx context.Context, addr, path, query string) *http.Request {
	if a == nil || ctx != a.req.Context() {
		r := out.WithContext(ctx)
		r.URL = &url.URL{Scheme: "http", Host: addr, Opaque: path, RawQuery: query}
		return r
	}
	r := &a.req
	r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = out.Method, out.Proto, out.ProtoMajor, out.ProtoMinor
	r.Header, r.Host, r.TransferEncoding = out.Header, out.Host, out.TransferEncoding
	r.Body, r.GetBody, r.ContentLength = out.Body, out.GetBody, out.ContentLength
	a.url = url.URL{Scheme: "http", Host: addr, Opaque: path, RawQuery: query}
	r.URL = &a.url
	return r
}

// replay gives a buffered request body again (http.Request.GetBody).
func replay(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func (h *Handler) retriable(p *router.RetryPolicy, fail, _ int) bool {
	switch fail {
	case failConnect:
		return p.ConnectFailure
	case failReset, failTimeout:
		return p.Reset || p.Status5xx || p.GatewayError
	}
	return false
}

// copyBody streams src to w with a pooled buffer, flushing after each write
// when flush is true (streams, gRPC, unknown lengths).
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	fl, _ := w.(http.Flusher)
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if flush && fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// tunnel completes an upgrade: the client's connection is taken over, the
// upstream's 101 is relayed, and bytes are copied both ways until one side
// closes.
func (h *Handler) tunnel(w http.ResponseWriter, resp *http.Response, rt *router.Route, wc *router.WeightedCluster) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if wc != nil {
		wc.ResponseHeaders.Apply(resp.Header)
	}
	rt.ResponseHeaders.Apply(resp.Header)
	if fw, ok := w.(*filteredWriter); ok {
		fw.rq.ApplyResponseEdits(resp.Header)
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	h.rt.TrackHijacked(conn, true)
	defer h.rt.TrackHijacked(conn, false)
	defer conn.Close()
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { _ = recover(); done <- struct{}{} }()
		_, _ = io.Copy(up, brw)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	go func() {
		defer func() { _ = recover(); done <- struct{}{} }()
		_, _ = io.Copy(conn, up)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	<-done
	// One side is done; closing both ends the other copy.
	_ = conn.Close()
	_ = up.Close()
	<-done
}

// mirror sends a copy of the request to a mirror cluster and drops the
// response. It never delays or changes the request itself.
func (h *Handler) mirror(req *http.Request, mc *upstream.Cluster, host, path string, body []byte) {
	ep := mc.Pick()
	if ep == nil {
		return
	}
	hdr := req.Header.Clone()
	out := &http.Request{
		Method:     req.Method,
		URL:        &url.URL{Scheme: "http", Host: ep.Addr, Opaque: path, RawQuery: req.URL.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       shadowHost(host),
	}
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				h.rt.Log().Error("panic mirroring request", "cluster", mc.Name, "panic", v)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := mc.RT.RoundTrip(out.WithContext(ctx))
		if err != nil {
			mc.Done(ep, true)
			return
		}
		failed := resp.StatusCode >= 500
		drain(resp.Body)
		mc.Done(ep, failed)
	}()
}

// shadowHost appends "-shadow" to the host part of a Host header.
func shadowHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}

func drain(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	_ = b.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func removeHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		if valueHasToken(v, token) {
			return true
		}
	}
	return false
}

// valueHasToken reports whether the comma-separated list v holds token.
func valueHasToken(v, token string) bool {
	for v != "" {
		var tok string
		tok, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(tok), token) {
			return true
		}
	}
	return false
}

func remoteIP(addr string) string { return ext.RemoteIP(addr) }

func isProtocolError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "malformed") || strings.Contains(s, "protocol error")
}

// attemptContext holds the context of the current attempt upstream.
type attemptContext struct{ cancel context.CancelFunc }

// next ends the previous attempt's context and returns the next one's:
// ctx bounded by timeout when it is not 0.
func (a *attemptContext) next(ctx context.Context, timeout time.Duration) context.Context {
	a.stop()
	if timeout <= 0 {
		return ctx
	}
	ctx, a.cancel = context.WithTimeout(ctx, timeout)
	return ctx
}

func (a *attemptContext) stop() {
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
}
