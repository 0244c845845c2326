package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	opClientID     = "sekisho-app"
	opClientSecret = "s3cret"
	opRedirectPath = "/oauth2/callback"
	opLogoutPath   = "/logout"
	appHost        = "app.example.com"
)

// fakeOP is a small OpenID provider on 127.0.0.1: discovery, JWKS,
// authorize (answers with a redirect carrying code and state), token
// (authorization_code with PKCE S256, refresh_token) and end_session.
type fakeOP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	clock  *fakeClock

	down        atomic.Bool
	noEndSess   bool
	accessTTL   time.Duration
	bigClaim    int // bytes of padding in ID tokens
	wrongNonce  atomic.Bool
	discoveries atomic.Int64
	hits        atomic.Int64 // every request, also while down
	refreshes   atomic.Int64

	mu       sync.Mutex
	codes    map[string]*grant
	refresh  map[string]string // refresh token → subject
	nextCode int
}

type grant struct {
	challenge, nonce, redirectURI, sub string
	used                               bool
}

func newFakeOP(t testing.TB, clock *fakeClock) *fakeOP {
	keys(t)
	op := &fakeOP{t: t, clock: clock, accessTTL: 5 * time.Minute, codes: map[string]*grant{}, refresh: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwksDoc(rsaJWK("op1", &rsaKey.PublicKey))))
	})
	mux.HandleFunc("/authorize", op.authorize)
	mux.HandleFunc("/token", op.token)
	mux.HandleFunc("/end_session", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("bye")) })
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op.hits.Add(1)
		if op.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	op.issuer = op.srv.URL
	t.Cleanup(op.srv.Close)
	return op
}

