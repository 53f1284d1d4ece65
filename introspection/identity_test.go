package introspection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
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

// route is a route of e with audience aud (also its policy) and a cache of
// size identities (the default if 0).
func (e *env) route(aud string, size int) *Authorizer {
	return e.auth.Authorizer(AuthorizerConfig{Audience: aud, CacheSize: size})
}

// identity authorizes tok on rt and returns its identity JWT, verified.
func (e *env) identity(t testing.TB, rt *Authorizer, tok string) (string, verifiedJWT) {
	t.Helper()
	g, err := rt.Authorize(context.Background(), tok)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return g.JWT, verifyJWT(t, e.signer.JWKS(), g.JWT, e.signer.Alg())
}

func TestIdentityJWT(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	r := e.check(t, tok)
	jwt, v := e.identity(t, e.route(testAudience, 0), tok)

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
	jwt, _ := e.identity(t, e.route(testAudience, 0), e.issue(e.newClient("svc")).AccessToken)
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
			_, v := e.identity(t, e.route(testAudience, 0), tok)
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
	_, v := e.identity(t, e.route(testAudience, 0), e.issue(e.newClient("svc")).AccessToken)
	if exp, iat := v.num(t, "exp"), v.num(t, "iat"); exp-iat != 60 {
		t.Errorf("exp-iat = %d, want IdentityTTL 60s", exp-iat)
	}
}

// An identity JWT is signed only on a miss and never served past its own
// exp; a cached JWT is refreshed once 3/4 of its lifetime is gone.
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
			rt := e.route(testAudience, 0)
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
	rt := e.route(testAudience, 0)
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

// A cached identity is never served for a token that was revoked, or whose
// client was disabled, since it was cached.
func TestIdentityCacheRefusesRevoked(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		apply func(e *env, cl *clientstore.Client, tok string) error
		want  error
	}{
		{"token revoked", func(e *env, cl *clientstore.Client, tok string) error { return e.auth.Revoke(ctx, cl, tok) }, ErrRevoked},
		{"client disabled", func(e *env, cl *clientstore.Client, _ string) error {
			c := cl.Clone()
			c.Disabled = true
			_, err := e.cache.Update(ctx, c)
			return err
		}, ErrDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cl := e.newClient("svc")
			tok := e.issue(cl).AccessToken
			rt := e.route(testAudience, 0)
			e.identity(t, rt, tok)
			if rt.cache.get(tok) == nil {
				t.Fatal("the identity is not cached")
			}
			if err := tc.apply(e, cl, tok); err != nil {
				t.Fatal(err)
			}
			if g, err := rt.Authorize(ctx, tok); !errors.Is(err, tc.want) {
				t.Errorf("Authorize: %v, %v; want %v", g, err, tc.want)
			}
		})
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
		{"route audience wins", []string{a, b, "https://route.example.com"}, nil, "https://route.example.com", "https://route.example.com"},
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
			_, v := e.identity(t, e.route(tt.routeAud, 0), tok.AccessToken)
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

// owner and ext are always present, so backends see one shape.
func TestIdentityOwnerAndExtAlwaysPresent(t *testing.T) {
	e := newEnv(t)
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "bare", Scope: "s", Audience: []string{testAudience}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, v := e.identity(t, e.route(testAudience, 0), e.issue(cl).AccessToken)
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
	const a, b = "https://a.example.com", "https://b.example.com"
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "svc", Scope: "s", Audience: []string{a, b}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	tok := e.issue(cl).AccessToken
	ra, rb := e.route(a, 0), e.route(b, 0)
	ja, va := e.identity(t, ra, tok)
	jb, vb := e.identity(t, rb, tok)
	if ja == jb {
		t.Fatal("two routes returned the same JWT, want one per route")
	}
	if va.claims["aud"] != a || vb.claims["aud"] != b {
		t.Errorf("aud = %v and %v, want each route's own", va.claims["aud"], vb.claims["aud"])
	}
	if again, _ := e.identity(t, ra, tok); again != ja {
		t.Error("route a lost its cached JWT after route b signed one")
	}
}

func TestAuthorizerDefaults(t *testing.T) {
	e := newEnv(t)
	for _, size := range []int{0, -1} {
		rt := e.route("", size)
		if got := rt.cache.c.GetMaximum(); got != DefaultIdentityCacheSize {
			t.Errorf("Authorizer(CacheSize %d): cache bound %d, want DefaultIdentityCacheSize %d", size, got, DefaultIdentityCacheSize)
		}
		if rt.audience != nil {
			t.Errorf("Authorizer(Audience \"\"): audience = %q, want none (the token's own)", rt.audience)
		}
	}
}

// Requests and client updates run concurrently on the hot path;
// run under -race.
func TestIdentityConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = e.issue(cl).AccessToken
	}
	rt := e.route(testAudience, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				gr, err := rt.Authorize(ctx, toks[(g+i)%len(toks)])
				if err != nil || gr.JWT == "" {
					errs <- fmt.Errorf("Authorize: %v, %v", gr, err)
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
