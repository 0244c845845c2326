package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// OIDC timings.
const (
	stateTTL          = 10 * time.Minute
	refreshBefore     = 60 * time.Second
	providerTimeout   = 10 * time.Second
	discoveryMinRetry = time.Second
	discoveryMaxRetry = time.Minute
	// refreshedReuse is how long the answer of a refresh is handed to
	// requests still carrying the old cookie (a page's parallel requests).
	refreshedReuse = 30 * time.Second
	// defaultSessionTTL applies when neither the token response nor the ID
	// token says when the session ends.
	defaultSessionTTL = time.Hour
	stateCookiePrefix = "sekisho-oidc-"
	sessionCacheSize  = 8192
)

var errProviderDown = errors.New("identity provider unavailable")

// oidcProvider is the discovered metadata of one issuer, shared by every
// policy that logs in with it. Discovery happens on first use; failures are
// retried with a growing backoff, and a request that needs the provider
// meanwhile gets 503.
type oidcProvider struct {
	issuer string
	client *http.Client
	clock  func() time.Time
	log    *slog.Logger
	fetchC func(string)

	d atomic.Pointer[discovery]

	mu       sync.Mutex
	failures int
	next     time.Time
	lastErr  error
}

type discovery struct {
	endpoint   oauth2.Endpoint
	endSession string
	algs       []string
	keys       *keySource
}