func (op *fakeOP) discovery(w http.ResponseWriter, _ *http.Request) {
	op.discoveries.Add(1)
	m := map[string]any{
		"issuer":                                op.issuer,
		"authorization_endpoint":                op.issuer + "/authorize",
		"token_endpoint":                        op.issuer + "/token",
		"jwks_uri":                              op.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "HS256", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if !op.noEndSess {
		m["end_session_endpoint"] = op.issuer + "/end_session?ui=1"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

func (op *fakeOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bad := func(msg string) { http.Error(w, msg, http.StatusBadRequest) }
	switch {
	case q.Get("client_id") != opClientID:
		bad("client_id")
	case q.Get("response_type") != "code":
		bad("response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		bad("PKCE S256 required")
	case q.Get("state") == "" || q.Get("nonce") == "":
		bad("state and nonce required")
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		bad("scope openid required")
	default:
		op.mu.Lock()
		op.nextCode++
		code := "code-" + strconv.Itoa(op.nextCode)
		sub := q.Get("login_hint")
		if sub == "" {
			sub = "alice"
		}
		op.codes[code] = &grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirectURI: q.Get("redirect_uri"), sub: sub}
		op.mu.Unlock()
		u, err := url.Parse(q.Get("redirect_uri"))
		if err != nil {
			bad("redirect_uri")
			return
		}
		rq := u.Query()
		rq.Set("code", code)
		rq.Set("state", q.Get("state"))
		u.RawQuery = rq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
}

func (op *fakeOP) tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		op.tokenError(w, "invalid_request")
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != opClientID || secret != opClientSecret {
		op.tokenError(w, "invalid_client")
		return
	}
	if err := r.ParseForm(); err != nil {
		op.tokenError(w, "invalid_request")
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var sub, nonce string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g := op.codes[r.PostForm.Get("code")]
		if g == nil || g.used {
			op.tokenError(w, "invalid_grant")
			return
		}
		g.used = true
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			op.tokenError(w, "invalid_grant") // PKCE verifier does not match
			return
		}
		if r.PostForm.Get("redirect_uri") != g.redirectURI {
			op.tokenError(w, "invalid_grant")
			return
		}
		sub, nonce = g.sub, g.nonce
	case "refresh_token":
		op.refreshes.Add(1)
		s, ok := op.refresh[r.PostForm.Get("refresh_token")]
		if !ok {
			op.tokenError(w, "invalid_grant")
			return
		}
		delete(op.refresh, r.PostForm.Get("refresh_token")) // rotated
		sub = s
	default:
		op.tokenError(w, "unsupported_grant_type")
		return
	}
	now := op.clock.Now()
	rt := "rt-" + randomString(8)
	op.refresh[rt] = sub
	idClaims := jwt.MapClaims{
		"iss": op.issuer, "aud": opClientID, "sub": sub, "email": sub + "@example.com",
		"groups": []string{"staff"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if nonce != "" {
		idClaims["nonce"] = nonce
		if op.wrongNonce.Load() {
			idClaims["nonce"] = "not-" + nonce
		}
	}
	if op.bigClaim > 0 {
		idClaims["padding"] = strings.Repeat("p", op.bigClaim)
	}
	access := sign(op.t, jwt.SigningMethodRS256, rsaKey, "op1", jwt.MapClaims{
		"iss": op.issuer, "aud": opClientID, "sub": sub, "scope": "openid profile",
		"iat": now.Unix(), "exp": now.Add(op.accessTTL).Unix(), "jti": randomString(6),
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"expires_in":    int(op.accessTTL / time.Second),
		"refresh_token": rt,
		"id_token":      sign(op.t, jwt.SigningMethodRS256, rsaKey, "op1", idClaims),
	})
}

// idToken is a token the provider would issue, for bearer tests.
func (op *fakeOP) idToken(aud string, exp time.Duration) string {
	now := op.clock.Now()
	return sign(op.t, jwt.SigningMethodRS256, rsaKey, "op1", jwt.MapClaims{
		"iss": op.issuer, "aud": aud, "sub": "robot", "email": "robot@example.com",
		"iat": now.Unix(), "exp": now.Add(exp).Unix(),
	})
}

func oidcPolicy(op *fakeOP, mod func(*OIDC)) *Config {
	o := &OIDC{
		Issuer: op.issuer, ClientID: opClientID, ClientSecret: opClientSecret,
		Scopes:             []string{"profile", "email"},
		RedirectPath:       opRedirectPath,
		LogoutPath:         opLogoutPath,
		PostLogoutRedirect: "/bye",
		RefreshToken:       true,
		ForwardAccessToken: true,
		ClaimToHeaders:     []ClaimToHeader{{Claim: "sub", Header: "x-user"}, {Claim: "email", Header: "x-email"}, {Claim: "groups", Header: "x-groups"}},
		SessionKey:         base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
	}
	if mod != nil {
		mod(o)
	}
	return &Config{Policies: []Policy{{ID: testPolicy, OIDC: o}}}
}

// browser keeps cookies between checks, as a browser would for one site.
type browser struct {
	jar map[string]string
	// setCookies are the Set-Cookie values of the last answer.
	setCookies []string
}

func newBrowser() *browser { return &browser{jar: map[string]string{}} }

func (b *browser) cookieHeader() string {
	names := make([]string, 0, len(b.jar))
	for n := range b.jar {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+"="+b.jar[n])
	}
	return strings.Join(parts, "; ")
}

func (b *browser) take(setCookies []string) {
	b.setCookies = setCookies
	for _, sc := range setCookies {
		nv, attrs, _ := strings.Cut(sc, ";")
		name, value, _ := strings.Cut(nv, "=")
		if strings.Contains(attrs, "Max-Age=0") {
			delete(b.jar, name)
			continue
		}
		b.jar[name] = value
	}
}

// get checks a request with the browser's cookies and keeps the cookies
// the answer sets.
func (b *browser) get(t testing.TB, s *Server, path string, extra map[string]string) answer {
	t.Helper()
	h := map[string]string{"accept": "text/html,application/xhtml+xml"}
	if c := b.cookieHeader(); c != "" {
		h["cookie"] = c
	}
	for k, v := range extra {
		h[k] = v
	}
	a := check(t, s, req{path: path, host: appHost, headers: h})
	if a.code == 200 {
		b.take(a.respHdrs["set-cookie"])
	} else {
		b.take(a.hdrs["set-cookie"])
	}
	return a
}

var noRedirect = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// authorize follows a login redirect to the provider and returns the path
// and query of the callback it redirects to.
func authorize(t testing.TB, location string) string {
	t.Helper()
	resp, err := noRedirect.Get(location)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %d", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != appHost || u.Scheme != "https" {
		t.Fatalf("callback to %s, want https://%s", u, appHost)
	}
	return u.RequestURI()
}

// login runs the whole flow for path and returns the answer of the
// callback.
func login(t testing.TB, s *Server, b *browser, path string) answer {
	t.Helper()
	a := b.get(t, s, path, nil)
	if a.code != 302 {
		t.Fatalf("no session: got %d, want 302", a.code)
	}
	return b.get(t, s, authorize(t, a.hdrs["location"][0]), nil)
}

func TestOIDCLoginFlow(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))
	b := newBrowser()

	// 1. No session: a redirect to the provider.
	a := b.get(t, s, "/app/page?x=1&y=%20z", nil)
	if a.code != 302 {
		t.Fatalf("got %d, want 302", a.code)
	}
	loc, err := url.Parse(a.hdrs["location"][0])
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), op.issuer+"/authorize?") {
		t.Fatalf("location %s", loc)
	}
	if q.Get("redirect_uri") != "https://"+appHost+opRedirectPath {
		t.Errorf("redirect_uri = %q", q.Get("redirect_uri"))
	}
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 {
		t.Errorf("PKCE: method %q challenge %q", q.Get("code_challenge_method"), q.Get("code_challenge"))
	}
	if q.Get("scope") != "openid profile email" {
		t.Errorf("scope = %q", q.Get("scope"))
	}
	state := q.Get("state")
	if len(state) < 32 || q.Get("nonce") == "" || q.Get("nonce") == state {
		t.Errorf("state %q nonce %q", state, q.Get("nonce"))
	}
	if len(a.hdrs["set-cookie"]) != 1 {
		t.Fatalf("set-cookie: %v", a.hdrs["set-cookie"])
	}
	sc := a.hdrs["set-cookie"][0]
	if !strings.HasPrefix(sc, "sekisho-oidc-"+state[:8]+"=") {
		t.Errorf("state cookie %q is not named after the state", sc)
	}
	for _, attr := range []string{"; Path=/", "; HttpOnly", "; Secure", "; SameSite=Lax", "; Max-Age=600"} {
		if !strings.Contains(sc, attr) {
			t.Errorf("state cookie lacks %q: %s", attr, sc)
		}
	}
	if strings.Contains(sc, "/app/page") || strings.Contains(sc, q.Get("nonce")) {
		t.Errorf("state cookie is not encrypted: %s", sc)
	}

	// 2. The provider redirects back; the callback sets the session.
	a = b.get(t, s, authorize(t, loc.String()), nil)
	if a.code != 302 {
		t.Fatalf("callback: got %d (%s)", a.code, a.body)
	}
	if got := a.hdrs["location"][0]; got != "/app/page?x=1&y=%20z" {
		t.Errorf("callback redirects to %q", got)
	}
	var sess, clear string
	for _, c := range a.hdrs["set-cookie"] {
		switch {
		case strings.HasPrefix(c, DefaultCookieName+"="):
			sess = c
		case strings.HasPrefix(c, "sekisho-oidc-"+state[:8]+"="):
			clear = c
		}
	}
	if sess == "" || !strings.Contains(sess, "; HttpOnly") || !strings.Contains(sess, "; Secure") || !strings.Contains(sess, "; SameSite=Lax") || !strings.Contains(sess, "; Path=/") {
		t.Errorf("session cookie %q", sess)
	}
	if !strings.Contains(clear, "Max-Age=0") {
		t.Errorf("state cookie not deleted: %q", clear)
	}
	if _, ok := b.jar["sekisho-oidc-"+state[:8]]; ok {
		t.Error("state cookie kept")
	}

	// 3. The session passes, with the claim headers and the access token.
	a = b.get(t, s, "/app/page", map[string]string{"x-user": "mallory", "cookie": b.cookieHeader() + "; theme=dark"})
	if a.code != 200 {
		t.Fatalf("with session: got %d (%s)", a.code, a.body)
	}
	if a.set["x-user"] != "alice" || a.set["x-email"] != "alice@example.com" || a.set["x-groups"] != "staff" {
		t.Errorf("claim headers %v", a.set)
	}
	if !strings.HasPrefix(a.set["authorization"], "Bearer ey") {
		t.Errorf("access token not forwarded: %q", a.set["authorization"])
	}
	if a.set["cookie"] != "theme=dark" {
		t.Errorf("cookies sent upstream: %q (the session cookie must not be)", a.set["cookie"])
	}
	if a.claims()["sub"] != "alice" {
		t.Errorf("metadata %v", a.claims())
	}

	// 4. The code cannot be used twice.
	b2 := newBrowser()
	a = b2.get(t, s, "/x", nil)
	cb := authorize(t, a.hdrs["location"][0])
	if a = b2.get(t, s, cb, nil); a.code != 302 {
		t.Fatalf("second login: %d", a.code)
	}
	b3 := &browser{jar: map[string]string{}}
	for k, v := range b2.jar {
		b3.jar[k] = v
	}
	// Replaying the callback with a state cookie of the first attempt:
	// the cookie is gone, so 400.
	if a = b3.get(t, s, cb, nil); a.code != 400 {
		t.Fatalf("replayed callback: got %d, want 400", a.code)
	}
}

