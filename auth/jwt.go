package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token checks use this leeway for exp, nbf and iat.
const clockLeeway = 30 * time.Second

// maxTokenCacheTTL bounds how long one verification is reused (tokens
// without exp are verified again after it).
const maxTokenCacheTTL = 10 * time.Minute

// defaultTokenCacheSize bounds the verified tokens kept per policy unless
// Options.TokenCacheSize says otherwise.
const defaultTokenCacheSize = 16384

// Token locations.
const (
	locHeader = iota
	locCookie
	locParam
)

type tokenLoc struct {
	kind   int
	name   string // header names in lower case
	prefix string // headers only
}

func locsOf(e *ExtractFrom) []tokenLoc {
	if e == nil {
		return []tokenLoc{{kind: locHeader, name: "authorization", prefix: "Bearer "}}
	}
	var out []tokenLoc
	for _, h := range e.Headers {
		out = append(out, tokenLoc{kind: locHeader, name: strings.ToLower(h.Name), prefix: h.ValuePrefix})
	}
	for _, c := range e.Cookies {
		out = append(out, tokenLoc{kind: locCookie, name: c})
	}
	for _, p := range e.Params {
		out = append(out, tokenLoc{kind: locParam, name: p})
	}
	return out
}

// jwtProvider verifies the tokens of one issuer.
type jwtProvider struct {
	name         string
	issuer       string
	parser       *jwt.Parser
	keys         *keySource
	claimHeaders []claimHeader
	forward      bool
	locs         []tokenLoc
}

func (p *jwtProvider) reads(l tokenLoc) bool {
	for _, x := range p.locs {
		if x == l {
			return true
		}
	}
	return false
}

// jwtAuth is the JWT part of one policy.
type jwtAuth struct {
	optional  bool
	providers []*jwtProvider
	locs      []tokenLoc // every provider's, in order, without repeats
	cache     *verifiedCache[*jwtResult]
	clock     func() time.Time
	policyHdr []string
}

// jwtResult is a verified token.
type jwtResult struct {
	prov *jwtProvider
	set  *keySet // the key set that verified it
	id   *identity
}

func newJWTAuth(cfg *JWT, keys []*keySource, clock func() time.Time, policyHdr []string, cacheSize int) *jwtAuth {
	a := &jwtAuth{
		optional:  cfg.Optional,
		cache:     newVerifiedCache[*jwtResult](cacheSize),
		clock:     clock,
		policyHdr: policyHdr,
	}
	for i := range cfg.Providers {
		pc := &cfg.Providers[i]
		algs := pc.Algorithms
		if len(algs) == 0 {
			algs = DefaultAlgorithms
		}
		opts := []jwt.ParserOption{
			jwt.WithValidMethods(algs),
			jwt.WithIssuer(pc.Issuer),
			jwt.WithLeeway(clockLeeway),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(clock),
		}
		if len(pc.Audiences) > 0 {
			opts = append(opts, jwt.WithAudience(pc.Audiences...))
		}
		p := &jwtProvider{
			name:         pc.Name,
			issuer:       pc.Issuer,
			parser:       jwt.NewParser(opts...),
			keys:         keys[i],
			claimHeaders: claimHeadersOf(pc.ClaimToHeaders),
			forward:      pc.ForwardToken,
			locs:         locsOf(pc.ExtractFrom),
		}
		a.providers = append(a.providers, p)
		for _, l := range p.locs {
			dup := false
			for _, x := range a.locs {
				dup = dup || x == l
			}
			if !dup {
				a.locs = append(a.locs, l)
			}
		}
	}
	return a
}

// extract finds the token: the first configured place that has one.
func (a *jwtAuth) extract(r *request) (string, tokenLoc, bool) {
	for _, l := range a.locs {
		var v string
		var ok bool
		switch l.kind {
		case locHeader:
			v, ok = r.headers[l.name]
			if ok && l.prefix != "" {
				if len(v) < len(l.prefix) || !strings.EqualFold(v[:len(l.prefix)], l.prefix) {
					ok = false
				} else {
					v = v[len(l.prefix):]
				}
			}
			v = strings.TrimSpace(v)
		case locCookie:
			v, ok = r.cookie(l.name)
		case locParam:
			v, ok = r.param(l.name)
		}
		if ok && v != "" {
			return v, l, true
		}
	}
	return "", tokenLoc{}, false
}

