// Package ratelimit is the envoy.filters.http.ratelimit HTTP filter: on the
// routes whose RateLimitPerRoute makes descriptors for a request, it asks
// the rate limit service (envoy.service.ratelimit.v3) and answers 429 when
// the service says the request is over the limit.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/filter/internal/descriptor"
	"github.com/sekisho/sekisho/proxy/grpcclient"
)

// Name is the filter's name.
const Name = "envoy.filters.http.ratelimit"

// Defaults of the filter, as in Envoy.
const (
	defaultTimeout       = 20 * time.Millisecond
	defaultStatusOnError = http.StatusInternalServerError
)

// Metrics.
const (
	checksTotal   = "sekisho_ratelimit_checks_total"
	failOpenTotal = "sekisho_ratelimit_failure_open_total"
)

func init() {
	fields := []string{
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit.domain",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit.timeout",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit.failure_mode_deny",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit.rate_limit_service",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit.status_on_error",
		"envoy.config.ratelimit.v3.RateLimitServiceConfig.grpc_service",
		"envoy.config.ratelimit.v3.RateLimitServiceConfig.transport_api_version",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute.rate_limits",
		"envoy.type.v3.HttpStatus.code",
	}
	ext.RegisterHTTP(&ext.HTTPFilter{
		Name:     Name,
		Config:   &ratelimitv3.RateLimit{},
		PerRoute: &ratelimitv3.RateLimitPerRoute{},
		Fields:   slices.Concat(fields, grpcclient.Fields, descriptor.Fields),
		Counters: []ext.CounterFamily{
			{Name: checksTotal, Help: "Rate limit service calls of the ratelimit filters, by filter and result (allowed, denied, error).", Labels: []string{"result"}},
			{Name: failOpenTotal, Help: "Requests a ratelimit filter let through because the rate limit service failed (failure_mode_deny false)."},
		},
		Decode:      decode,
		DecodeRoute: decodeRoute,
		Build:       build,
	})
}

// config is a checked RateLimit.
type config struct {
	domain        string
	service       *corev3.GrpcService
	timeout       time.Duration // 0: none
	failClosed    bool          // failure_mode_deny
	statusOnError int
}

func decode(m proto.Message) (any, error) {
	c := m.(*ratelimitv3.RateLimit)
	if c.GetDomain() == "" {
		return nil, errors.New("domain: required")
	}
	svc := c.GetRateLimitService()
	if svc == nil {
		return nil, errors.New("rate_limit_service: required")
	}
	if v := svc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("rate_limit_service.transport_api_version: %v is not supported (V3 only)", v)
	}
	if svc.GetGrpcService() == nil {
		return nil, errors.New("rate_limit_service.grpc_service: required")
	}
	if svc.GetGrpcService().Timeout != nil {
		return nil, errors.New("rate_limit_service.grpc_service.timeout: the ratelimit filter's own timeout bounds the call; set timeout instead")
	}
	timeout := defaultTimeout
	if c.Timeout != nil {
		if err := c.GetTimeout().CheckValid(); err != nil || c.GetTimeout().AsDuration() < 0 {
			return nil, fmt.Errorf("timeout: %v is not a duration", c.GetTimeout())
		}
		timeout = c.GetTimeout().AsDuration()
	}
	status, err := ext.HTTPStatus(c.GetStatusOnError(), defaultStatusOnError)
	if err != nil {
		return nil, fmt.Errorf("status_on_error: %w", err)
	}
	return &config{
		domain:        c.GetDomain(),
		service:       svc.GetGrpcService(),
		timeout:       timeout,
		failClosed:    c.GetFailureModeDeny(),
		statusOnError: status,
	}, nil
}

// perRoute is a RateLimitPerRoute.
type perRoute struct {
	limits []*descriptor.Policy
}

func decodeRoute(m proto.Message) (any, error) {
	limits, err := descriptor.Compile(m.(*ratelimitv3.RateLimitPerRoute).GetRateLimits(), true)
	if err != nil {
		return nil, err
	}
	return &perRoute{limits: limits}, nil
}

// filter is a ratelimit filter of a chain.
type filter struct {
	name   string
	client rlsv3.RateLimitServiceClient
	config
	log *slog.Logger

	grpcclient.Outcomes
}

func build(cfg any, b ext.BuildContext) (ext.Filter, error) {
	c := cfg.(*config)
	client, _, err := grpcclient.Service(b, c.service, 0)
	if err != nil {
		return nil, fmt.Errorf("rate_limit_service.grpc_service.%w", err)
	}
	return &filter{
		name:     b.Name(),
		client:   rlsv3.NewRateLimitServiceClient(client.Conn()),
		config:   *c,
		log:      b.Log(),
		Outcomes: grpcclient.NewOutcomes(b, checksTotal, failOpenTotal),
	}, nil
}

func (f *filter) OnRequest(rq *ext.Request, route any) ext.Status {
	r, _ := route.(*perRoute)
	if r == nil || len(r.limits) == 0 {
		return ext.Continue
	}
	in := descriptor.NewInput(rq)
	var descs []*commonrlv3.RateLimitDescriptor
	var buf []descriptor.Entry
	for _, p := range r.limits {
		var ok bool
		buf, ok = p.Entries(in, buf[:0])
		if !ok {
			continue
		}
		d := &commonrlv3.RateLimitDescriptor{Entries: make([]*commonrlv3.RateLimitDescriptor_Entry, len(buf)), HitsAddend: p.HitsAddend()}
		for i, e := range buf {
			d.Entries[i] = &commonrlv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value}
		}
		descs = append(descs, d)
	}
	if len(descs) == 0 {
		return ext.Continue
	}
	ctx := rq.HTTP.Context()
	var cancel context.CancelFunc = func() {}
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
	}
	resp, err := f.client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: f.domain, Descriptors: descs})
	cancel()
	if err != nil {
		f.Errored.Inc()
		f.log.Debug("rate limit service call failed", "filter", f.name, "route", rq.Route, "error", err)
		if f.failClosed {
			rq.Reply(f.statusOnError, "", nil)
			return ext.Stop
		}
		f.FailedOpen.Inc()
		return ext.Continue
	}
	respOps := serviceHeaders(resp.GetResponseHeadersToAdd())
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		f.Denied.Inc()
		rq.Reply(http.StatusTooManyRequests, string(resp.GetRawBody()), func(h http.Header) {
			ext.ApplyHeaderOps(h, respOps, false)
			h["X-Envoy-Ratelimited"] = []string{"true"}
		})
		return ext.Stop
	}
	f.Allowed.Inc()
	ext.ApplyHeaderOps(rq.HTTP.Header, serviceHeaders(resp.GetRequestHeadersToAdd()), false)
	rq.EditResponse(respOps)
	return ext.Continue
}

// serviceHeaders turns the headers a rate limit service answered into
// edits that add them.
func serviceHeaders(hvs []*corev3.HeaderValue) []ext.HeaderOp {
	if len(hvs) == 0 {
		return nil
	}
	out := make([]ext.HeaderOp, 0, len(hvs))
	for _, hv := range hvs {
		v := hv.GetValue()
		if v == "" && len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		if key, ok := ext.EditableHeader(hv.GetKey(), v); ok {
			out = append(out, ext.HeaderOp{Key: key, Value: v, Action: ext.HeaderAdd})
		}
	}
	return out
}