func TestOIDCParallelLogins(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))
	b := newBrowser()

	// Two tabs start a login before either finishes.
	a1 := b.get(t, s, "/tab1", nil)
	a2 := b.get(t, s, "/tab2", nil)
	if a1.code != 302 || a2.code != 302 {
		t.Fatalf("got %d and %d", a1.code, a2.code)
	}
	if n := len(b.jar); n != 2 {
		t.Fatalf("%d state cookies, want 2 (one per login)", n)
	}
	cb1 := authorize(t, a1.hdrs["location"][0])
	cb2 := authorize(t, a2.hdrs["location"][0])

	// They finish in the other order; both succeed.
	if a := b.get(t, s, cb2, nil); a.code != 302 || a.hdrs["location"][0] != "/tab2" {
		t.Fatalf("tab 2 callback: %d %v (%s)", a.code, a.hdrs["location"], a.body)
	}
	if a := b.get(t, s, cb1, nil); a.code != 302 || a.hdrs["location"][0] != "/tab1" {
		t.Fatalf("tab 1 callback: %d %v (%s)", a.code, a.hdrs["location"], a.body)
	}
	if a := b.get(t, s, "/tab1", nil); a.code != 200 {
		t.Fatalf("after both logins: %d", a.code)
	}
	for n := range b.jar {
		if strings.HasPrefix(n, stateCookiePrefix) {
			t.Errorf("state cookie %s left over", n)
		}
	}
}

