package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// jwk is one usable verification key of a JWKS.
type jwk struct {
	kid string
	alg string // "" when the JWKS does not pin one
	kty string // "RSA" or "EC"
	crv string // EC only
	key crypto.PublicKey
}

// keySet is one parsed JWKS document. A keySet is never modified; a refetch
// that changes the document makes a new one.
type keySet struct {
	keys  []*jwk
	byKid map[string][]*jwk
	sum   [32]byte // SHA-256 of the document
}

// Errors of key lookups; all end in a 401.
var (
	errUnknownKid   = errors.New("no key in the JWKS has the token's kid")
	errKidRequired  = errors.New("the JWKS has several keys and the token has no kid")
	errNoKeys       = errors.New("no verification keys are available")
	errKeyMismatch  = errors.New("the key does not fit the token's algorithm")
	minRSAKeyBits   = 2048
	maxJWKSBodySize = int64(1 << 20)
)

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWKS document. Keys of other types (oct, OKP), keys for
// encryption ("use": "enc") and keys that do not parse are skipped; a
// document with no usable key is an error.
func parseJWKS(doc []byte) (*keySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	ks := &keySet{byKid: map[string][]*jwk{}, sum: sha256.Sum256(doc)}
	var skipped []string
	for i, m := range raw.Keys {
		var j jwkJSON
		if err := json.Unmarshal(m, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := parseJWK(&j)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, j.Kid, err))
			continue
		}
		if k == nil {
			continue
		}
		ks.keys = append(ks.keys, k)
		ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
	}
	if len(ks.keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("JWKS has no usable RSA or EC key (%s)", strings.Join(skipped, "; "))
		}
		return nil, errors.New("JWKS has no usable RSA or EC key")
	}
	return ks, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// parseJWK returns nil, nil for a key type that is not used here.
func parseJWK(j *jwkJSON) (*jwk, error) {
	k := &jwk{kid: j.Kid, alg: j.Alg, kty: j.Kty}
	switch j.Kty {
	case "RSA":
		nb, err := b64(j.N)
		if err != nil || len(nb) == 0 {
			return nil, errors.New("bad modulus")
		}
		eb, err := b64(j.E)
		if err != nil || len(eb) == 0 || len(eb) > 4 {
			return nil, errors.New("bad exponent")
		}
		e := 0
		for _, c := range eb {
			e = e<<8 | int(c)
		}
		if e < 3 || e&1 == 0 {
			return nil, errors.New("bad exponent")
		}
		n := new(big.Int).SetBytes(nb)
		if n.BitLen() < minRSAKeyBits {
			return nil, fmt.Errorf("RSA key of %d bits (at least %d are required)", n.BitLen(), minRSAKeyBits)
		}
		k.key = &rsa.PublicKey{N: n, E: e}
		if j.Alg != "" && !strings.HasPrefix(j.Alg, "RS") && !strings.HasPrefix(j.Alg, "PS") {
			return nil, fmt.Errorf("RSA key with alg %q", j.Alg)
		}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		pt := make([]byte, 0, 1+2*size)
		pt = append(pt, 4)
		pt = append(pt, x...)
		pt = append(pt, y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		k.key, k.crv = pub, j.Crv
		if j.Alg != "" && j.Alg != ecAlgForCurve(j.Crv) {
			return nil, fmt.Errorf("EC key on %s with alg %q", j.Crv, j.Alg)
		}
	default:
		return nil, nil
	}
	return k, nil
}

func ecAlgForCurve(crv string) string {
	switch crv {
	case "P-256":
		return "ES256"
	case "P-384":
		return "ES384"
	case "P-521":
		return "ES512"
	}
	return ""
}

// fits reports whether k may verify a signature made with alg.
func (k *jwk) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return k.kty == "RSA"
	case strings.HasPrefix(alg, "ES"):
		return k.kty == "EC" && ecAlgForCurve(k.crv) == alg
	}
	return false
}

// find picks the key for a token's kid and alg. A token without kid is only
// accepted when the set has a single key.
func (ks *keySet) find(kid, alg string) (*jwk, error) {
	if kid == "" {
		if len(ks.keys) != 1 {
			return nil, errKidRequired
		}
		if !ks.keys[0].fits(alg) {
			return nil, errKeyMismatch
		}
		return ks.keys[0], nil
	}
	cands := ks.byKid[kid]
	if len(cands) == 0 {
		return nil, errUnknownKid
	}
	for _, k := range cands {
		if k.fits(alg) {
			return k, nil
		}
	}
	return nil, errKeyMismatch
}

// Refetch limits.
const (
	// kidRefetchInterval is the least time between two fetches caused by an
	// unknown kid.
	kidRefetchInterval = 10 * time.Second
	// failedRefetchInterval is how soon a JWKS is fetched again after a
	// failed fetch.
	failedRefetchInterval = 10 * time.Second
	// emptyRetryInterval is how soon a JWKS that never loaded is tried
	// again.
	emptyRetryInterval = time.Second
	jwksFetchTimeout   = 5 * time.Second
)

