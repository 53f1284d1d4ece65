package introspection

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// DefaultIdentityCacheSize bounds the identity-JWT cache of one route.
const DefaultIdentityCacheSize = 10_000

// identityClaims is the payload of an identity JWT (DESIGN.md, "The
// identity JWT"). owner and ext are always present so backends see one
// shape.
type identityClaims struct {
	Iss      string               `json:"iss"`
	Sub      string               `json:"sub"`
	Aud      audience             `json:"aud,omitempty"`
	Iat      int64                `json:"iat"`
	Nbf      int64                `json:"nbf"`
	Exp      int64                `json:"exp"`
	Jti      string               `json:"jti"`
	ClientID string               `json:"client_id"`
	Scope    string               `json:"scope"`
	Owner    string               `json:"owner"`
	Ext      clientstore.Metadata `json:"ext"`
}

// audience marshals as a single string when it has one entry, as most JWT
// libraries expect, and as an array otherwise (RFC 7519 §4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts either form.
func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = l
	return nil
}

// Route authorizes requests for one protected route and hands out its
// identity JWTs. The outcome for a token — checked claims, signed identity
// JWT, header values, placeholders — is cached as a Grant keyed by the
// token string, so a warm request neither decrypts nor signs: it looks the
// token up, then re-checks what can change (expiry, revocation, the
// client's current snapshot) and the route policy.
type Route struct {
	auth     *Authority
	audience []string // aud of identity JWTs; nil: the token's own
	scopes   []string // policy: all required
	needAud  string   // policy: must be one of the token's audiences
	cache    *identityCache
}

// ErrInsufficientScope is a token valid but lacking the route's scope or
// audience (RFC 6750 §3.1 insufficient_scope).
var ErrInsufficientScope = errors.New("token lacks a required scope or audience")

// ScopeError is ErrInsufficientScope naming the client, for logs.
type ScopeError struct{ ClientID string }

func (e *ScopeError) Error() string { return ErrInsufficientScope.Error() }

// Is makes errors.Is(err, ErrInsufficientScope) hold.
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// NewRoute returns the identity minter of a route. aud is the route's
// audience (empty: the token's own audiences); cacheSize bounds its cache
// (DefaultIdentityCacheSize if not positive).
func (a *Authority) NewRoute(aud string, cacheSize int) *Route {
	return a.NewPolicyRoute(nil, aud, cacheSize)
}

// NewPolicyRoute is NewRoute with the route's policy: every scope in
// scopes is required, and aud, if set, must be one of the token's
// audiences.
func (a *Authority) NewPolicyRoute(scopes []string, aud string, cacheSize int) *Route {
	if cacheSize <= 0 {
		cacheSize = DefaultIdentityCacheSize
	}
	rt := &Route{auth: a, cache: newIdentityCache(cacheSize), scopes: scopes, needAud: aud}
	if aud != "" {
		rt.audience = []string{aud}
	}
	return rt
}

// Grant is what a request with a valid token gets on a route. It is shared
// between requests: never modify it or its slices.
type Grant struct {
	Result Result
	JWT    string   // the identity JWT
	Header []string // {JWT}, ready for an http.Header
	Bearer []string // {"Bearer " + JWT}, for the Authorization header
	// Placeholder resolves gatehouse.client_id, gatehouse.owner,
	// gatehouse.scope and gatehouse.metadata.<path>.
	Placeholder func(key string) (any, bool)

	exp       int64
	refreshAt int64
}

// Authorize checks token for this route: valid (else the token error),
// then the route policy on every request, cached or not (else
// ErrInsufficientScope). It signs an identity JWT only on a cache miss.
func (rt *Route) Authorize(token string) (*Grant, error) {
	now := rt.auth.now().Unix()
	if g := rt.cache.get(token); g != nil && now < g.refreshAt && rt.current(g) {
		if !rt.allows(&g.Result) {
			return nil, &ScopeError{ClientID: g.Result.Client.ID}
		}
		return g, nil
	}
	res, err := rt.auth.Check(token)
	if err != nil {
		return nil, err
	}
	if !rt.allows(&res) {
		return nil, &ScopeError{ClientID: res.Client.ID}
	}
	return rt.grant(&res, now)
}

// current reports whether a cached grant still stands: its client is the
// one it was made for, unchanged, and its token was not revoked since.
func (rt *Route) current(g *Grant) bool {
	c, ok := rt.auth.clients.Get(g.Result.Client.ID)
	return ok && c == g.Result.Client && !rt.auth.revocations.Has(g.Result.Claims.ID)
}