func TestOIDCBadCallbacks(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))

	// A real login attempt to take states and cookies from.
	b := newBrowser()
	a := b.get(t, s, "/", nil)
	cb := authorize(t, a.hdrs["location"][0])
	cbURL, _ := url.Parse(cb)
	state := cbURL.Query().Get("state")
	code := cbURL.Query().Get("code")
	stateCookie := "sekisho-oidc-" + state[:8]
	cookie := stateCookie + "=" + b.jar[stateCookie]

	other := newBrowser()
	oa := other.get(t, s, "/", nil)
	otherCB, _ := url.Parse(authorize(t, oa.hdrs["location"][0]))
	otherState := otherCB.Query().Get("state")
	otherCookieName := "sekisho-oidc-" + otherState[:8]

	tamper := func(v string) string {
		bs := []byte(v)
		if bs[20] == 'A' {
			bs[20] = 'B'
		} else {
			bs[20] = 'A'
		}
		return string(bs)
	}
	cases := []struct {
		name, path, cookie string
		want               int
	}{
		{"missing state", opRedirectPath + "?code=" + code, cookie, 400},
		{"short state", opRedirectPath + "?code=" + code + "&state=abc", cookie, 400},
		{"no state cookie", cb, "", 400},
		{"state of another login", opRedirectPath + "?code=" + code + "&state=" + otherState, cookie, 400},
		{"other login's cookie renamed", cb, stateCookie + "=" + other.jar[otherCookieName], 400},
		{"state with header characters", opRedirectPath + "?code=" + code + "&state=" + url.QueryEscape(state[:8]+"\r\nx-evil: 1;"), cookie, 400},
		{"state differing after the name", opRedirectPath + "?code=" + code + "&state=" + state[:8] + otherChar(state[8]) + state[9:], cookie, 400},
		{"tampered state cookie", cb, stateCookie + "=" + tamper(b.jar[stateCookie]), 400},
		{"missing code", opRedirectPath + "?state=" + state, cookie, 400},
		{"unknown code", opRedirectPath + "?code=nope&state=" + state, cookie, 400},
		{"provider error", opRedirectPath + "?error=access_denied&state=" + state, cookie, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			if c.cookie != "" {
				h["cookie"] = c.cookie
			}
			a := check(t, s, req{path: c.path, host: appHost, headers: h})
			if a.code != c.want {
				t.Fatalf("got %d, want %d (%s)", a.code, c.want, a.body)
			}
			if c.want == 400 && !strings.HasPrefix(a.body, "login failed: ") {
				t.Errorf("body %q", a.body)
			}
		})
	}

	// The untouched login still works after all that.
	if a := b.get(t, s, cb, nil); a.code != 302 {
		t.Fatalf("genuine callback: %d (%s)", a.code, a.body)
	}

	// An ID token with another nonce (a token injected from another
	// login) is refused.
	op.wrongNonce.Store(true)
	b5 := newBrowser()
	if a := login(t, s, b5, "/"); a.code != 400 || !strings.Contains(a.body, "nonce") {
		t.Fatalf("wrong nonce: got %d (%s), want 400", a.code, a.body)
	}
	op.wrongNonce.Store(false)

	// An expired state: the login took more than 10 minutes.
	b4 := newBrowser()
	a = b4.get(t, s, "/", nil)
	cb4 := authorize(t, a.hdrs["location"][0])
	clock.Add(stateTTL + time.Second)
	if a := b4.get(t, s, cb4, nil); a.code != 400 {
		t.Fatalf("expired state: got %d, want 400", a.code)
	}
}

