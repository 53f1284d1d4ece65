package introspection

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// DefaultIdentityCacheSize bounds the identity-JWT cache of one route.
const DefaultIdentityCacheSize = 100_000

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

// Route hands out identity JWTs for one protected route: the audience is
// the route's, and signed JWTs are cached per token so that signing happens
// only on a miss.
type Route struct {
	auth     *Authority
	audience []string
	cache    *identityCache
}

// NewRoute returns the identity minter of a route. aud is the route's
// audience (empty: the token's own audiences); cacheSize bounds its cache
// (DefaultIdentityCacheSize if not positive).
func (a *Authority) NewRoute(aud string, cacheSize int) *Route {
	if cacheSize <= 0 {
		cacheSize = DefaultIdentityCacheSize
	}
	rt := &Route{auth: a, cache: newIdentityCache(cacheSize)}
	if aud != "" {
		rt.audience = []string{aud}
	}
	return rt
}

// Identity returns a signed identity JWT for the checked token r. A cached
// JWT is reused only while it was made from the client's current snapshot
// and has at least a quarter of its lifetime left, so a backend never gets
// one past its exp and sees metadata changes on the next request.
func (rt *Route) Identity(r *Result) (string, error) {
	now := rt.auth.now().Unix()
	if e, ok := rt.cache.get(r.Claims.ID); ok && e.client == r.Client && now < e.refreshAt {
		return e.jwt, nil
	}
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
		return "", err
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
		return "", err
	}
	jwt, err := rt.auth.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	rt.cache.put(r.Claims.ID, identityEntry{
		jwt:       jwt,
		client:    r.Client,
		exp:       exp,
		refreshAt: now + (exp-now)*3/4,
	}, now)
	return jwt, nil
}

type identityEntry struct {
	jwt       string
	client    *clientstore.Client // the snapshot it was made from
	exp       int64
	refreshAt int64
}

const identityShards = 64

// identityCache is a bounded map sharded to keep lock contention low on
// the hot path; when a shard is full it drops stale entries, or else one
// at random.
type identityCache struct {
	perShard int
	shards   [identityShards]struct {
		mu sync.RWMutex
		m  map[TokenID]identityEntry
	}
}

func newIdentityCache(size int) *identityCache {
	c := &identityCache{perShard: max(1, size/identityShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[TokenID]identityEntry)
	}
	return c
}

func (c *identityCache) get(id TokenID) (identityEntry, bool) {
	s := &c.shards[id[0]%identityShards]
	s.mu.RLock()
	e, ok := s.m[id]
	s.mu.RUnlock()
	return e, ok
}

func (c *identityCache) put(id TokenID, e identityEntry, now int64) {
	s := &c.shards[id[0]%identityShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok && len(s.m) >= c.perShard {
		// Look at a few entries (map order is random): drop the stale
		// ones, or the last one seen if none is stale.
		var victim TokenID
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
	s.m[id] = e
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
