package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server. Every field may be left zero.
type Options struct {
	Logger *slog.Logger
	// Registerer gets the service's metrics (prefix sekisho_authz_). When it
	// is also a prometheus.Gatherer (a *prometheus.Registry), Handler serves
	// it on /metrics. Default: a registry of the server's own.
	Registerer prometheus.Registerer
	// HTTPClient fetches JWKS documents and talks to OIDC providers.
	// Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Clock is the time tokens, sessions and caches are checked against.
	// Default: time.Now.
	Clock func() time.Time
	// TokenCacheSize bounds the verified bearer tokens each policy keeps, so
	// that a client reusing its token is not verified again on every
	// request (as Envoy's jwt_cache_config). 0: 16 384; negative: no cache,
	// every request verifies its token's signature.
	TokenCacheSize int
}

// Server is the authorization service. Its Check implements
// authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	log      *slog.Logger
	clock    func() time.Time
	client   *http.Client
	gatherer prometheus.Gatherer
	m        *metrics

	snap atomic.Pointer[snapshot]

	tokenCache int // verified tokens kept per policy; 0: none

	unknownMu     sync.Mutex
	unknownLogged map[string]time.Time

	cfgMu      sync.Mutex // serialises SetConfig; guards the registries
	keySources map[string]*keySource
	providers  map[string]*oidcProvider
}

type snapshot struct {
	policies map[string]*policy
}

// policy is the compiled state of one Policy. Its caches live as long as
// the policy's configuration is unchanged.
type policy struct {
	id        string
	fp        [32]byte
	jwt       *jwtAuth
	oidc      *oidcAuth
	authz     *authorizer
	claimHdr  []string // every claim header of the policy, lower case
	counters  [numResults]prometheus.Counter
	redirect  string // OIDC redirect path
	logoutURL string // OIDC logout path
}

