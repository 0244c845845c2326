// Package extauthz is the envoy.filters.http.ext_authz HTTP filter with a
// gRPC authorization service (envoy.service.auth.v3.Authorization), without
// the request body: each request it applies to is checked before the
// router; an OK answer edits the request (headers, query) and the response
// headers, a denial answers the request with the service's status, headers
// and body.
//
// Per route (ExtAuthzPerRoute) it is disabled, or checks with context
// extensions, which a route merges with its virtual host's (the route's
// win), as Envoy does.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/grpcclient"
)

// Name is the filter's name, and the dynamic metadata namespace Envoy's
// ext_authz filters store the service's metadata in whatever their name.
const Name = "envoy.filters.http.ext_authz"

// Defaults of the filter, as in Envoy.
const (
	defaultTimeout       = 200 * time.Millisecond
	defaultStatusOnError = http.StatusForbidden
)

// Metrics.
const (
	checksTotal   = "sekisho_ext_authz_checks_total"
	failOpenTotal = "sekisho_ext_authz_failure_open_total"
)

func init() {
	ext.RegisterHTTP(&ext.HTTPFilter{
		Name:     Name,
		Config:   &extauthzv3.ExtAuthz{},
		PerRoute: &extauthzv3.ExtAuthzPerRoute{},
		Fields: slices.Concat([]string{
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.grpc_service",
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.transport_api_version",
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.failure_mode_allow",
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.status_on_error",
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute.disabled",
			"envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute.check_settings",
			"envoy.extensions.filters.http.ext_authz.v3.CheckSettings.context_extensions",
			"envoy.type.v3.HttpStatus.code",
		}, grpcclient.Fields),
		Counters: []ext.CounterFamily{
			{Name: checksTotal, Help: "Authorization checks of the ext_authz filters, by filter and result (allowed, denied, error).", Labels: []string{"result"}},
			{Name: failOpenTotal, Help: "Requests an ext_authz filter let through because the authorization service failed (failure_mode_allow)."},
		},
		Decode:      decode,
		DecodeRoute: decodeRoute,
		Merge:       merge,
		Build:       build,
	})
}

// config is a checked ExtAuthz.
type config struct {
	service       *corev3.GrpcService
	failOpen      bool // failure_mode_allow
	statusOnError int
}

func decode(m proto.Message) (any, error) {
	c := m.(*extauthzv3.ExtAuthz)
	if v := c.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("transport_api_version: %v is not supported (V3 only)", v)
	}
	if c.GetGrpcService() == nil {
		return nil, errors.New("grpc_service: required")
	}
	status, err := ext.HTTPStatus(c.GetStatusOnError(), defaultStatusOnError)
	if err != nil {
		return nil, fmt.Errorf("status_on_error: %w", err)
	}
	return &config{service: c.GetGrpcService(), failOpen: c.GetFailureModeAllow(), statusOnError: status}, nil
}

// perRoute is an ExtAuthzPerRoute.
type perRoute struct {
	disabled bool
	ext      map[string]string // check_settings.context_extensions
}