func TestOIDCScriptsGet401(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))
	for name, h := range map[string]map[string]string{
		"json":             {"accept": "application/json"},
		"json with others": {"accept": "application/json, text/plain, */*"},
		"x-requested-with": {"accept": "text/html", "x-requested-with": "XMLHttpRequest"},
	} {
		if a := check(t, s, req{path: "/api/data", host: appHost, headers: h}); a.code != 401 {
			t.Errorf("%s: got %d, want 401", name, a.code)
		}
	}
	for name, h := range map[string]map[string]string{
		"html":            {"accept": "text/html,application/json"},
		"no accept":       {},
		"anything":        {"accept": "*/*"},
		"html and json q": {"accept": "application/json;q=0.9, text/html"},
	} {
		if a := check(t, s, req{path: "/", host: appHost, headers: h}); a.code != 302 {
			t.Errorf("%s: got %d, want 302", name, a.code)
		}
	}
}

func TestOIDCBearerIsNotRedirected(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))

	a := check(t, s, req{path: "/api", host: appHost, headers: bearer(op.idToken(opClientID, time.Hour))})
	if a.code != 200 || a.set["x-user"] != "robot" {
		t.Fatalf("valid bearer: %d %v (%s)", a.code, a.set, a.body)
	}
	for name, tok := range map[string]string{
		"other audience": op.idToken("someone-else", time.Hour),
		"expired":        op.idToken(opClientID, -time.Hour),
		"other key":      sign(t, jwt.SigningMethodRS256, rsaKey2, "op1", jwt.MapClaims{"iss": op.issuer, "aud": opClientID, "sub": "x", "exp": clock.Now().Add(time.Hour).Unix()}),
		"other issuer":   sign(t, jwt.SigningMethodRS256, rsaKey, "op1", jwt.MapClaims{"iss": "https://evil.test", "aud": opClientID, "sub": "x", "exp": clock.Now().Add(time.Hour).Unix()}),
		"HS256":          sign(t, jwt.SigningMethodHS256, []byte("secret"), "op1", jwt.MapClaims{"iss": op.issuer, "aud": opClientID, "sub": "x", "exp": clock.Now().Add(time.Hour).Unix()}),
	} {
		a := check(t, s, req{path: "/api", host: appHost, headers: bearer(tok)})
		if a.code != 401 || a.hdrs["www-authenticate"][0] != `Bearer error="invalid_token"` {
			t.Errorf("%s: got %d %v, want 401 invalid_token", name, a.code, a.hdrs)
		}
	}
	// A cached bearer still expires.
	short := op.idToken(opClientID, time.Minute)
	if a := check(t, s, req{path: "/api", host: appHost, headers: bearer(short)}); a.code != 200 {
		t.Fatalf("short bearer: %d", a.code)
	}
	clock.Add(2 * time.Minute)
	if a := check(t, s, req{path: "/api", host: appHost, headers: bearer(short)}); a.code != 401 {
		t.Fatalf("expired cached bearer: %d, want 401", a.code)
	}
}