// authenticate verifies the request's token. found is false when there is
// none; err is set for a token that does not verify.
func (a *jwtAuth) authenticate(ctx context.Context, r *request) (res *jwtResult, loc tokenLoc, found bool, err error) {
	tok, loc, found := a.extract(r)
	if !found {
		return nil, loc, false, nil
	}
	now := a.clock()
	if e, ok := a.cache.get(tok, now); ok && e.prov.reads(loc) {
		// The verification stands while the key set that made it is the
		// current one (current also fetches the JWKS again when it is due).
		if ks, err := e.prov.keys.current(ctx); err == nil && ks == e.set {
			return e, loc, true, nil
		}
	}
	res, exp, err := a.verify(ctx, tok, loc)
	if err != nil {
		return nil, loc, true, err
	}
	a.cache.put(tok, res, exp, now)
	return res, loc, true, nil
}

var errUnknownIssuer = errors.New("no provider for the token's issuer reads it from where it was sent")

// verify checks a token fully. exp is how long the result may be reused.
func (a *jwtAuth) verify(ctx context.Context, tok string, loc tokenLoc) (*jwtResult, time.Time, error) {
	var prov *jwtProvider
	if len(a.providers) == 1 {
		prov = a.providers[0]
	} else {
		iss, err := peekIssuer(tok)
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, p := range a.providers {
			if p.issuer == iss {
				prov = p
				break
			}
		}
	}
	if prov == nil || !prov.reads(loc) {
		return nil, time.Time{}, errUnknownIssuer
	}
	var set *keySet
	claims := jwt.MapClaims{}
	_, err := prov.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// No header extension is understood here (RFC 7515, 4.1.11).
			return nil, errors.New("token has critical header parameters")
		}
		kid := ""
		if v, ok := t.Header["kid"]; ok {
			s, ok := v.(string)
			if !ok {
				return nil, errors.New("kid is not a string")
			}
			kid = s
		}
		k, ks, err := prov.keys.key(ctx, kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		set = ks
		return k.key, nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	now := a.clock()
	until := now.Add(maxTokenCacheTTL)
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		if t := e.Add(clockLeeway); t.Before(until) {
			until = t
		}
	}
	return &jwtResult{prov: prov, set: set, id: newIdentity(claims, prov.claimHeaders, a.policyHdr)}, until, nil
}

// peekIssuer reads "iss" from a token's payload without verifying it, to
// choose the provider that verifies it.
func peekIssuer(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("token is not a JWS in compact form")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("token payload: %w", err)
	}
	var p struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("token payload: %w", err)
	}
	s, ok := p.Iss.(string)
	if !ok || s == "" {
		return "", errors.New("token has no issuer")
	}
	return s, nil
}

// carrierRemoval says how the token is taken out of the request sent
// upstream.
func carrierRemoval(r *request, loc tokenLoc, x *okParts) {
	switch loc.kind {
	case locHeader:
		x.remove = append(x.remove, loc.name)
	case locCookie:
		stripCookies(r, x, func(n string) bool { return n == loc.name })
	case locParam:
		x.queryRemove = append(x.queryRemove, loc.name)
	}
}

// stripCookies removes some cookies from the Cookie header sent upstream.
func stripCookies(r *request, x *okParts, drop func(string) bool) {
	if r.headers["cookie"] == "" {
		return
	}
	rest, dropped := r.cookieHeaderWithout(drop)
	if !dropped {
		return
	}
	if rest == "" {
		x.remove = append(x.remove, "cookie")
	} else {
		x.headers = append(x.headers, setHeader("cookie", rest))
	}
}