func decodeRoute(m proto.Message) (any, error) {
	switch o := m.(*extauthzv3.ExtAuthzPerRoute).GetOverride().(type) {
	case *extauthzv3.ExtAuthzPerRoute_Disabled:
		if !o.Disabled {
			return nil, errors.New("disabled: only true is allowed")
		}
		return &perRoute{disabled: true}, nil
	case *extauthzv3.ExtAuthzPerRoute_CheckSettings:
		ext := o.CheckSettings.GetContextExtensions()
		r := &perRoute{}
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

// merge is a route's configuration: its own, whose context extensions, as
// in Envoy, are merged with its virtual host's (the route's win).
func merge(vhost, route any) any {
	vh, rt := vhost.(*perRoute), route.(*perRoute)
	if rt.disabled || len(vh.ext) == 0 {
		return rt
	}
	exts := make(map[string]string, len(vh.ext)+len(rt.ext))
	for k, v := range vh.ext {
		exts[k] = v
	}
	for k, v := range rt.ext {
		exts[k] = v
	}
	return &perRoute{ext: exts}
}

// filter is an ext_authz filter of a chain.
type filter struct {
	name    string
	client  authv3.AuthorizationClient
	timeout time.Duration // 0: none
	config
	log *slog.Logger

	grpcclient.Outcomes
}

func build(cfg any, b ext.BuildContext) (ext.Filter, error) {
	c := cfg.(*config)
	client, timeout, err := grpcclient.Service(b, c.service, defaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("grpc_service.%w", err)
	}
	return &filter{
		name:     b.Name(),
		client:   authv3.NewAuthorizationClient(client.Conn()),
		timeout:  timeout,
		config:   *c,
		log:      b.Log(),
		Outcomes: grpcclient.NewOutcomes(b, checksTotal, failOpenTotal),
	}, nil
}

// errErrorResponse marks a CheckResponse that carries error_response.
var errErrorResponse = errors.New("the authorization service answered an error_response")

func (f *filter) OnRequest(rq *ext.Request, route any) ext.Status {
	var exts map[string]string
	if r, _ := route.(*perRoute); r != nil {
		if r.disabled {
			return ext.Continue
		}
		exts = r.ext
	}
	ctx := rq.HTTP.Context()
	var cancel context.CancelFunc = func() {}
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
	}
	resp, err := f.client.Check(ctx, checkRequest(rq, exts))
	cancel()
	if err == nil && resp.GetErrorResponse() != nil {
		err = errErrorResponse
	}
	if err != nil {
		f.Errored.Inc()
		f.log.Debug("authorization check failed", "filter", f.name, "route", rq.Route, "error", err)
		if f.failOpen {
			f.FailedOpen.Inc()
			hdr := rq.HTTP.Header
			hdr["X-Envoy-Auth-Failure-Mode-Allowed"] = append(hdr["X-Envoy-Auth-Failure-Mode-Allowed"], "true")
			return ext.Continue
		}
		rq.Reply(f.statusOnError, "", nil)
		return ext.Stop
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
		rq.SetMetadata(f.name, md)
		if f.name != Name {
			rq.SetMetadata(Name, md)
		}
	}
	if resp.GetStatus().GetCode() == int32(codes.OK) {
		f.Allowed.Inc()
		allowed(rq, resp.GetOkResponse())
		return ext.Continue
	}
	f.Denied.Inc()
	d := resp.GetDeniedResponse()
	code := http.StatusForbidden
	if c := int(d.GetStatus().GetCode()); c >= 200 && c <= 599 {
		code = c
	}
	ops := ext.HeaderOps(d.GetHeaders(), false)
	rq.Reply(code, d.GetBody(), func(h http.Header) { ext.ApplyHeaderOps(h, ops, true) })
	return ext.Stop
}

// allowed applies an OK answer to the request.
func allowed(rq *ext.Request, ok *authv3.OkHttpResponse) {
	if ok == nil {
		return
	}
	hdr := rq.HTTP.Header
	ext.ApplyHeaderOps(hdr, ext.HeaderOps(ok.GetHeaders(), true), false)
	for _, k := range ok.GetHeadersToRemove() {
		if key, valid := ext.EditableHeader(k, ""); valid {
			delete(hdr, key)
		}
	}
	if len(ok.GetQueryParametersToSet()) > 0 || len(ok.GetQueryParametersToRemove()) > 0 {
		u := rq.HTTP.URL
		u.RawQuery = editQuery(u.RawQuery, ok.GetQueryParametersToSet(), ok.GetQueryParametersToRemove())
		rq.PathQuery = rq.Path
		if u.RawQuery != "" {
			rq.PathQuery += "?" + u.RawQuery
		}
	}
	rq.EditResponse(ext.HeaderOps(ok.GetResponseHeadersToAdd(), false))
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
func checkRequest(rq *ext.Request, extensions map[string]string) *authv3.CheckRequest {
	req := rq.HTTP
	hdrs := make(map[string]string, len(req.Header)+6)
	for k, vv := range req.Header {
		hdrs[strings.ToLower(k)] = strings.Join(vv, ",")
	}
	// What the connection manager adds before the filters run.
	if ip := rq.RemoteIP(); ip != "" {
		if prior := req.Header["X-Forwarded-For"]; len(prior) > 0 {
			hdrs["x-forwarded-for"] = strings.Join(prior, ", ") + ", " + ip
		} else {
			hdrs["x-forwarded-for"] = ip
		}
	}
	hdrs["x-forwarded-proto"] = rq.Scheme
	hdrs[":authority"] = req.Host
	hdrs[":method"] = req.Method
	hdrs[":path"] = rq.PathQuery
	hdrs[":scheme"] = rq.Scheme
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
			Time: timestamppb.New(rq.Start),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       strconv.FormatUint(rand.Uint64(), 10),
				Method:   req.Method,
				Headers:  hdrs,
				Path:     rq.PathQuery,
				Host:     req.Host,
				Scheme:   rq.Scheme,
				Protocol: proto,
			},
		},
		ContextExtensions: extensions,
	}
	if la := rq.LocalAddr; la != nil {
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