func TestOIDCRefresh(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, reg := newTestServer(t, clock, oidcPolicy(op, nil))
	b := newBrowser()
	if a := login(t, s, b, "/"); a.code != 302 {
		t.Fatalf("login: %d", a.code)
	}
	first := b.jar[DefaultCookieName]
	if a := b.get(t, s, "/", nil); a.code != 200 || len(a.respHdrs["set-cookie"]) != 0 {
		t.Fatalf("fresh session: %d, set-cookie %v", a.code, a.respHdrs["set-cookie"])
	}

	// The access token lives 5 minutes; with 50s left the session is
	// refreshed, and the new cookie comes with the OK answer.
	clock.Add(4*time.Minute + 10*time.Second)
	oldCookie := b.cookieHeader()
	a := b.get(t, s, "/", nil)
	if a.code != 200 {
		t.Fatalf("near expiry: %d (%s)", a.code, a.body)
	}
	if len(a.respHdrs["set-cookie"]) == 0 || b.jar[DefaultCookieName] == first {
		t.Fatalf("no new session cookie: %v", a.respHdrs["set-cookie"])
	}
	if op.refreshes.Load() != 1 {
		t.Fatalf("refreshes at the provider = %d, want 1", op.refreshes.Load())
	}
	if got := counterValue(t, reg, "sekisho_authz_oidc_refresh_total", map[string]string{"result": "success"}); got != 1 {
		t.Errorf("oidc_refresh_total{success} = %v", got)
	}
	// A parallel request still carrying the old cookie gets the same
	// answer without a second refresh (the refresh token was rotated).
	a = check(t, s, req{path: "/", host: appHost, headers: map[string]string{"cookie": oldCookie}})
	if a.code != 200 || op.refreshes.Load() != 1 {
		t.Fatalf("old cookie right after the refresh: %d, refreshes %d", a.code, op.refreshes.Load())
	}

	// The new session lasts another 5 minutes.
	clock.Add(3 * time.Minute)
	if a := b.get(t, s, "/", nil); a.code != 200 || len(a.respHdrs["set-cookie"]) != 0 {
		t.Fatalf("refreshed session: %d, set-cookie %v", a.code, a.respHdrs["set-cookie"])
	}

	// The provider stops honouring the refresh token: no session any more.
	op.mu.Lock()
	op.refresh = map[string]string{}
	op.mu.Unlock()
	clock.Add(90 * time.Second)
	if a := b.get(t, s, "/", nil); a.code != 302 {
		t.Fatalf("failed refresh: %d, want a login redirect", a.code)
	}
	if got := counterValue(t, reg, "sekisho_authz_oidc_refresh_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("oidc_refresh_total{error} = %v", got)
	}
}

func TestOIDCSessionWithoutRefreshExpires(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, func(o *OIDC) { o.RefreshToken = false }))
	b := newBrowser()
	login(t, s, b, "/")
	clock.Add(4*time.Minute + 50*time.Second)
	if a := b.get(t, s, "/", nil); a.code != 200 {
		t.Fatalf("before expiry: %d", a.code)
	}
	clock.Add(11 * time.Second)
	if a := b.get(t, s, "/", nil); a.code != 302 {
		t.Fatalf("after expiry: %d, want 302", a.code)
	}
	if op.refreshes.Load() != 0 {
		t.Fatal("refreshed although refreshToken is off")
	}
}

