package introspection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/offheap"
	"github.com/go-jose/go-jose/v4"
)

// verifiedJWT is an identity JWT checked the way a backend would check it.
type verifiedJWT struct {
	header map[string]any // the protected header as sent
	claims map[string]any // numbers as json.Number
	kid    string
	alg    string
}

// verifyJWT verifies jwt against the JWKS document jwks, allowing only alg
// (RFC 8725 §3.1: an allow-list, never the token's own choice), and finds
// the key by kid.
func verifyJWT(t testing.TB, jwks []byte, jwt, alg string) verifiedJWT {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS %s does not parse: %v", jwks, err)
	}
	jws, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("ParseSigned(%q, [%s]): %v", jwt, alg, err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("JWT has %d signatures, want 1", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q, want 1: %s", len(keys), h.KeyID, jwks)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("JWT does not verify against the JWKS key %q: %v", h.KeyID, err)
	}
	v := verifiedJWT{kid: h.KeyID, alg: h.Algorithm}
	rawHdr, err := base64.RawURLEncoding.DecodeString(strings.SplitN(jwt, ".", 2)[0])
	if err != nil {
		t.Fatalf("JWT header is not base64url: %v", err)
	}
	if err := json.Unmarshal(rawHdr, &v.header); err != nil {
		t.Fatalf("JWT header %s is not JSON: %v", rawHdr, err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v.claims); err != nil {
		t.Fatalf("JWT payload %s is not a JSON object: %v", payload, err)
	}
	return v
}

// num reads a numeric claim.
func (v verifiedJWT) num(t testing.TB, name string) int64 {
	t.Helper()
	n, ok := v.claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %q = %#v, want a number", name, v.claims[name])
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %q = %v, want an integer: %v", name, n, err)
	}
	return i
}

// identity checks tok and returns the route's identity JWT for it, verified.
func (e *env) identity(t testing.TB, rt *Route, tok string) (string, verifiedJWT) {
	t.Helper()
	r := e.check(t, tok)
	jwt, err := rt.Identity(&r)
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	return jwt, verifyJWT(t, e.signer.JWKS(), jwt, e.signer.Alg())
}

func TestIdentityJWT(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	r := e.check(t, tok)
	rt := e.auth.NewRoute(testAudience, 0)
	jwt, v := e.identity(t, rt, tok)

	if v.header["alg"] != AlgES256 || v.alg != AlgES256 {
		t.Errorf("header alg = %v, want %s", v.header["alg"], AlgES256)
	}
	if v.header["kid"] != e.signer.KeyID() || e.signer.KeyID() == "" {
		t.Errorf("header kid = %v, want the signer's key id %q", v.header["kid"], e.signer.KeyID())
	}
	// RFC 8725 §3.11: explicit typ. RFC 9068 §2.1: at+jwt marks an access
	// token, which an identity JWT must not pass for.
	if v.header["typ"] != "JWT" {
		t.Errorf(`header typ = %v, want "JWT" (and never "at+jwt")`, v.header["typ"])
	}
	for _, h := range []string{"jku", "x5u", "jwk"} {
		if _, ok := v.header[h]; ok {
			t.Errorf("header has %q, want no key-fetching hints", h)
		}
	}

	iat := v.num(t, "iat")
	wantStr := map[string]string{
		"iss":       testIssuer,
		"sub":       "svc",
		"aud":       testAudience, // one audience: a single string (RFC 7519 §4.1.3)
		"client_id": "svc",
		"scope":     testScope,
		"owner":     "team-a",
	}
	for k, want := range wantStr {
		if got, ok := v.claims[k].(string); !ok || got != want {
			t.Errorf("claim %s = %#v, want %q", k, v.claims[k], want)
		}
	}
	if iat != fixedNow.Unix() {
		t.Errorf("iat = %d, want now %d", iat, fixedNow.Unix())
	}
	if nbf := v.num(t, "nbf"); nbf != iat {
		t.Errorf("nbf = %d, want iat %d", nbf, iat)
	}
	if exp := v.num(t, "exp"); exp != iat+int64(DefaultIdentityTTL.Seconds()) {
		t.Errorf("exp = %d, want iat+IdentityTTL = %d", exp, iat+int64(DefaultIdentityTTL.Seconds()))
	}
	jti, _ := v.claims["jti"].(string)
	if jti == "" {
		t.Errorf("jti = %#v, want a non-empty string", v.claims["jti"])
	}
	if jti == r.Claims.ID.String() {
		t.Error("identity jti equals the access token's jti, want its own id so the token id does not leak to backends")
	}
	ext, _ := v.claims["ext"].(map[string]any)
	realm, _ := ext["realm"].(map[string]any)
	if realm["id"] != "r1" {
		t.Errorf("ext.realm.id = %#v, want %q (ext = %v)", realm["id"], "r1", v.claims["ext"])
	}
	wantKeys := []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "client_id", "scope", "owner", "ext"}
	if len(v.claims) != len(wantKeys) {
		t.Errorf("claims %v, want exactly %v", v.claims, wantKeys)
	}
	if strings.Contains(jwt, tok) || strings.Contains(jwt, strings.TrimPrefix(tok, TokenPrefix)) {
		t.Error("identity JWT contains the access token, want the bearer credential kept from backends")
	}
}

