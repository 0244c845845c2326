package dex_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sekisho/sekisho/test/peers/browser"
	"github.com/sekisho/sekisho/test/peers/dex"
)

// TestBrowserLogin runs Dex, a relying party and Chromium, and logs in
// through Dex's real login form: the authorization code flow with PKCE
// (S256), state and nonce, and an ID token verified against Dex's keys.
func TestBrowserLogin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rpURL := "http://" + ln.Addr().String()
	user := dex.User{Email: "alice@example.com", Username: "alice", Password: "correct horse"}
	d := dex.Start(t, dex.Options{
		Clients: []dex.Client{{ID: "rp", Secret: "rp-secret", RedirectURIs: []string{rpURL + "/callback"}}},
		Users:   []dex.User{user, dex.Admin},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rp, err := newRelyingParty(ctx, d.Issuer(), rpURL, "rp", "rp-secret")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	b := browser.Start(t)

	t.Run("wrong password", func(t *testing.T) {
		tab, closeTab := b.NewTab()
		defer closeTab()
		ctx, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()

		final, err := browser.Login(ctx, rpURL+"/login", user.Email, "wrong password")
		if !errors.Is(err, browser.ErrLoginRejected) {
			t.Fatalf("Login with a wrong password: got %q, %v; want ErrLoginRejected", final, err)
		}
		if !strings.HasPrefix(final, d.Issuer()+"/") {
			t.Errorf("after a wrong password the tab is at %s, not on Dex (%s)", final, d.Issuer())
		}
		if !strings.Contains(err.Error(), "Invalid Email Address and password") {
			t.Errorf("Login error %q does not carry Dex's message", err)
		}
		text, err := browser.Text(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "Log in to Your Account") {
			t.Errorf("after a wrong password the page is not Dex's login form:\n%s", text)
		}
		if got := rp.logins(); len(got) != 0 {
			t.Errorf("the relying party got logins %v after a wrong password", got)
		}
	})

	t.Run("login", func(t *testing.T) {
		tab, closeTab := b.NewTab()
		defer closeTab()
		ctx, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()

		final, err := browser.Login(ctx, rpURL+"/login", user.Email, user.Password)
		if err != nil {
			t.Fatalf("Login: %v (at %s)", err, final)
		}
		if final != rpURL+"/" {
			t.Errorf("Login ended at %s, want %s/", final, rpURL)
		}
		got := rp.logins()
		if len(got) != 1 {
			t.Fatalf("the relying party got logins %v, want one", got)
		}
		c := got[0]
		// Dex's password database gives the username as "name" and leaves
		// preferred_username empty.
		if c.Email != user.Email || !c.EmailVerified || c.Name != user.Username {
			t.Errorf("ID token claims %+v, want email %s (verified) and name %s", c, user.Email, user.Username)
		}
		text, err := browser.Text(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := "signed in as " + user.Email; text != want {
			t.Errorf("the relying party's page says %q, want %q", text, want)
		}
		cookies, err := browser.Cookies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var session bool
		for _, ck := range cookies {
			if ck.Name == "rp_session" && ck.Value != "" && ck.HTTPOnly {
				session = true
			}
		}
		if !session {
			t.Errorf("no rp_session cookie among %d cookies after the login", len(cookies))
		}
	})
}

// claims are the ID token claims the relying party records.
type claims struct {
	Email             string `json:"email"`
	EmailVerified     bool   `json:"email_verified"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferred_username"`
	Nonce             string `json:"nonce"`
}

// relyingParty is a minimal OIDC web application: /login starts the
// authorization code flow, /callback finishes it, / shows who is signed in.
type relyingParty struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier

	mu       sync.Mutex
	pending  map[string]pending // by state
	sessions map[string]claims  // by session cookie
	verified []claims
}

// pending is a login between /login and /callback.
type pending struct {
	nonce, codeVerifier string
}

func newRelyingParty(ctx context.Context, issuer, baseURL, clientID, secret string) (*relyingParty, error) {
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery of %s: %w", issuer, err)
	}
	return &relyingParty{
		oauth: oauth2.Config{
			ClientID:     clientID,
			ClientSecret: secret,
			Endpoint:     provider.Endpoint(),
			RedirectURL:  baseURL + "/callback",
			Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
		},
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID}),
		pending:  map[string]pending{},
		sessions: map[string]claims{},
	}, nil
}