func TestOIDCLogout(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, nil))
	b := newBrowser()
	login(t, s, b, "/")
	sess, err := s.snap.Load().policies[testPolicy].oidc.openSession(b.jar[DefaultCookieName])
	if err != nil {
		t.Fatal(err)
	}

	a := b.get(t, s, opLogoutPath, nil)
	if a.code != 302 {
		t.Fatalf("logout: %d", a.code)
	}
	u, _ := url.Parse(a.hdrs["location"][0])
	if u.Scheme+"://"+u.Host+u.Path != op.issuer+"/end_session" {
		t.Fatalf("logout redirects to %s", u)
	}
	q := u.Query()
	if q.Get("ui") != "1" {
		t.Errorf("end_session query lost: %s", u.RawQuery)
	}
	if q.Get("id_token_hint") != sess.data.IDToken {
		t.Errorf("id_token_hint = %q", q.Get("id_token_hint"))
	}
	if q.Get("post_logout_redirect_uri") != "https://"+appHost+"/bye" {
		t.Errorf("post_logout_redirect_uri = %q", q.Get("post_logout_redirect_uri"))
	}
	if _, ok := b.jar[DefaultCookieName]; ok {
		t.Fatal("session cookie not cleared")
	}
	if a := b.get(t, s, "/", nil); a.code != 302 {
		t.Fatalf("after logout: %d, want 302", a.code)
	}

	// A provider without end_session_endpoint: straight to the page.
	op2 := newFakeOP(t, clock)
	op2.noEndSess = true
	s2, _ := newTestServer(t, clock, oidcPolicy(op2, nil))
	b2 := newBrowser()
	login(t, s2, b2, "/")
	a = b2.get(t, s2, opLogoutPath, nil)
	if a.code != 302 || a.hdrs["location"][0] != "https://"+appHost+"/bye" {
		t.Fatalf("logout without end_session: %d %v", a.code, a.hdrs["location"])
	}
}

func TestOIDCProviderDown(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	cfg := oidcPolicy(op, nil)
	s, _ := newTestServer(t, clock, cfg)
	b := newBrowser()
	login(t, s, b, "/")

	op.down.Store(true)
	if a := b.get(t, s, "/", nil); a.code != 200 {
		t.Fatalf("provider down, valid session: %d", a.code)
	}

	// Another replica (same session key) that never reached the provider
	// serves the session too.
	s2, _ := newTestServer(t, clock, cfg)
	if a := b.get(t, s2, "/", nil); a.code != 200 {
		t.Fatalf("provider down, new replica, valid session: %d (%s)", a.code, a.body)
	}
	// Without a session it answers 503, and does not ask the provider again
	// on every request: one attempt, then a backoff.
	before := op.hits.Load()
	for i := 0; i < 5; i++ {
		if a := check(t, s2, req{path: "/", host: appHost}); a.code != 503 {
			t.Fatalf("provider down, no session: %d, want 503", a.code)
		}
	}
	if n := op.hits.Load() - before; n != 1 {
		t.Fatalf("discovery attempts while the provider is down: %d, want 1", n)
	}
	op.down.Store(false)
	clock.Add(discoveryMaxRetry)
	if a := check(t, s2, req{path: "/", host: appHost}); a.code != 302 {
		t.Fatalf("provider back: %d, want 302", a.code)
	}
}

func TestOIDCLargeSessionIsChunked(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	op.bigClaim = 6000
	s, _ := newTestServer(t, clock, oidcPolicy(op, func(o *OIDC) { o.CookieName = "big"; o.CookieSameSite = "Strict" }))
	b := newBrowser()
	a := login(t, s, b, "/")
	if a.code != 302 {
		t.Fatalf("login: %d", a.code)
	}
	var names []string
	for _, c := range a.hdrs["set-cookie"] {
		name, _, _ := strings.Cut(c, "=")
		if strings.HasPrefix(name, "big") {
			names = append(names, name)
			if len(c) > 4096 {
				t.Errorf("cookie %s is %d bytes", name, len(c))
			}
			if !strings.Contains(c, "SameSite=Strict") {
				t.Errorf("cookie %s: %s", name, c[strings.Index(c, ";"):])
			}
		}
	}
	if len(names) < 3 || names[0] != "big" || names[1] != "big.1" {
		t.Fatalf("session cookies %v, want big, big.1, …", names)
	}
	a = b.get(t, s, "/", nil)
	if a.code != 200 || a.set["x-user"] != "alice" {
		t.Fatalf("chunked session: %d", a.code)
	}
	if _, ok := a.set["cookie"]; ok || !a.isRemoved("cookie") {
		t.Errorf("session chunks sent upstream: set %q removed %v", a.set["cookie"], a.removed)
	}
	// A missing chunk is no session.
	delete(b.jar, "big.1")
	if a := b.get(t, s, "/", nil); a.code != 302 {
		t.Fatalf("session with a chunk missing: %d, want 302", a.code)
	}
}

