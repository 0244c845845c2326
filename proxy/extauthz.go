package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// extAuthzNamespace is the dynamic metadata namespace Envoy's ext_authz
// filters store the service's metadata in.
const extAuthzNamespace = "envoy.filters.http.ext_authz"

// Defaults of the ext_authz filter, as in Envoy.
const (
	defaultAuthzTimeout       = 200 * time.Millisecond
	defaultAuthzStatusOnError = http.StatusForbidden
)

// authzFilter is a compiled envoy.filters.http.ext_authz (gRPC service).
type authzFilter struct {
	client        *grpcClient
	timeout       time.Duration // 0: none
	failOpen      bool          // failure_mode_allow
	statusOnError int

	allowed, denied, errored, failedOpen prometheus.Counter
}

func compileExtAuthz(name string, c *extauthzv3.ExtAuthz, env *compileEnv) (*authzFilter, error) {
	if v := c.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("transport_api_version: %v is not supported (V3 only)", v)
	}
	if c.GetGrpcService() == nil {
		return nil, errors.New("grpc_service: required")
	}
	client, timeout, err := env.grpcService(c.GetGrpcService(), defaultAuthzTimeout)
	if err != nil {
		return nil, fmt.Errorf("grpc_service.%w", err)
	}
	status, err := httpStatus(c.GetStatusOnError(), defaultAuthzStatusOnError)
	if err != nil {
		return nil, fmt.Errorf("status_on_error: %w", err)
	}
	m, gw := env.r.metrics, env.r.metrics.gateway
	return &authzFilter{
		client:        client,
		timeout:       timeout,
		failOpen:      c.GetFailureModeAllow(),
		statusOnError: status,
		allowed:       m.authzChecks.WithLabelValues(gw, name, "allowed"),
		denied:        m.authzChecks.WithLabelValues(gw, name, "denied"),
		errored:       m.authzChecks.WithLabelValues(gw, name, "error"),
		failedOpen:    m.authzFailOpen.WithLabelValues(gw, name),
	}, nil
}

// authzRoute is an ExtAuthzPerRoute.
type authzRoute struct {
	disabled bool
	ext      map[string]string // check_settings.context_extensions
}

func compileAuthzRoute(c *extauthzv3.ExtAuthzPerRoute) (*authzRoute, error) {
	switch o := c.GetOverride().(type) {
	case *extauthzv3.ExtAuthzPerRoute_Disabled:
		if !o.Disabled {
			return nil, errors.New("disabled: only true is allowed")
		}
		return &authzRoute{disabled: true}, nil
	case *extauthzv3.ExtAuthzPerRoute_CheckSettings:
		ext := o.CheckSettings.GetContextExtensions()
		r := &authzRoute{}
		if len(ext) > 0 {
			r.ext = make(map[string]string, len(ext))
			for k, v := range ext {
				r.ext[k] = v
			}
		}
		return r, nil
	}
	return nil, errors.New("one of disabled and check_settings is required")
}

// errAuthzErrorResponse marks a CheckResponse that carries error_response.
var errAuthzErrorResponse = errors.New("the authorization service answered an error_response")

// extAuthz runs an ext_authz filter; it reports whether it answered the
// request.
func (fr *filterRun) extAuthz(f *httpFilter, rf *routeFilter) bool {
	a := f.authz
	var ext map[string]string
	if rf != nil && rf.authz != nil {
		if rf.authz.disabled {
			return false
		}
		ext = rf.authz.ext
	}
	ctx := fr.req.Context()
	var cancel context.CancelFunc = func() {}
	if a.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
	}
	resp, err := a.client.authz.Check(ctx, fr.checkRequest(ext))
	cancel()
	if err == nil && resp.GetErrorResponse() != nil {
		err = errAuthzErrorResponse
	}
	if err != nil {
		a.errored.Inc()
		fr.h.rt.log.Debug("authorization check failed", "filter", f.name, "route", fr.route.Name, "error", err)
		if a.failOpen {
			a.failedOpen.Inc()
			hdr := fr.req.Header
			hdr["X-Envoy-Auth-Failure-Mode-Allowed"] = append(hdr["X-Envoy-Auth-Failure-Mode-Allowed"], "true")
			return false
		}
		fr.reply(a.statusOnError, "", nil)
		return true
	}
	md := resp.GetDynamicMetadata()
	// OkHttpResponse.dynamic_metadata is deprecated and, as in Envoy,
	// preferred when set.
	//lint:ignore SA1019 honoured as Envoy honours it
	if omd := resp.GetOkResponse().GetDynamicMetadata(); omd != nil {
		md = omd
	}
	if len(md.GetFields()) > 0 {
		// Under the filter's name; and, as Envoy stores it whatever the
		// filter's name, under envoy.filters.http.ext_authz.
		fr.setMetadata(f.name, md)
		if f.name != extAuthzNamespace {
			fr.setMetadata(extAuthzNamespace, md)
		}
	}
	if resp.GetStatus().GetCode() == int32(codes.OK) {
		a.allowed.Inc()
		fr.authzAllowed(resp.GetOkResponse())
		return false
	}
	a.denied.Inc()
	d := resp.GetDeniedResponse()
	code := http.StatusForbidden
	if c := int(d.GetStatus().GetCode()); c >= 200 && c <= 599 {
		code = c
	}
	ops := headerOps(d.GetHeaders(), false)
	fr.reply(code, d.GetBody(), func(h http.Header) { applyHeaderOps(h, ops, true) })
	return true
}