func (p *oidcProvider) get(ctx context.Context) (*discovery, error) {
	if d := p.d.Load(); d != nil {
		return d, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.d.Load(); d != nil {
		return d, nil
	}
	now := p.clock()
	if now.Before(p.next) {
		return nil, fmt.Errorf("%w: %v", errProviderDown, p.lastErr)
	}
	d, err := p.discover(ctx)
	if err != nil {
		p.failures++
		backoff := discoveryMinRetry << min(p.failures-1, 10)
		if backoff > discoveryMaxRetry {
			backoff = discoveryMaxRetry
		}
		p.next, p.lastErr = now.Add(backoff), err
		p.log.Warn("OIDC discovery failed", "issuer", p.issuer, "error", err, "retry_in", backoff)
		return nil, fmt.Errorf("%w: %v", errProviderDown, err)
	}
	p.failures = 0
	p.d.Store(d)
	p.log.Info("OIDC provider discovered", "issuer", p.issuer)
	return d, nil
}

func (p *oidcProvider) discover(ctx context.Context) (*discovery, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), providerTimeout)
	defer cancel()
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI    string   `json:"jwks_uri"`
		EndSession string   `json:"end_session_endpoint"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return nil, err
	}
	if err := checkHTTPURL(meta.JWKSURI); err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	d := &discovery{endpoint: prov.Endpoint(), endSession: meta.EndSession}
	d.endpoint.AuthStyle = oauth2.AuthStyleInHeader
	for _, a := range meta.Algs {
		if supportedAlgorithms[a] {
			d.algs = append(d.algs, a)
		}
	}
	if len(d.algs) == 0 {
		d.algs = []string{"RS256"}
	}
	d.keys = newRemoteKeySource(meta.JWKSURI, DefaultJWKSCacheDuration, p.client, p.clock, p.log, p.fetchC)
	return d, nil
}

// keySetVerifier lets go-oidc verify signatures with a keySource (its JWKS
// cache with the rate-limited refetch on an unknown kid).
type keySetVerifier struct {
	keys *keySource
	algs []string
}

func (k keySetVerifier) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	p := jwt.NewParser(jwt.WithValidMethods(k.algs), jwt.WithoutClaimsValidation())
	_, err := p.Parse(raw, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, _, err := k.keys.key(ctx, kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		return key.key, nil
	})
	if err != nil {
		return nil, err
	}
	parts := strings.Split(raw, ".")
	return base64.RawURLEncoding.DecodeString(parts[1])
}

// oidcAuth is the OIDC part of one policy.
type oidcAuth struct {
	cfg        OIDC // defaults filled in
	prov       *oidcProvider
	seal       *sealer
	scopes     []string
	claimHdr   []claimHeader
	policyHdr  []string
	clock      func() time.Time
	log        *slog.Logger
	client     *http.Client
	refreshC   func(string)
	adSession  string
	adState    string
	sessions   *verifiedCache[*session]
	bearers    *verifiedCache[*identity]
	refreshed  *verifiedCache[*refreshAnswer]
	verifierMu sync.Mutex
	verifier   atomic.Pointer[verifierFor]

	flightMu sync.Mutex
	flights  map[string]*refreshFlight
}

type verifierFor struct {
	d *discovery
	v *oidc.IDTokenVerifier
}

// sessionData is what the session cookie holds.
type sessionData struct {
	IDToken      string `json:"i"`
	AccessToken  string `json:"a,omitempty"`
	RefreshToken string `json:"r,omitempty"`
	Expiry       int64  `json:"e"` // unix seconds
}

type session struct {
	data sessionData
	exp  time.Time
	id   *identity
}

// stateData is what a login-state cookie holds.
type stateData struct {
	State       string `json:"s"`
	Nonce       string `json:"n"`
	Verifier    string `json:"v"`
	URL         string `json:"u"`
	RedirectURI string `json:"r"`
	Expiry      int64  `json:"e"`
}

type refreshAnswer struct {
	sess    *session
	value   string // the new cookie value
	attrs   cookieAttrs
	cookies []string
}

type refreshFlight struct {
	done chan struct{}
	ans  *refreshAnswer
	err  error
}

func newOIDCAuth(cfg OIDC, prov *oidcProvider, clock func() time.Time, log *slog.Logger, client *http.Client, refreshC func(string), policyHdr []string, tokenCacheSize int) (*oidcAuth, error) {
	key, err := decodeSessionKey(cfg.SessionKey)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.CookieSameSite == "" {
		cfg.CookieSameSite = "Lax"
	}
	if cfg.PostLogoutRedirect == "" {
		cfg.PostLogoutRedirect = DefaultPostLogoutRedirect
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range cfg.Scopes {
		if !containsString(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	bind := cfg.Issuer + "\x00" + cfg.ClientID + "\x00"
	return &oidcAuth{
		cfg:       cfg,
		prov:      prov,
		seal:      s,
		scopes:    scopes,
		claimHdr:  claimHeadersOf(cfg.ClaimToHeaders),
		policyHdr: policyHdr,
		clock:     clock,
		log:       log,
		client:    client,
		refreshC:  refreshC,
		adSession: "sekisho-session\x00" + bind + cfg.CookieName,
		adState:   "sekisho-oidc-state\x00" + bind,
		sessions:  newVerifiedCache[*session](sessionCacheSize),
		bearers:   newVerifiedCache[*identity](tokenCacheSize),
		refreshed: newVerifiedCache[*refreshAnswer](1024),
		flights:   map[string]*refreshFlight{},
	}, nil
}

func (o *oidcAuth) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), providerTimeout)
	return oidc.ClientContext(c, o.client), cancel
}

func (o *oidcAuth) oauth2Config(d *discovery, redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: o.cfg.ClientSecret,
		Endpoint:     d.endpoint,
		RedirectURL:  redirectURI,
		Scopes:       o.scopes,
	}
}

func (o *oidcAuth) idVerifier(d *discovery) *oidc.IDTokenVerifier {
	if v := o.verifier.Load(); v != nil && v.d == d {
		return v.v
	}
	o.verifierMu.Lock()
	defer o.verifierMu.Unlock()
	if v := o.verifier.Load(); v != nil && v.d == d {
		return v.v
	}
	v := oidc.NewVerifier(o.cfg.Issuer, keySetVerifier{keys: d.keys, algs: d.algs}, &oidc.Config{
		ClientID:             o.cfg.ClientID,
		SupportedSigningAlgs: d.algs,
		Now:                  o.clock,
	})
	o.verifier.Store(&verifierFor{d: d, v: v})
	return v
}

// isOwnCookie reports the cookies this policy's login uses, which are not
// sent upstream.
func (o *oidcAuth) isOwnCookie(name string) bool {
	return isChunkOf(name, o.cfg.CookieName) || strings.HasPrefix(name, stateCookiePrefix)
}

// authenticate finds the identity of a request by its session cookie or a
// bearer token. Without either it answers: 401 for scripts and API clients,
// a login redirect for browsers.
func (o *oidcAuth) authenticate(ctx context.Context, r *request, x *okParts) (*identity, *authv3.CheckResponse, result) {
	if raw := readChunked(r, o.cfg.CookieName); raw != "" {
		if sess := o.useSession(ctx, r, raw, x); sess != nil {
			if o.cfg.ForwardAccessToken && sess.data.AccessToken != "" {
				x.headers = append(x.headers, setHeader("authorization", "Bearer "+sess.data.AccessToken))
			}
			stripCookies(r, x, o.isOwnCookie)
			return sess.id, nil, 0
		}
	}
	if h := r.headers["authorization"]; len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		id, err := o.verifyBearer(ctx, strings.TrimSpace(h[7:]))
		if err != nil {
			if errors.Is(err, errProviderDown) {
				return nil, unavailable(), resUnavailable
			}
			o.log.Debug("bearer token refused", "issuer", o.cfg.Issuer, "error", err)
			return nil, invalidToken(), resUnauthenticated
		}
		stripCookies(r, x, o.isOwnCookie)
		return id, nil, 0
	}
	if r.wantsJSON() {
		return nil, deniedResponse(typev3.StatusCode_Unauthorized, "authentication required"), resUnauthenticated
	}
	resp, res := o.login(ctx, r)
	return nil, resp, res
}

// useSession returns the request's session if it is valid, refreshing it
// when it is close to its end (the new cookie goes into x).
func (o *oidcAuth) useSession(ctx context.Context, r *request, raw string, x *okParts) *session {
	now := o.clock()
	sess, ok := o.sessions.get(raw, now)
	if !ok {
		var err error
		if sess, err = o.openSession(raw); err != nil {
			o.log.Debug("session cookie refused", "error", err)
			return nil
		}
		o.sessions.put(raw, sess, sess.exp, now)
	}
	if o.cfg.RefreshToken && sess.data.RefreshToken != "" && sess.exp.Sub(now) < refreshBefore {
		ans, err := o.refresh(ctx, r, raw, sess)
		if err != nil {
			o.log.Info("session refresh failed", "issuer", o.cfg.Issuer, "error", err)
			return nil
		}
		if ans.attrs != attrsFor(r, o.cfg.CookieSameSite) {
			// Same session, other scheme: write it with this request's
			// attributes.
			cs, err := chunkedCookies(r, o.cfg.CookieName, ans.value, attrsFor(r, o.cfg.CookieSameSite))
			if err == nil {
				x.respHeaders = append(x.respHeaders, cookieHeaders(cs)...)
			}
		} else {
			x.respHeaders = append(x.respHeaders, cookieHeaders(ans.cookies)...)
		}
		return ans.sess
	}
	if !now.Before(sess.exp) {
		return nil
	}
	return sess
}

func (o *oidcAuth) openSession(raw string) (*session, error) {
	plain, err := o.seal.open(raw, o.adSession)
	if err != nil {
		return nil, err
	}
	var d sessionData
	if err := json.Unmarshal(plain, &d); err != nil {
		return nil, err
	}
	claims, err := tokenClaims(d.IDToken)
	if err != nil {
		return nil, err
	}
	return &session{data: d, exp: time.Unix(d.Expiry, 0), id: newIdentity(claims, o.claimHdr, o.policyHdr)}, nil
}

// tokenClaims reads the payload of a JWT that was verified before (the ID
// token inside a session cookie, which only this service can write).
func tokenClaims(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("session has no ID token")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func (o *oidcAuth) sealSession(d sessionData) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return o.seal.seal(b, o.adSession), nil
}

// refresh renews a session with its refresh token. Requests carrying the
// same cookie at the same time share one refresh, and for a short while
// after it get its answer.
func (o *oidcAuth) refresh(ctx context.Context, r *request, raw string, sess *session) (*refreshAnswer, error) {
	now := o.clock()
	if ans, ok := o.refreshed.get(raw, now); ok {
		return ans, nil
	}
	o.flightMu.Lock()
	if f, ok := o.flights[raw]; ok {
		o.flightMu.Unlock()
		select {
		case <-f.done:
			return f.ans, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &refreshFlight{done: make(chan struct{})}
	o.flights[raw] = f
	o.flightMu.Unlock()

	f.ans, f.err = o.doRefresh(ctx, r, sess)
	if f.err == nil {
		o.refreshed.put(raw, f.ans, now.Add(refreshedReuse), now)
		o.refreshC("success")
	} else {
		o.refreshC("error")
	}
	o.sessions.remove(raw)
	o.flightMu.Lock()
	delete(o.flights, raw)
	o.flightMu.Unlock()
	close(f.done)
	return f.ans, f.err
}

func (o *oidcAuth) doRefresh(ctx context.Context, r *request, sess *session) (*refreshAnswer, error) {
	d, err := o.prov.get(ctx)
	if err != nil {
		return nil, err
	}
	c, cancel := o.ctx(ctx)
	defer cancel()
	tok, err := o.oauth2Config(d, "").TokenSource(c, &oauth2.Token{RefreshToken: sess.data.RefreshToken}).Token()
	if err != nil {
		return nil, err
	}
	nd := sessionData{IDToken: sess.data.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	if nd.RefreshToken == "" {
		nd.RefreshToken = sess.data.RefreshToken
	}
	claims := sess.id.claims
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := o.idVerifier(d).Verify(c, raw)
		if err != nil {
			return nil, fmt.Errorf("refreshed ID token: %w", err)
		}
		var fresh map[string]any
		if err := idt.Claims(&fresh); err != nil {
			return nil, err
		}
		claims, nd.IDToken = fresh, raw
	}
	ns := &session{data: nd, id: newIdentity(claims, o.claimHdr, o.policyHdr)}
	ns.exp = o.sessionExpiry(tok, claims)
	ns.data.Expiry = ns.exp.Unix()
	value, err := o.sealSession(ns.data)
	if err != nil {
		return nil, err
	}
	a := attrsFor(r, o.cfg.CookieSameSite)
	cs, err := chunkedCookies(r, o.cfg.CookieName, value, a)
	if err != nil {
		return nil, err
	}
	o.sessions.put(value, ns, ns.exp, o.clock())
	return &refreshAnswer{sess: ns, value: value, attrs: a, cookies: cs}, nil
}

// sessionExpiry is when a session made from a token response ends: the
// access token's expires_in, else the ID token's exp.
func (o *oidcAuth) sessionExpiry(tok *oauth2.Token, claims map[string]any) time.Time {
	now := o.clock()
	if tok.ExpiresIn > 0 {
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if e, ok := claims["exp"].(float64); ok {
		if t := time.Unix(int64(e), 0); t.After(now) {
			return t
		}
	}
	return now.Add(defaultSessionTTL)
}

func (o *oidcAuth) verifyBearer(ctx context.Context, tok string) (*identity, error) {
	now := o.clock()
	if id, ok := o.bearers.get(tok, now); ok {
		return id, nil
	}
	d, err := o.prov.get(ctx)
	if err != nil {
		return nil, err
	}
	c, cancel := o.ctx(ctx)
	defer cancel()
	idt, err := o.idVerifier(d).Verify(c, tok)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	id := newIdentity(claims, o.claimHdr, o.policyHdr)
	until := idt.Expiry
	if limit := now.Add(maxTokenCacheTTL); until.IsZero() || until.After(limit) {
		until = limit
	}
	o.bearers.put(tok, id, until, now)
	return id, nil
}

func stateCookieName(state string) string { return stateCookiePrefix + state[:8] }

// login answers a browser without a session: a redirect to the provider's
// authorization endpoint, with the login state in a cookie of its own (one
// per login, so logins from several tabs do not undo each other).
func (o *oidcAuth) login(ctx context.Context, r *request) (*authv3.CheckResponse, result) {
	d, err := o.prov.get(ctx)
	if err != nil {
		return unavailable(), resUnavailable
	}
	st := stateData{
		State:       randomString(32),
		Nonce:       randomString(32),
		Verifier:    oauth2.GenerateVerifier(),
		URL:         r.originalURL(),
		RedirectURI: r.baseURL() + o.cfg.RedirectPath,
		Expiry:      o.clock().Add(stateTTL).Unix(),
	}
	b, err := json.Marshal(st)
	if err != nil {
		return deniedResponse(typev3.StatusCode_InternalServerError, "internal error"), resError
	}
	name := stateCookieName(st.State)
	value := o.seal.seal(b, o.adState+name)
	// The state cookie must come back on the provider's redirect, a
	// cross-site navigation: Strict would withhold it.
	ss := o.cfg.CookieSameSite
	if ss == "Strict" {
		ss = "Lax"
	}
	loc := o.oauth2Config(d, st.RedirectURI).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	return redirectResponse(loc, []string{setCookie(name, value, attrsFor(r, ss), int(stateTTL/time.Second))}), resRedirect
}

// callback finishes a login: it checks the state against its cookie,
// exchanges the code (with the PKCE verifier), verifies the ID token and its
// nonce, and sets the session cookie.
func (o *oidcAuth) callback(ctx context.Context, r *request) (*authv3.CheckResponse, result) {
	state, _ := r.param("state")
	if len(state) < 8 {
		return badRequest("login failed: missing state"), resBadRequest
	}
	if !isBase64URL(state) {
		// Not one of ours; and it names the cookie to clear, so it must
		// not carry anything into a header.
		return badRequest("login failed: invalid state"), resBadRequest
	}
	name := stateCookieName(state)
	ss := o.cfg.CookieSameSite
	if ss == "Strict" {
		ss = "Lax"
	}
	clearState := deleteCookie(name, attrsFor(r, ss))
	v, ok := r.cookie(name)
	if !ok {
		return badRequest("login failed: unknown or expired login state"), resBadRequest
	}
	plain, err := o.seal.open(v, o.adState+name)
	if err != nil {
		return badRequest("login failed: invalid login state", clearState), resBadRequest
	}
	var st stateData
	if err := json.Unmarshal(plain, &st); err != nil || subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return badRequest("login failed: state mismatch", clearState), resBadRequest
	}
	if o.clock().Unix() > st.Expiry {
		return badRequest("login failed: login state expired", clearState), resBadRequest
	}
	if e, _ := r.param("error"); e != "" {
		o.log.Info("provider refused the login", "issuer", o.cfg.Issuer, "error", e)
		return deniedResponse(typev3.StatusCode_Forbidden, "login failed: the identity provider refused it",
			addHeader("set-cookie", clearState)), resDenied
	}
	code, _ := r.param("code")
	if code == "" {
		return badRequest("login failed: missing code", clearState), resBadRequest
	}
	d, err := o.prov.get(ctx)
	if err != nil {
		return unavailable(), resUnavailable
	}
	c, cancel := o.ctx(ctx)
	defer cancel()
	tok, err := o.oauth2Config(d, st.RedirectURI).Exchange(c, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		o.log.Info("code exchange failed", "issuer", o.cfg.Issuer, "error", err)
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return badRequest("login failed: code exchange refused", clearState), resBadRequest
		}
		return deniedResponse(typev3.StatusCode_BadGateway, "login failed: identity provider unreachable"), resUnavailable
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return deniedResponse(typev3.StatusCode_BadGateway, "login failed: no ID token in the token response"), resError
	}
	idt, err := o.idVerifier(d).Verify(c, rawID)
	if err != nil {
		o.log.Info("ID token refused", "issuer", o.cfg.Issuer, "error", err)
		return badRequest("login failed: invalid ID token", clearState), resBadRequest
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return badRequest("login failed: nonce mismatch", clearState), resBadRequest
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return badRequest("login failed: invalid ID token", clearState), resBadRequest
	}
	sd := sessionData{IDToken: rawID, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	exp := o.sessionExpiry(tok, claims)
	sd.Expiry = exp.Unix()
	value, err := o.sealSession(sd)
	if err != nil {
		return deniedResponse(typev3.StatusCode_InternalServerError, "internal error"), resError
	}
	cs, err := chunkedCookies(r, o.cfg.CookieName, value, attrsFor(r, o.cfg.CookieSameSite))
	if err != nil {
		return deniedResponse(typev3.StatusCode_InternalServerError, "login failed: session too large"), resError
	}
	target := st.URL
	if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") {
		target = "/"
	}
	return redirectResponse(target, append(cs, clearState)), resCallback
}

// logout clears the session and sends the browser to the provider's
// end_session_endpoint (or straight to PostLogoutRedirect when it has none).
func (o *oidcAuth) logout(ctx context.Context, r *request) (*authv3.CheckResponse, result) {
	a := attrsFor(r, o.cfg.CookieSameSite)
	cookies := deleteChunked(r, o.cfg.CookieName, a)
	post := o.cfg.PostLogoutRedirect
	if strings.HasPrefix(post, "/") {
		post = r.baseURL() + post
	}
	d, err := o.prov.get(ctx)
	if err != nil || d.endSession == "" {
		return redirectResponse(post, cookies), resLogout
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return redirectResponse(post, cookies), resLogout
	}
	q := u.Query()
	if raw := readChunked(r, o.cfg.CookieName); raw != "" {
		if s, err := o.openSession(raw); err == nil && s.data.IDToken != "" {
			q.Set("id_token_hint", s.data.IDToken)
		}
		o.sessions.remove(raw)
	}
	q.Set("post_logout_redirect_uri", post)
	q.Set("client_id", o.cfg.ClientID)
	u.RawQuery = q.Encode()
	return redirectResponse(u.String(), cookies), resLogout
}

func badRequest(msg string, setCookies ...string) *authv3.CheckResponse {
	return deniedResponse(typev3.StatusCode_BadRequest, msg, cookieHeaders(setCookies)...)
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