func TestIdentityJWTRefusedUnderOtherAlgorithms(t *testing.T) {
	e := newEnv(t)
	jwt, err := func() (string, error) {
		r := e.check(t, e.issue(e.newClient("svc")).AccessToken)
		return e.auth.NewRoute(testAudience, 0).Identity(&r)
	}()
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	// RFC 8725 §3.1: a verifier's allow-list decides, not the JWT.
	for _, algs := range [][]jose.SignatureAlgorithm{{jose.HS256}, {jose.RS256, jose.EdDSA}, {"none"}} {
		if _, err := jose.ParseSigned(jwt, algs); err == nil {
			t.Errorf("ParseSigned with allow-list %v accepted an ES256 JWT, want refused", algs)
		}
	}
}

func TestIdentityExpNeverPastTokenExp(t *testing.T) {
	e := newEnv(t)
	tok := e.issue(e.newClient("svc")).AccessToken
	tokenExp := fixedNow.Add(DefaultTokenTTL)
	tests := []struct {
		name    string
		now     time.Time
		wantExp int64
	}{
		{"token has long left", fixedNow, fixedNow.Add(DefaultIdentityTTL).Unix()},
		{"token ends exactly at identity exp", tokenExp.Add(-DefaultIdentityTTL), tokenExp.Unix()},
		{"token ends sooner", tokenExp.Add(-time.Minute), tokenExp.Unix()},
		{"token ends in a second", tokenExp.Add(-time.Second), tokenExp.Unix()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(tt.now)
			rt := e.auth.NewRoute(testAudience, 0)
			_, v := e.identity(t, rt, tok)
			if exp := v.num(t, "exp"); exp != tt.wantExp {
				t.Errorf("exp = %d, want min(iat+IdentityTTL, token exp) = %d", exp, tt.wantExp)
			}
			if iat := v.num(t, "iat"); iat != tt.now.Unix() {
				t.Errorf("iat = %d, want %d", iat, tt.now.Unix())
			}
		})
	}
}

func TestIdentityHonoursIdentityTTL(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.IdentityTTL = time.Minute }))
	_, v := e.identity(t, e.auth.NewRoute(testAudience, 0), e.issue(e.newClient("svc")).AccessToken)
	if exp, iat := v.num(t, "exp"), v.num(t, "iat"); exp-iat != 60 {
		t.Errorf("exp-iat = %d, want IdentityTTL 60s", exp-iat)
	}
}

// DESIGN.md hot path step 5: signed only on a miss, never served past its
// own exp; a cached JWT is refreshed once 3/4 of its lifetime is gone.
func TestIdentityCacheReuse(t *testing.T) {
	ttl := int64(DefaultIdentityTTL.Seconds())
	refreshAt := time.Duration(ttl*3/4) * time.Second
	tests := []struct {
		name    string
		advance time.Duration
		reuse   bool
	}{
		{"same instant", 0, true},
		{"one second later", time.Second, true},
		{"just before 3/4 of the lifetime", refreshAt - time.Second, true},
		{"at 3/4 of the lifetime", refreshAt, false},
		{"past the JWT's exp", DefaultIdentityTTL + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.issue(e.newClient("svc")).AccessToken
			rt := e.auth.NewRoute(testAudience, 0)
			e.identity(t, rt, tok) // cached the second time (the doorkeeper)
			first, v1 := e.identity(t, rt, tok)

			e.clock.Advance(tt.advance)
			second, v2 := e.identity(t, rt, tok)
			if got := second == first; got != tt.reuse {
				t.Fatalf("after %v: JWT reused = %v, want %v", tt.advance, got, tt.reuse)
			}
			if !tt.reuse {
				if v2.num(t, "iat") != fixedNow.Add(tt.advance).Unix() {
					t.Errorf("new JWT iat = %d, want the current time %d", v2.num(t, "iat"), fixedNow.Add(tt.advance).Unix())
				}
				if v2.claims["jti"] == v1.claims["jti"] {
					t.Error("new JWT has the old jti, want a fresh one")
				}
				// The fresh JWT is cached in turn.
				third, _ := e.identity(t, rt, tok)
				if third != second {
					t.Error("the re-signed JWT was not cached: a third call signed again")
				}
			}
		})
	}
}