// authzAllowed applies an OK answer to the request.
func (fr *filterRun) authzAllowed(ok *authv3.OkHttpResponse) {
	if ok == nil {
		return
	}
	hdr := fr.req.Header
	applyHeaderOps(hdr, headerOps(ok.GetHeaders(), true), false)
	for _, k := range ok.GetHeadersToRemove() {
		if key, valid := editableHeader(k, ""); valid {
			delete(hdr, key)
		}
	}
	if len(ok.GetQueryParametersToSet()) > 0 || len(ok.GetQueryParametersToRemove()) > 0 {
		u := fr.req.URL
		u.RawQuery = editQuery(u.RawQuery, ok.GetQueryParametersToSet(), ok.GetQueryParametersToRemove())
		fr.pathQuery = fr.path
		if u.RawQuery != "" {
			fr.pathQuery += "?" + u.RawQuery
		}
	}
	fr.addResponse(headerOps(ok.GetResponseHeadersToAdd(), false))
}

// editQuery sets and removes query parameters (names compared as sent),
// keeping the order of the others.
func editQuery(raw string, set []*corev3.QueryParameter, remove []string) string {
	type param struct{ k, kv string }
	var ps []param
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, _, _ := strings.Cut(kv, "=")
		ps = append(ps, param{k, kv})
	}
	for _, s := range set {
		kv := s.GetKey() + "=" + s.GetValue()
		done := false
		out := ps[:0]
		for _, p := range ps {
			if p.k == s.GetKey() {
				if done {
					continue
				}
				p.kv, done = kv, true
			}
			out = append(out, p)
		}
		ps = out
		if !done {
			ps = append(ps, param{s.GetKey(), kv})
		}
	}
	for _, r := range remove {
		out := ps[:0]
		for _, p := range ps {
			if p.k != r {
				out = append(out, p)
			}
		}
		ps = out
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.kv)
	}
	return b.String()
}

// checkRequest builds the CheckRequest of the request, as Envoy's
// ext_authz does without a request body.
func (fr *filterRun) checkRequest(ext map[string]string) *authv3.CheckRequest {
	req := fr.req
	hdrs := make(map[string]string, len(req.Header)+6)
	for k, vv := range req.Header {
		hdrs[strings.ToLower(k)] = strings.Join(vv, ",")
	}
	// What the connection manager adds before the filters run.
	if ip := remoteIP(req.RemoteAddr); ip != "" {
		if prior := req.Header["X-Forwarded-For"]; len(prior) > 0 {
			hdrs["x-forwarded-for"] = strings.Join(prior, ", ") + ", " + ip
		} else {
			hdrs["x-forwarded-for"] = ip
		}
	}
	hdrs["x-forwarded-proto"] = fr.scheme
	hdrs[":authority"] = req.Host
	hdrs[":method"] = req.Method
	hdrs[":path"] = fr.pathQuery
	hdrs[":scheme"] = fr.scheme
	proto := "HTTP/1.1"
	switch {
	case req.ProtoMajor == 2:
		proto = "HTTP/2"
	case req.ProtoMajor == 1 && req.ProtoMinor == 0:
		proto = "HTTP/1.0"
	}
	attrs := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(req.RemoteAddr)},
		Destination: &authv3.AttributeContext_Peer{},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(fr.start),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       strconv.FormatUint(rand.Uint64(), 10),
				Method:   req.Method,
				Headers:  hdrs,
				Path:     fr.pathQuery,
				Host:     req.Host,
				Scheme:   fr.scheme,
				Protocol: proto,
			},
		},
		ContextExtensions: ext,
	}
	if la := fr.localAddr(); la != nil {
		attrs.Destination.Address = socketAddress(la.String())
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

// socketAddress is the Address of "host:port" (nil when it is not one).
func socketAddress(hostPort string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}