// NewServer makes a Server with no configuration: every check is denied
// until SetConfig succeeds.
func NewServer(opts Options) (*Server, error) {
	s := &Server{
		log:        opts.Logger,
		clock:      opts.Clock,
		client:     opts.HTTPClient,
		keySources: map[string]*keySource{},
		providers:  map[string]*oidcProvider{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	switch {
	case opts.TokenCacheSize == 0:
		s.tokenCache = defaultTokenCacheSize
	case opts.TokenCacheSize > 0:
		s.tokenCache = opts.TokenCacheSize
	}
	reg := opts.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// SetConfig validates c and makes it the configuration checks use. The JWKS
// caches and OIDC discoveries of providers that stay are kept, and so is the
// whole state of a policy whose configuration is unchanged. On an error
// (which names the policy and field) the previous configuration stays.
func (s *Server) SetConfig(c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()

	keySources := map[string]*keySource{}
	providers := map[string]*oidcProvider{}
	for _, pc := range c.Policies {
		if pc.JWT != nil {
			for _, pr := range pc.JWT.Providers {
				if pr.RemoteJWKS == nil {
					continue
				}
				k := remoteKey(pr.RemoteJWKS)
				if _, ok := keySources[k]; ok {
					continue
				}
				ks := s.keySources[k]
				if ks == nil {
					ks = newRemoteKeySource(pr.RemoteJWKS.URI, time.Duration(pr.RemoteJWKS.CacheDuration), s.client, s.clock, s.log, s.m.jwksFetch)
				}
				keySources[k] = ks
			}
		}
		if pc.OIDC != nil {
			iss := pc.OIDC.Issuer
			if _, ok := providers[iss]; ok {
				continue
			}
			p := s.providers[iss]
			if p == nil {
				p = &oidcProvider{issuer: iss, client: s.client, clock: s.clock, log: s.log, fetchC: s.m.jwksFetch}
			}
			providers[iss] = p
		}
	}

	old := s.snap.Load()
	next := &snapshot{policies: make(map[string]*policy, len(c.Policies))}
	for _, pc := range c.Policies {
		b, err := json.Marshal(pc)
		if err != nil {
			return fmt.Errorf("policy %q: %w", pc.ID, err)
		}
		fp := sha256.Sum256(b)
		if old != nil {
			if op := old.policies[pc.ID]; op != nil && op.fp == fp {
				next.policies[pc.ID] = op
				continue
			}
		}
		p, err := s.buildPolicy(pc, fp, keySources, providers)
		if err != nil {
			return fmt.Errorf("policy %q: %w", pc.ID, err)
		}
		next.policies[pc.ID] = p
	}
	s.keySources, s.providers = keySources, providers
	s.snap.Store(next)
	s.log.Info("authorization config applied", "policies", len(next.policies))
	return nil
}

func remoteKey(r *RemoteJWKS) string {
	return r.URI + "\x00" + time.Duration(r.CacheDuration).String()
}

func (s *Server) buildPolicy(pc Policy, fp [32]byte, keySources map[string]*keySource, providers map[string]*oidcProvider) (*policy, error) {
	p := &policy{id: pc.ID, fp: fp}
	seen := map[string]bool{}
	addHdr := func(chs []ClaimToHeader) {
		for _, ch := range chs {
			h := strings.ToLower(ch.Header)
			if !seen[h] {
				seen[h] = true
				p.claimHdr = append(p.claimHdr, h)
			}
		}
	}
	if pc.JWT != nil {
		for _, pr := range pc.JWT.Providers {
			addHdr(pr.ClaimToHeaders)
		}
	}
	if pc.OIDC != nil {
		addHdr(pc.OIDC.ClaimToHeaders)
	}
	sort.Strings(p.claimHdr)

	if pc.JWT != nil {
		keys := make([]*keySource, len(pc.JWT.Providers))
		for i, pr := range pc.JWT.Providers {
			if pr.RemoteJWKS != nil {
				keys[i] = keySources[remoteKey(pr.RemoteJWKS)]
				continue
			}
			ks, err := parseJWKS([]byte(pr.LocalJWKS))
			if err != nil {
				return nil, fmt.Errorf("jwt.providers[%d].localJWKS: %w", i, err)
			}
			keys[i] = newStaticKeySource(ks)
		}
		p.jwt = newJWTAuth(pc.JWT, keys, s.clock, p.claimHdr, s.tokenCache)
	}
	if pc.OIDC != nil {
		o, err := newOIDCAuth(*pc.OIDC, providers[pc.OIDC.Issuer], s.clock, s.log, s.client, s.m.oidcRefresh, p.claimHdr, s.tokenCache)
		if err != nil {
			return nil, fmt.Errorf("oidc: %w", err)
		}
		p.oidc, p.redirect, p.logoutURL = o, pc.OIDC.RedirectPath, pc.OIDC.LogoutPath
	}
	if pc.Authorization != nil {
		p.authz = newAuthorizer(pc.Authorization)
	}
	for r := range resUnknownPolicy {
		p.counters[r] = s.m.checks.WithLabelValues(pc.ID, resultNames[r])
	}
	return p, nil
}

// Ready reports whether a configuration has been applied.
func (s *Server) Ready() error {
	if s.snap.Load() == nil {
		return errors.New("no authorization configuration applied yet")
	}
	return nil
}

// Handler serves /healthz (the process is up), /readyz (Ready) and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// Check decides one request. It never returns an error: every failure is
// an answer (a denial when in doubt).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	resp, p, res := s.check(ctx, req)
	if p != nil {
		p.counters[res].Inc()
	} else {
		s.m.unscoped[res].Inc()
	}
	s.m.duration.Observe(time.Since(start).Seconds())
	return resp, nil
}

func (s *Server) check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, *policy, result) {
	pid := req.GetAttributes().GetContextExtensions()[PolicyKey]
	if pid == "" {
		return deniedResponse(typev3.StatusCode_Forbidden, "forbidden"), nil, resNoPolicy
	}
	var p *policy
	if snap := s.snap.Load(); snap != nil {
		p = snap.policies[pid]
	}
	if p == nil {
		s.warnUnknown(pid)
		return deniedResponse(typev3.StatusCode_Forbidden, "forbidden"), nil, resUnknownPolicy
	}
	r, err := readRequest(req)
	if err != nil {
		return deniedResponse(typev3.StatusCode_BadRequest, "bad request: "+err.Error()), p, resBadRequest
	}
	resp, res := p.check(ctx, s, r)
	return resp, p, res
}

func (p *policy) check(ctx context.Context, s *Server, r *request) (*authv3.CheckResponse, result) {
	if p.oidc != nil {
		if r.path == p.redirect {
			return p.oidc.callback(ctx, r)
		}
		if p.logoutURL != "" && r.path == p.logoutURL {
			return p.oidc.logout(ctx, r)
		}
	}
	var x okParts
	var id *identity
	if p.jwt != nil {
		res, loc, found, err := p.jwt.authenticate(ctx, r)
		switch {
		case found && err == nil:
			id = res.id
			if !res.prov.forward {
				carrierRemoval(r, loc, &x)
			}
		case p.oidc != nil:
			// The OIDC login decides.
		case found && errors.Is(err, errNoKeys):
			s.log.Warn("no JWT verification keys", "policy", p.id, "error", err)
			return unavailable(), resUnavailable
		case found:
			s.log.Debug("token refused", "policy", p.id, "error", err)
			return invalidToken(), resUnauthenticated
		case !p.jwt.optional:
			return deniedResponse(typev3.StatusCode_Unauthorized, "authentication required",
				setHeader("www-authenticate", "Bearer")), resUnauthenticated
		}
	}
	if id == nil && p.oidc != nil {
		var resp *authv3.CheckResponse
		var res result
		id, resp, res = p.oidc.authenticate(ctx, r, &x)
		if resp != nil {
			return resp, res
		}
	}
	if p.authz != nil {
		if allow, rule := p.authz.decide(r, id); !allow {
			if id == nil {
				var hs []*corev3.HeaderValueOption
				if p.jwt != nil {
					hs = append(hs, setHeader("www-authenticate", "Bearer"))
				}
				return deniedResponse(typev3.StatusCode_Unauthorized, "authentication required", hs...), resUnauthenticated
			}
			s.log.Debug("request denied by rule", "policy", p.id, "rule", rule, "path", r.path, "method", r.method)
			return deniedResponse(typev3.StatusCode_Forbidden, "forbidden"), resDenied
		}
	}
	return okResponse(id, p.claimHdr, &x), resAllow
}

// warnUnknown logs a check for an unknown policy, once a minute per policy
// ID.
func (s *Server) warnUnknown(pid string) {
	now := time.Now()
	s.unknownMu.Lock()
	if s.unknownLogged == nil || len(s.unknownLogged) > 1000 {
		s.unknownLogged = map[string]time.Time{}
	}
	last, ok := s.unknownLogged[pid]
	if ok && now.Sub(last) < time.Minute {
		s.unknownMu.Unlock()
		return
	}
	s.unknownLogged[pid] = now
	s.unknownMu.Unlock()
	s.log.Warn("check for an unknown policy; denied", "policy", pid)
}
