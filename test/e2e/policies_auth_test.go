package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/test/peers/browser"
	"github.com/sekisho/sekisho/test/peers/dex"
)

// authConfig is one Gateway with two routes to the echo backend: /app,
// behind the OIDC login with Dex, and /api, behind JWT validation against
// Dex's keys.
func authConfig(port, backend int, issuer string) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec: {controllerName: sekisho.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: %[1]d}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-0, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: %[2]d}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
---
apiVersion: v1
kind: Secret
metadata: {name: web-oidc, namespace: default}
stringData: {client-secret: web-secret}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}, {path: {type: Exact, value: /oauth2/callback}}, {path: {type: Exact, value: /logout}}]
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: web-login, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  oidc:
    provider: {issuer: "%[3]s"}
    clientID: web
    clientSecretRef: {name: web-oidc}
    scopes: [openid, email, profile]
    redirectPath: /oauth2/callback
    logoutPath: /logout
    postLogoutRedirectPath: /app/bye
    cookie: {sameSite: Lax}
    claimToHeaders: [{claim: email, header: x-user-email}]
    forwardAccessToken: true
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: api-jwt, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  jwt:
    providers:
    - name: dex
      issuer: "%[3]s"
      audiences: [web]
      remoteJWKS: {uri: "%[3]s/keys"}
      algorithms: [RS256]
      claimToHeaders: [{claim: email, header: x-user-email}, {claim: sub, header: x-user}]