func (rp *relyingParty) logins() []claims {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]claims(nil), rp.verified...)
}

func (rp *relyingParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		rp.login(w, r)
	case "/callback":
		rp.callback(w, r)
	case "/":
		rp.mu.Lock()
		var c claims
		var ok bool
		if ck, err := r.Cookie("rp_session"); err == nil {
			c, ok = rp.sessions[ck.Value]
		}
		rp.mu.Unlock()
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "signed in as %s", c.Email)
	default:
		http.NotFound(w, r)
	}
}

func (rp *relyingParty) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, codeVerifier := random(), random(), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = pending{nonce: nonce, codeVerifier: codeVerifier}
	rp.mu.Unlock()
	// The state is also bound to this browser, so that a callback from
	// another browser's login is refused.
	http.SetCookie(w, &http.Cookie{Name: "rp_state", Value: state, Path: "/callback", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, rp.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(codeVerifier)), http.StatusFound)
}

func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		http.Error(w, "authorization failed: "+e+": "+q.Get("error_description"), http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	ck, err := r.Cookie("rp_state")
	if err != nil || ck.Value != state {
		http.Error(w, "state does not match this browser's", http.StatusBadRequest)
		return
	}
	rp.mu.Lock()
	p, ok := rp.pending[state]
	delete(rp.pending, state)
	rp.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or used state", http.StatusBadRequest)
		return
	}

	ctx := r.Context()
	tok, err := rp.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.codeVerifier))
	if err != nil {
		http.Error(w, "code exchange: "+err.Error(), http.StatusBadGateway)
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		http.Error(w, "no id_token in the token response", http.StatusBadGateway)
		return
	}
	idToken, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		http.Error(w, "ID token: "+err.Error(), http.StatusBadGateway)
		return
	}
	var c claims
	if err := idToken.Claims(&c); err != nil {
		http.Error(w, "ID token claims: "+err.Error(), http.StatusBadGateway)
		return
	}
	if c.Nonce != p.nonce {
		http.Error(w, "ID token nonce does not match", http.StatusBadRequest)
		return
	}
	if err := idToken.VerifyAccessToken(tok.AccessToken); err != nil && idToken.AccessTokenHash != "" {
		http.Error(w, "at_hash: "+err.Error(), http.StatusBadGateway)
		return
	}

	session := random()
	rp.mu.Lock()
	rp.sessions[session] = c
	rp.verified = append(rp.verified, c)
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "rp_state", Path: "/callback", MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: "rp_session", Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusFound)
}

// random returns 32 random bytes, base64url-encoded.
func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestDiscovery checks the parts of Dex's discovery document that sekisho
// relies on, and records what this Dex version does not offer.
func TestDiscovery(t *testing.T) {
	d := dex.Start(t, dex.Options{})
	resp, err := http.Get(d.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != d.Issuer() {
		t.Errorf("issuer %v, want %s", doc["issuer"], d.Issuer())
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"} {
		u, _ := doc[k].(string)
		if !strings.HasPrefix(u, d.Issuer()+"/") {
			t.Errorf("%s = %q, want a URL under the issuer", k, u)
		}
		if _, err := url.Parse(u); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if got := fmt.Sprint(doc["id_token_signing_alg_values_supported"]); got != "[RS256]" {
		t.Errorf("id_token_signing_alg_values_supported = %s, want [RS256]", got)
	}
	if got := fmt.Sprint(doc["code_challenge_methods_supported"]); !strings.Contains(got, "S256") {
		t.Errorf("code_challenge_methods_supported = %s, want S256 among them", got)
	}
	if e, ok := doc["end_session_endpoint"]; ok {
		t.Logf("this Dex offers end_session_endpoint %v: RP-initiated logout can be tested", e)
	}
}
