package auth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// result is the outcome of a check (the result label of checks_total).
type result int

const (
	resAllow result = iota
	resDenied
	resUnauthenticated
	resRedirect
	resCallback
	resLogout
	resBadRequest
	resUnavailable
	resError
	resUnknownPolicy
	resNoPolicy
	numResults
)

var resultNames = [numResults]string{
	resAllow:           "allow",
	resDenied:          "deny",
	resUnauthenticated: "unauthenticated",
	resRedirect:        "login_redirect",
	resCallback:        "login_callback",
	resLogout:          "logout",
	resBadRequest:      "bad_request",
	resUnavailable:     "unavailable",
	resError:           "error",
	resUnknownPolicy:   "unknown_policy",
	resNoPolicy:        "no_policy",
}

type metrics struct {
	checks      *prometheus.CounterVec
	unscoped    [numResults]prometheus.Counter // checks with no known policy
	jwksFetchV  *prometheus.CounterVec
	refreshV    *prometheus.CounterVec
	duration    prometheus.Histogram
	jwksFetch   func(result string)
	oidcRefresh func(result string)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authz_checks_total",
			Help: "Authorization checks by policy and result (allow, deny, unauthenticated, login_redirect, login_callback, logout, bad_request, unavailable, error, unknown_policy, no_policy).",
		}, []string{"policy", "result"}),
		jwksFetchV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authz_jwks_fetch_total",
			Help: "JWKS fetches by result (success, error).",
		}, []string{"result"}),
		refreshV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_authz_oidc_refresh_total",
			Help: "OIDC session refreshes by result (success, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sekisho_authz_check_duration_seconds",
			Help:    "Time to decide one check.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1, 2.5},
		}),
	}
	for _, c := range []prometheus.Collector{m.checks, m.jwksFetchV, m.refreshV, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("registering the authorization metrics"), err)
		}
	}
	for _, r := range []result{resUnknownPolicy, resNoPolicy} {
		m.unscoped[r] = m.checks.WithLabelValues("", resultNames[r])
	}
	m.jwksFetch = func(r string) { m.jwksFetchV.WithLabelValues(r).Inc() }
	m.oidcRefresh = func(r string) { m.refreshV.WithLabelValues(r).Inc() }
	return m, nil
}