func TestIdentityFollowsClientUpdate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	rt := e.auth.NewRoute(testAudience, 0)
	first, _ := e.identity(t, rt, tok)

	c := cl.Clone()
	c.Metadata = clientstore.Metadata{"realm": map[string]any{"id": "r2"}, "tier": "gold"}
	c.Owner = "team-b"
	if _, err := e.cache.Update(ctx, c); err != nil {
		t.Fatalf("Update: %v", err)
	}
	second, v := e.identity(t, rt, tok)
	if second == first {
		t.Fatal("Identity after a client update returned the cached JWT, want one made from the new snapshot")
	}
	ext, _ := v.claims["ext"].(map[string]any)
	realm, _ := ext["realm"].(map[string]any)
	if realm["id"] != "r2" || ext["tier"] != "gold" {
		t.Errorf("ext after update = %v, want realm.id r2 and tier gold", ext)
	}
	if v.claims["owner"] != "team-b" {
		t.Errorf("owner after update = %v, want team-b", v.claims["owner"])
	}
	if again, _ := e.identity(t, rt, tok); again != second {
		t.Error("JWT made from the new snapshot was not cached")
	}
}

func TestIdentityAudience(t *testing.T) {
	const a, b = "https://a.example.com", "https://b.example.com"
	tests := []struct {
		name     string
		clientAu []string
		requestA []string // audience asked for at issuance
		routeAud string
		want     any // decoded "aud", or nil for absent
	}{
		{"route audience wins", []string{a, b}, nil, "https://route.example.com", "https://route.example.com"},
		{"route empty, token has one", []string{a}, nil, "", a},
		{"route empty, token has two", []string{a, b}, nil, "", []any{a, b}},
		{"route empty, token down-scoped", []string{a, b}, []string{b}, "", b},
		{"route empty, token has none", nil, nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "svc", Scope: "s", Audience: tt.clientAu})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			tok, err := e.auth.Issue(cl, "", tt.requestA)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			_, v := e.identity(t, e.auth.NewRoute(tt.routeAud, 0), tok.AccessToken)
			got, present := v.claims["aud"]
			if tt.want == nil {
				if present {
					t.Errorf("aud = %#v, want no aud claim", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("aud = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// DESIGN.md: owner and ext are always present, so backends see one shape.
func TestIdentityOwnerAndExtAlwaysPresent(t *testing.T) {
	e := newEnv(t)
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "bare", Scope: "s", Audience: []string{testAudience}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, v := e.identity(t, e.auth.NewRoute(testAudience, 0), e.issue(cl).AccessToken)
	if v.claims["owner"] != "" {
		t.Errorf(`owner = %#v, want present and ""`, v.claims["owner"])
	}
	if ext, ok := v.claims["ext"].(map[string]any); !ok || len(ext) != 0 {
		t.Errorf("ext = %#v, want present and {}", v.claims["ext"])
	}
}

// Each route has its own audience and cache: one token gets one JWT per
// route.
func TestIdentityPerRoute(t *testing.T) {
	e := newEnv(t)
	tok := e.issue(e.newClient("svc")).AccessToken
	ra, rb := e.auth.NewRoute("https://a.example.com", 0), e.auth.NewRoute("https://b.example.com", 0)
	e.identity(t, ra, tok) // cached the second time (the doorkeeper)
	ja, va := e.identity(t, ra, tok)
	jb, vb := e.identity(t, rb, tok)
	if ja == jb {
		t.Fatal("two routes returned the same JWT, want one per route")
	}
	if va.claims["aud"] != "https://a.example.com" || vb.claims["aud"] != "https://b.example.com" {
		t.Errorf("aud = %v and %v, want each route's own", va.claims["aud"], vb.claims["aud"])
	}
	if again, _ := e.identity(t, ra, tok); again != ja {
		t.Error("route a lost its cached JWT after route b signed one")
	}
}

func TestIdentityCacheBounded(t *testing.T) {
	for _, size := range []int{1, 64, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := newEnv(t)
			cl := e.newClient("svc")
			rt := e.auth.NewRoute(testAudience, size)
			bound := rt.cache.perShard * identityShards
			if want := max(1, size/identityShards) * identityShards; bound != want {
				t.Fatalf("bound = %d, want %d", bound, want)
			}
			const tokens = 2000
			var last Result
			for i := 0; i < tokens; i++ {
				last = e.check(t, e.issue(cl).AccessToken)
				for range 2 { // cached the second time (the doorkeeper)
					if _, err := rt.Identity(&last); err != nil {
						t.Fatalf("Identity #%d: %v", i, err)
					}
				}
				if n := rt.cache.len(); n > bound {
					t.Fatalf("after %d tokens the cache holds %d entries, want at most %d", i+1, n, bound)
				}
			}
			if rt.cache.get(last.Token) == nil {
				t.Error("the most recent token's JWT is not cached")
			}
			if n := rt.cache.len(); n < bound/2 {
				t.Errorf("cache holds %d entries after %d tokens, want it to fill towards %d", n, tokens, bound)
			}
		})
	}
}

// The cache keeps its keys off the heap: under a stream of new tokens,
// with readers meanwhile, every hit is the JWT cached under that very key,
// and the arena's memory stays a bounded multiple of what the entries hold
// as compaction reclaims the evicted.
func TestIdentityCacheArena(t *testing.T) {
	c := newIdentityCache(64)
	c.arena = offheap.New(offheap.Options{ChunkSize: 8 << 10})
	jwtOf := func(i int) string { return fmt.Sprintf("eyJ.%0400d.sig", i) }
	keyOf := func(i int) string { return fmt.Sprintf("gat_token-%06d%0150d", i, i) }
	const n = 5000
	var next atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for k := r; ; k++ {
				select {
				case <-done:
					return
				default:
				}
				i := int(next.Load()) - k%50
				if i < 0 {
					continue
				}
				if g := c.get(keyOf(i)); g != nil && (g.JWT != jwtOf(i) || g.Bearer() != "Bearer "+jwtOf(i) || g.clientRev != uint64(i)) {
					t.Errorf("get(%s) = JWT %.20q… of grant %d", keyOf(i), g.JWT, g.clientRev)
					return
				}
			}
		})
	}
	for i := range n {
		g := testGrant(jwtOf(i), 1<<40)
		g.clientRev = uint64(i)
		cacheStore(c, keyOf(i), g, 0)
		next.Store(int64(i))
	}
	close(done)
	wg.Wait()
	if got := c.len(); got > 64 {
		t.Errorf("%d entries, want at most 64", got)
	}
	if g := c.get(keyOf(n - 1)); g == nil || g.JWT != jwtOf(n-1) {
		t.Errorf("the last JWT put is not cached: %+v", g)
	}
	c.arenaMu.Lock()
	st := c.arena.Stats()
	c.arenaMu.Unlock()
	live := c.len() * len(keyOf(0))
	if st.Used-st.Dead != live {
		t.Errorf("the arena counts %d live bytes, the entries hold %d", st.Used-st.Dead, live)
	}
	if st.Mapped > 3*live+12*(8<<10) {
		t.Errorf("%d bytes mapped for %d live bytes after %d puts", st.Mapped, live, n)
	}
}