func TestOIDCWithJWT(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	cfg := oidcPolicy(op, nil)
	keys(t)
	cfg.Policies[0].JWT = &JWT{Providers: []JWTProvider{{
		Name: "api", Issuer: testIssuer, LocalJWKS: jwksDoc(ecJWK("ec1", &ecKey.PublicKey)),
		ExtractFrom:    &ExtractFrom{Headers: []TokenHeader{{Name: "x-api-token"}}},
		ClaimToHeaders: []ClaimToHeader{{Claim: "sub", Header: "x-user"}},
	}}}
	s, _ := newTestServer(t, clock, cfg)
	tok := sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(clock.Now(), jwt.MapClaims{"sub": "svc"}))
	if a := check(t, s, req{path: "/", host: appHost, headers: map[string]string{"x-api-token": tok}}); a.code != 200 || a.set["x-user"] != "svc" {
		t.Fatalf("JWT: %d %v", a.code, a.set)
	}
	// A JWT that does not validate: the login decides.
	bad := sign(t, jwt.SigningMethodES256, ecKey2, "ec1", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", host: appHost, headers: map[string]string{"x-api-token": bad}}); a.code != 302 {
		t.Fatalf("bad JWT: %d, want the login redirect", a.code)
	}
	b := newBrowser()
	login(t, s, b, "/")
	if a := b.get(t, s, "/", nil); a.code != 200 || a.set["x-user"] != "alice" {
		t.Fatalf("session: %d %v", a.code, a.set)
	}
}

func TestOIDCPlainHTTPCookies(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	s, _ := newTestServer(t, clock, oidcPolicy(op, func(o *OIDC) { o.CookieSameSite = "None" }))
	a := check(t, s, req{path: "/", host: "App.Example.com.:8080", scheme: "http", headers: map[string]string{"x-forwarded-proto": "https"}})
	if a.code != 302 {
		t.Fatalf("got %d", a.code)
	}
	loc, _ := url.Parse(a.hdrs["location"][0])
	if got := loc.Query().Get("redirect_uri"); got != "http://app.example.com:8080"+opRedirectPath {
		t.Errorf("redirect_uri = %q (the scheme attribute wins over x-forwarded-proto)", got)
	}
	sc := a.hdrs["set-cookie"][0]
	if strings.Contains(sc, "Secure") || !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("state cookie on plain http: %s", sc[strings.Index(sc, ";"):])
	}
	a = check(t, s, req{path: "/", scheme: "-", headers: map[string]string{"x-forwarded-proto": "https"}})
	loc, _ = url.Parse(a.hdrs["location"][0])
	if got := loc.Query().Get("redirect_uri"); !strings.HasPrefix(got, "https://") {
		t.Errorf("redirect_uri = %q, want https from x-forwarded-proto", got)
	}
	if sc := a.hdrs["set-cookie"][0]; !strings.Contains(sc, "; Secure") || !strings.Contains(sc, "SameSite=None") {
		t.Errorf("state cookie on https: %s", sc[strings.Index(sc, ";"):])
	}
}

func TestSessionCookieIsBoundToItsPolicy(t *testing.T) {
	clock := newClock()
	op := newFakeOP(t, clock)
	cfg := oidcPolicy(op, nil)
	other := *cfg.Policies[0].OIDC
	other.ClientID = "another-client"
	cfg.Policies = append(cfg.Policies, Policy{ID: "default/other", OIDC: &other})
	s, _ := newTestServer(t, clock, cfg)
	b := newBrowser()
	login(t, s, b, "/")
	a := check(t, s, req{policy: "default/other", path: "/", host: appHost, headers: map[string]string{"cookie": b.cookieHeader()}})
	if a.code != 302 {
		t.Fatalf("session of another client: %d, want 302", a.code)
	}
}

// otherChar is a base64url character other than c.
func otherChar(c byte) string {
	if c == 'x' {
		return "y"
	}
	return "x"
}