`, port, backend, issuer)
}

// echoed is what the echo backend answers.
type echoed struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

func (e echoed) header(name string) string {
	if v := e.Headers[http.CanonicalHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// TestOIDCLoginWithDexAndChromium drives a real browser through the login
// at a real OpenID provider: the protected route redirects to Dex, the login
// form is filled and submitted, the browser lands on the URL it asked for
// and the backend sees the identity headers; two tabs log in at once; a
// request that asks for JSON gets 401; the access token works as a Bearer
// token on the JWT route and a forged one does not; logout ends the session.
func TestOIDCLoginWithDexAndChromium(t *testing.T) {
	port := dpPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	d := dex.Start(t, dex.Options{Clients: []dex.Client{{ID: "web", Secret: "web-secret", RedirectURIs: []string{base + "/oauth2/callback"}}}})
	echo := dpStartEcho(t, "echo")
	dir := t.TempDir()
	dpWriteFile(t, filepath.Join(dir, "config.yaml"), authConfig(port, echo.Port, d.Issuer()))
	xds, adm := freeAddr(t), freeAddr(t)
	p := dpStart(t, "sekisho run", "run", "-f", dir, "--xds-address", xds, "--admin-address", adm,
		"--authz-listen", freeAddr(t), "--ratelimit-listen", freeAddr(t))
	dpWaitReady(t, &dpRunning{dpProc: p, XDS: xds, Admin: adm}, 20*time.Second)

	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	// Without a session: a browser is sent to Dex, an API client gets 401.
	resp, _ := get("/app/page", map[string]string{"Accept": "text/html"})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, d.Issuer()+"/auth") {
		t.Fatalf("no session: %d Location %q, want 302 to %s/auth", resp.StatusCode, loc, d.Issuer())
	} else if u, _ := url.Parse(loc); u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("state") == "" || u.Query().Get("nonce") == "" {
		t.Fatalf("authorization request without PKCE S256, state or nonce: %s", loc)
	}
	for _, h := range []map[string]string{{"Accept": "application/json"}, {"X-Requested-With": "XMLHttpRequest"}} {
		if resp, _ := get("/app/page", h); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no session, %v: %d, want 401", h, resp.StatusCode)
		}
	}

	b := browser.Start(t)

	// Two tabs log in at the same time, each landing on its own URL.
	var wg sync.WaitGroup
	tabs := make([]context.Context, 2)
	finals := make([]string, 2)
	errs := make([]error, 2)
	for i := range tabs {
		tab, closeTab := b.NewTab()
		defer closeTab()
		tab, stop := context.WithTimeout(tab, 60*time.Second)
		defer stop()
		tabs[i] = tab
		wg.Add(1)
		go func() {
			defer wg.Done()
			finals[i], errs[i] = browser.Login(tab, fmt.Sprintf("%s/app/tab%d?q=%d", base, i, i), dex.Admin.Email, dex.Admin.Password)
		}()
	}
	wg.Wait()
	var seen echoed
	for i := range tabs {
		if errs[i] != nil {
			t.Fatalf("tab %d login: %v (at %s)", i, errs[i], finals[i])
		}
		if want := fmt.Sprintf("%s/app/tab%d?q=%d", base, i, i); finals[i] != want {
			t.Fatalf("tab %d landed on %s, want %s", i, finals[i], want)
		}
		text, err := browser.Text(tabs[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(text), &seen); err != nil {
			t.Fatalf("tab %d page is not the echo's JSON: %v\n%s", i, err, text)
		}
		if seen.header("x-user-email") != dex.Admin.Email {
			t.Fatalf("tab %d: backend saw x-user-email %q, want %s (headers %v)", i, seen.header("x-user-email"), dex.Admin.Email, seen.Headers)
		}
	}
	cookies, err := browser.Cookies(tabs[0], base+"/")
	if err != nil {
		t.Fatal(err)
	}
	var session bool
	for _, c := range cookies {
		if strings.HasPrefix(c.Name, "sekisho-session") {
			session = true
			if !c.HTTPOnly || string(c.SameSite) != "Lax" {
				t.Errorf("session cookie %s: HttpOnly %v SameSite %q", c.Name, c.HTTPOnly, c.SameSite)
			}
		}
	}
	if !session {
		t.Fatalf("no session cookie among %d cookies", len(cookies))
	}

	// The access token the backend received works as a Bearer token on the
	// JWT route; a forged one does not.
	token := strings.TrimPrefix(seen.header("Authorization"), "Bearer ")
	if token == "" || strings.Count(token, ".") != 2 {
		t.Fatalf("the backend got no Bearer access token: %q", seen.header("Authorization"))
	}
	resp, body := get("/api/me", map[string]string{"Authorization": "Bearer " + token, "x-user": "forged"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Dex's token on the JWT route: %d %s", resp.StatusCode, body)
	}
	var api echoed
	if err := json.Unmarshal(body, &api); err != nil {
		t.Fatal(err)
	}
	if api.header("x-user-email") != dex.Admin.Email || api.header("x-user") == "" || api.header("x-user") == "forged" {
		t.Fatalf("JWT route headers: %v", api.Headers)
	}
	if api.header("Authorization") != "" {
		t.Fatalf("the token was forwarded upstream: %v", api.Headers)
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forgedPayload := strings.Replace(string(payload), dex.Admin.Email, "root@example.com", 1)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedPayload)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	for name, tok := range map[string]string{"tampered payload": forged, "alg none": none} {
		if resp, _ := get("/api/me", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s token on the JWT route: %d, want 401", name, resp.StatusCode)
		}
	}
	if resp, _ := get("/api/me", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token on the JWT route: %d, want 401", resp.StatusCode)
	}
	// A valid Bearer token on the login route is not redirected.
	if resp, _ := get("/app/page", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != http.StatusOK {
		t.Fatalf("Bearer token on the login route: %d, want 200", resp.StatusCode)
	}

	// Logout ends the session: the next visit goes to Dex again.
	if _, err := browser.Navigate(tabs[0], base+"/logout"); err != nil {
		t.Fatal(err)
	}
	loc, err := browser.Navigate(tabs[0], base+"/app/again")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, d.Issuer()) {
		t.Fatalf("after logout, /app/again ended on %s, want Dex's login page", loc)
	}

}