// cacheStore caches g under key, past the doorkeeper.
func cacheStore(c *identityCache, key string, g *Grant, now int64) {
	c.store(maphash.String(c.seed, key), key, g, now)
}

// testGrant is a grant with only an identity JWT and an expiry.
func testGrant(jwt string, exp int64) *Grant {
	return &Grant{JWT: jwt, bearer: bearerPrefix + jwt, exp: exp}
}

// An identity is cached the second time its token is signed: tokens used
// once take no room and push out nothing, however many there are.
func TestIdentityCacheAdmission(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	rt := e.auth.NewRoute(testAudience, 64)
	hot := e.check(t, e.issue(cl).AccessToken)
	first, _ := rt.Identity(&hot)
	if rt.cache.len() != 0 {
		t.Fatal("a token signed once is cached")
	}
	second, _ := rt.Identity(&hot)
	if third, _ := rt.Identity(&hot); rt.cache.len() != 1 || third != second || second == first {
		t.Fatalf("after three requests: %d entries, JWTs reused %v/%v; want the second cached", rt.cache.len(), third == second, second == first)
	}
	for range 1000 {
		once := e.check(t, e.issue(cl).AccessToken)
		if _, err := rt.Identity(&once); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := rt.Identity(&hot); rt.cache.len() != 1 || again != second {
		t.Errorf("after 1000 tokens used once: %d entries, the hot token's JWT kept: %v", rt.cache.len(), again == second)
	}
}

func TestNewRouteDefaultCacheSize(t *testing.T) {
	e := newEnv(t)
	for _, size := range []int{0, -1} {
		rt := e.auth.NewRoute("", size)
		if want := DefaultIdentityCacheSize / identityShards; rt.cache.perShard != want {
			t.Errorf("NewRoute(size %d): perShard = %d, want %d (DefaultIdentityCacheSize)", size, rt.cache.perShard, want)
		}
		if rt.audience != nil {
			t.Errorf("NewRoute(\"\") audience = %q, want none (the token's own)", rt.audience)
		}
	}
}

// A full shard drops stale entries first, and otherwise exactly one.
func TestIdentityCacheEviction(t *testing.T) {
	const now = 1000
	tests := []struct {
		name      string
		exps      []int64 // of the entries filling the shard
		wantGone  []int   // indexes of entries that must be evicted
		wantAlive int     // how many of the old entries survive
	}{
		{"one stale", []int64{now + 10, now, now + 10, now + 10}, []int{1}, 3},
		{"two stale", []int64{now - 5, now + 10, now + 10, now - 1}, []int{0, 3}, 2},
		{"none stale", []int64{now + 1, now + 2, now + 3, now + 4}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newIdentityCache(4 * identityShards)
			if c.perShard != 4 {
				t.Fatalf("perShard = %d, want 4", c.perShard)
			}
			var inShard0 []string // tokens that all land in shard 0
			for i := 0; len(inShard0) < 101; i++ {
				if tok := fmt.Sprint("tok-", i); maphash.String(c.seed, tok)%identityShards == 0 {
					inShard0 = append(inShard0, tok)
				}
			}
			idIn0 := func(n byte) string { return inShard0[n] }
			for i, exp := range tt.exps {
				cacheStore(c, idIn0(byte(i)), testGrant(fmt.Sprint(i), exp), now)
			}
			fresh := idIn0(100)
			cacheStore(c, fresh, testGrant("fresh", now+100), now)
			if g := c.get(fresh); g == nil || g.JWT != "fresh" {
				t.Fatal("the new entry is not cached")
			}
			alive := 0
			for i := range tt.exps {
				if c.get(idIn0(byte(i))) != nil {
					alive++
				}
			}
			if alive != tt.wantAlive {
				t.Errorf("%d old entries survive, want %d", alive, tt.wantAlive)
			}
			for _, i := range tt.wantGone {
				if c.get(idIn0(byte(i))) != nil {
					t.Errorf("stale entry %d (exp %d) survived, want it evicted first", i, tt.exps[i])
				}
			}
			if n := c.len(); n > c.perShard {
				t.Errorf("len = %d, want at most perShard %d", n, c.perShard)
			}
			// Replacing an existing key in a full shard evicts nothing.
			before := c.len()
			cacheStore(c, fresh, testGrant("fresh2", now+100), now)
			if c.len() != before {
				t.Errorf("overwriting a cached key changed len from %d to %d", before, c.len())
			}
		})
	}
}

// Checks, identity JWTs and client updates run concurrently on the hot path;
// run under -race.
func TestIdentityConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = e.issue(cl).AccessToken
	}
	rt := e.auth.NewRoute(testAudience, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				r, err := e.auth.Check(toks[(g+i)%len(toks)])
				if err != nil {
					errs <- fmt.Errorf("Check: %w", err)
					return
				}
				jwt, err := rt.Identity(&r)
				if err != nil || jwt == "" {
					errs <- fmt.Errorf("Identity: %q, %v", jwt, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			c := cl.Clone()
			c.Metadata = clientstore.Metadata{"n": i}
			if _, err := e.cache.Update(ctx, c); err != nil {
				errs <- fmt.Errorf("Update: %w", err)
				return
			}
			e.clock.Advance(time.Minute / 2)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