// keySource holds the keys of one JWKS: a fixed one (LocalJWKS) or one
// fetched over HTTP and cached.
type keySource struct {
	uri    string
	ttl    time.Duration
	client *http.Client
	clock  func() time.Time
	log    *slog.Logger
	fetchC func(result string)

	set atomic.Pointer[keySet]
	// due is when the set must be fetched again (unix nanoseconds); read
	// without the lock on every check.
	due atomic.Int64

	mu          sync.Mutex // held while fetching; guards the fields below
	lastAttempt time.Time
	lastKid     time.Time
}

func newStaticKeySource(ks *keySet) *keySource {
	s := &keySource{}
	s.set.Store(ks)
	s.due.Store(1<<63 - 1)
	return s
}

func newRemoteKeySource(uri string, ttl time.Duration, client *http.Client, clock func() time.Time, log *slog.Logger, fetchC func(string)) *keySource {
	if ttl <= 0 {
		ttl = DefaultJWKSCacheDuration
	}
	return &keySource{uri: uri, ttl: ttl, client: client, clock: clock, log: log, fetchC: fetchC}
}

// current returns the key set to verify with: the cached one while it is
// fresh. When it is due, one caller fetches it again while the others keep
// using the cached set; when there is none yet, callers wait for the fetch.
func (s *keySource) current(ctx context.Context) (*keySet, error) {
	ks := s.set.Load()
	if s.uri == "" {
		if ks == nil {
			return nil, errNoKeys
		}
		return ks, nil
	}
	if ks != nil && s.clock().UnixNano() < s.due.Load() {
		return ks, nil
	}
	if ks != nil {
		if !s.mu.TryLock() {
			return ks, nil
		}
	} else {
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	now := s.clock()
	ks = s.set.Load()
	if ks != nil && now.UnixNano() < s.due.Load() {
		return ks, nil
	}
	if ks == nil && !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < emptyRetryInterval {
		return nil, errNoKeys
	}
	if err := s.fetchLocked(ctx, now); err != nil && ks == nil {
		return nil, fmt.Errorf("%w: %v", errNoKeys, err)
	}
	return s.set.Load(), nil
}

// refetchForKid fetches the JWKS again because a token names a kid it does
// not have, at most once per kidRefetchInterval. It returns the set to
// look in again, or nil when no fetch was made (or it failed).
func (s *keySource) refetchForKid(ctx context.Context, seen *keySet) *keySet {
	if s.uri == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.set.Load(); cur != seen {
		// Another caller fetched a new set meanwhile.
		return cur
	}
	now := s.clock()
	if !s.lastKid.IsZero() && now.Sub(s.lastKid) < kidRefetchInterval {
		return nil
	}
	s.lastKid = now
	if err := s.fetchLocked(ctx, now); err != nil {
		return nil
	}
	return s.set.Load()
}

// fetchLocked fetches and parses the JWKS. On failure the cached set stays
// and is used; the next try is failedRefetchInterval later.
func (s *keySource) fetchLocked(ctx context.Context, now time.Time) error {
	s.lastAttempt = now
	ks, err := s.fetch(ctx)
	if err != nil {
		s.fetchC("error")
		s.log.Warn("JWKS fetch failed; keeping the cached keys", "uri", s.uri, "error", err, "cached", s.set.Load() != nil)
		retry := failedRefetchInterval
		if retry > s.ttl {
			retry = s.ttl
		}
		s.due.Store(now.Add(retry).UnixNano())
		return err
	}
	s.fetchC("success")
	if old := s.set.Load(); old == nil || old.sum != ks.sum {
		s.set.Store(ks)
		s.log.Info("JWKS loaded", "uri", s.uri, "keys", len(ks.keys))
	}
	s.due.Store(now.Add(s.ttl).UnixNano())
	return nil
}

func (s *keySource) fetch(ctx context.Context) (*keySet, error) {
	// The fetch is the service's own: it outlives the request that caused
	// it, so that one impatient caller does not fail it for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBodySize+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if int64(len(body)) > maxJWKSBodySize {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBodySize)
	}
	return parseJWKS(bytes.TrimSpace(body))
}

// key returns the key for a token's kid and alg, fetching the JWKS again
// (rate limited) when the kid is unknown. The key set the key came from is
// returned too: cached verifications are only reused while it is current.
func (s *keySource) key(ctx context.Context, kid, alg string) (*jwk, *keySet, error) {
	ks, err := s.current(ctx)
	if err != nil {
		return nil, nil, err
	}
	k, err := ks.find(kid, alg)
	if errors.Is(err, errUnknownKid) {
		if ks2 := s.refetchForKid(ctx, ks); ks2 != nil {
			ks = ks2
			k, err = ks.find(kid, alg)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return k, ks, nil
}