func (rt *Route) allows(r *Result) bool {
	return r.HasScopes(rt.scopes) && (rt.needAud == "" || r.HasAudience(rt.needAud))
}

// Identity returns a signed identity JWT for the checked token r. A cached
// JWT is reused only while it was made from the client's current snapshot
// and has at least a quarter of its lifetime left, so a backend never gets
// one past its exp and sees metadata changes on the next request.
func (rt *Route) Identity(r *Result) (string, error) {
	now := rt.auth.now().Unix()
	if g := rt.cache.get(r.Token); g != nil && g.Result.Client == r.Client && now < g.refreshAt {
		return g.JWT, nil
	}
	g, err := rt.grant(r, now)
	if err != nil {
		return "", err
	}
	return g.JWT, nil
}

// grant signs a new identity JWT for r and caches the grant.
func (rt *Route) grant(r *Result, now int64) (*Grant, error) {
	exp := now + int64(rt.auth.cfg.IdentityTTL.Seconds())
	if r.Claims.ExpiresAt < exp {
		exp = r.Claims.ExpiresAt
	}
	aud := rt.audience
	if aud == nil {
		aud = r.Claims.Audience
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, err
	}
	ext := r.Client.Metadata
	if ext == nil {
		ext = clientstore.Metadata{}
	}
	payload, err := json.Marshal(identityClaims{
		Iss:      rt.auth.cfg.Issuer,
		Sub:      r.Client.ID,
		Aud:      aud,
		Iat:      now,
		Nbf:      now,
		Exp:      exp,
		Jti:      base64.RawURLEncoding.EncodeToString(jti[:]),
		ClientID: r.Client.ID,
		Scope:    r.Claims.Scope,
		Owner:    r.Client.Owner,
		Ext:      ext,
	})
	if err != nil {
		return nil, err
	}
	jwt, err := rt.auth.signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	g := &Grant{
		Result:    *r,
		JWT:       jwt,
		Header:    []string{jwt},
		Bearer:    []string{"Bearer " + jwt},
		exp:       exp,
		refreshAt: now + (exp-now)*3/4,
	}
	// The token string may be a slice of a request header: keep a copy of
	// our own, not the whole header.
	g.Result.Token = strings.Clone(r.Token)
	g.Placeholder = placeholders(g.Result.Client, g.Result.Claims.Scope)
	rt.cache.put(g.Result.Token, g, now)
	return g, nil
}

// placeholders resolves the gatehouse.* placeholders of a grant; the
// values are boxed once here, not on every request.
func placeholders(c *clientstore.Client, scope string) func(string) (any, bool) {
	var id, owner, sc any = c.ID, c.Owner, scope
	md := c.Metadata
	return func(key string) (any, bool) {
		rest, ok := strings.CutPrefix(key, "gatehouse.")
		if !ok {
			return nil, false
		}
		switch rest {
		case "client_id":
			return id, true
		case "owner":
			return owner, true
		case "scope":
			return sc, true
		}
		if path, ok := strings.CutPrefix(rest, "metadata."); ok {
			return md.Lookup(path)
		}
		return nil, false
	}
}

const identityShards = 64

// identityCache is a bounded map of grants by token, sharded to keep lock
// contention low on the hot path; when a shard is full it drops stale
// entries, or else one at random.
type identityCache struct {
	perShard int
	seed     maphash.Seed
	shards   [identityShards]struct {
		mu sync.RWMutex
		m  map[string]*Grant
	}
}

func newIdentityCache(size int) *identityCache {
	c := &identityCache{perShard: max(1, size/identityShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*Grant)
	}
	return c
}

func (c *identityCache) shard(token string) int {
	return int(maphash.String(c.seed, token) % identityShards)
}

func (c *identityCache) get(token string) *Grant {
	s := &c.shards[c.shard(token)]
	s.mu.RLock()
	g := s.m[token]
	s.mu.RUnlock()
	return g
}

func (c *identityCache) put(token string, g *Grant, now int64) {
	s := &c.shards[c.shard(token)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[token]; !ok && len(s.m) >= c.perShard {
		// Look at a few entries (map order is random): drop the stale
		// ones, or the last one seen if none is stale.
		var victim string
		freed, seen := false, 0
		for k, old := range s.m {
			if old.exp <= now {
				delete(s.m, k)
				freed = true
			}
			victim = k
			if seen++; seen == 8 {
				break
			}
		}
		if !freed {
			delete(s.m, victim)
		}
	}
	s.m[token] = g
}

// len is the number of cached entries.
func (c *identityCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
