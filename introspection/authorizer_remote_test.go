package introspection

// Authorizers of routes that front another authorization server: a fake
// Introspector stands in for introspection/remote, so these tests see only
// what the authorizer does with a remote answer.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// fakeIntrospector answers from a table and counts calls.
type fakeIntrospector struct {
	mu      sync.Mutex
	calls   int
	answers map[string]Result
	err     error  // if set, every call fails with it
	addr    string // of the last call
}

func newFakeIntrospector() *fakeIntrospector {
	return &fakeIntrospector{answers: map[string]Result{}}
}

func (f *fakeIntrospector) Introspect(_ context.Context, token, addr string) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.addr = addr
	if f.err != nil {
		return Result{}, f.err
	}
	r, ok := f.answers[token]
	if !ok {
		return Result{}, fmt.Errorf("%w: inactive", ErrInvalidToken)
	}
	r.Token = token
	return r, nil
}

func (f *fakeIntrospector) set(token string, r Result) {
	f.mu.Lock()
	f.answers[token] = r
	f.mu.Unlock()
}

func (f *fakeIntrospector) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

const remoteIssuer = "https://hydra.example.com/"

// remoteResult is what introspection/remote makes of a Hydra answer for a
// client_credentials token of clientID, valid for an hour from now and
// cacheable for 30 s.
func remoteResult(now time.Time, clientID string, ext clientstore.Metadata) Result {
	return Result{
		Claims: Claims{
			ClientID: clientID, Scope: testScope, Audience: []string{testAudience},
			IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
		},
		Issuer: remoteIssuer,
		Remote: &Remote{Subject: clientID, JTI: "remote-jti", Ext: ext, Until: now.Add(30 * time.Second)},
	}
}

// remoteRoute is a route of e fronting fi.
func (e *env) remoteRoute(fi Introspector, enrich Enrichment, scopes ...string) *Authorizer {
	return e.auth.Authorizer(AuthorizerConfig{Scopes: scopes, Audience: testAudience, Remote: fi, Enrich: enrich})
}

func (e *env) authorize(t testing.TB, rt *Authorizer, tok string) (*Identity, verifiedJWT) {
	t.Helper()
	g, err := rt.Authorize(context.Background(), tok)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return g, verifyJWT(t, e.signer.JWKS(), g.JWT, e.signer.Alg())
}

// A remote token gets the same kind of identity JWT as a local one: signed
// by Gatehouse, sub and client_id from the remote answer, the route's aud,
// exp never past the token's, and the remote ext.
func TestRemoteTokenIdentity(t *testing.T) {
	e := newEnv(t)
	fi := newFakeIntrospector()
	r := remoteResult(fixedNow, "svc-remote", clientstore.Metadata{"realm": map[string]any{"id": "r-remote"}})
	r.Remote.Owner = "team-remote"
	r.Claims.ExpiresAt = fixedNow.Add(time.Minute).Unix()
	fi.set("ory_at_abc", r)
	g, v := e.authorize(t, e.remoteRoute(fi, ""), "ory_at_abc")

	want := map[string]any{"iss": testIssuer, "sub": "svc-remote", "client_id": "svc-remote", "aud": testAudience,
		"scope": testScope, "owner": "team-remote", "ext": map[string]any{"realm": map[string]any{"id": "r-remote"}}}
	for k, w := range want {
		if !reflect.DeepEqual(v.claims[k], w) {
			t.Errorf("claim %s = %#v, want %#v", k, v.claims[k], w)
		}
	}
	if exp := v.num(t, "exp"); exp != r.Claims.ExpiresAt {
		t.Errorf("exp = %d, want the access token's exp %d (before iat+identity_ttl)", exp, r.Claims.ExpiresAt)
	}
	if v.header["typ"] != IdentityType {
		t.Errorf("typ = %v, want %s", v.header["typ"], IdentityType)
	}
	for key, w := range map[string]any{"gatehouse.client_id": "svc-remote", "gatehouse.owner": "team-remote",
		"gatehouse.scope": testScope, "gatehouse.metadata.realm.id": "r-remote"} {
		if got, ok := g.Placeholder(key); !ok || got != w {
			t.Errorf("placeholder %s = %v, %v; want %v", key, got, ok, w)
		}
	}
	if g.Result.Token != "" || g.Result.Issuer != remoteIssuer {
		t.Errorf("identity keeps token %q issuer %q; want no token and the remote issuer", g.Result.Token, g.Result.Issuer)
	}
	if rt := e.remoteRoute(fi, ""); rt.cache.get("ory_at_abc") != nil {
		t.Error("fresh route has the token cached")
	}
}

// Both paths produce the same identity: a local token of client svc, and a
// remote token the remote server says is svc's, enriched with the local
// record, give identity JWTs that differ only in jti.
func TestSameIdentityForLocalAndRemoteTokens(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	local := e.check(t, e.issue(cl).AccessToken)
	fi := newFakeIntrospector()
	r := remoteResult(fixedNow, "svc", nil)
	r.Claims.ExpiresAt = local.Claims.ExpiresAt
	fi.set("ory_at_svc", r)
	rt := e.remoteRoute(fi, "")

	_, lv := e.authorize(t, rt, local.Token)
	_, rv := e.authorize(t, rt, "ory_at_svc")
	delete(lv.claims, "jti")
	delete(rv.claims, "jti")
	if !reflect.DeepEqual(lv.claims, rv.claims) {
		t.Errorf("identity claims differ:\nlocal  %v\nremote %v", lv.claims, rv.claims)
	}
	if fi.count() != 1 {
		t.Errorf("%d remote calls, want 1: the local token must not be sent", fi.count())
	}
}

// Gatehouse's own tokens are checked locally, valid or not, and never
// reach the remote server; anything else goes there.
func TestOwnTokensStayLocal(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	opaque := e.issue(cl).AccessToken
	jwtCl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "jwt-svc", Scope: testScope,
		Audience: []string{testAudience}, AccessTokenStrategy: clientstore.TokenStrategyJWT})
	if err != nil {
		t.Fatal(err)
	}
	ownJWT := e.issue(jwtCl).AccessToken
	if strings.HasPrefix(ownJWT, TokenPrefix) {
		t.Fatal("test set-up: the JWT client got an opaque token")
	}
	// A JWT access token under another key id: someone else's.
	otherKid := jwtWithHeader(t, `{"alg":"ES256","typ":"at+jwt","kid":"someone-else"}`)
	forgedOwn := jwtWithHeader(t, fmt.Sprintf(`{"alg":"ES256","typ":"at+jwt","kid":%q}`, e.signer.KeyID()))

	cases := []struct {
		name   string
		token  string
		remote bool  // expect a remote call
		err    error // expected error, nil: granted
	}{
		{"own opaque token", opaque, false, nil},
		{"own JWT access token", ownJWT, false, nil},
		{"tampered own opaque token", opaque[:len(opaque)-2] + "AA", false, ErrInvalidToken},
		{"forged JWT with our kid", forgedOwn, false, ErrInvalidToken},
		{"prefix only", TokenPrefix + "xyz", false, ErrInvalidToken},
		{"JWT of another issuer", otherKid, true, ErrInvalidToken},
		{"opaque token of another server", "ory_at_zzz", true, ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fi := newFakeIntrospector()
			_, err := e.remoteRoute(fi, "").Authorize(context.Background(), tc.token)
			if (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("Authorize: %v, want %v", err, tc.err)
			}
			if got := fi.count() > 0; got != tc.remote {
				t.Errorf("remote called: %v, want %v", got, tc.remote)
			}
		})
	}
}

// jwtWithHeader is a syntactically plausible JWT with the given header and
// no valid signature.
func jwtWithHeader(t testing.TB, header string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(`{"sub":"x"}`)) + "." + enc([]byte("sig"))
}

// After a key rotation our JWT access tokens signed under the previous key
// are still ours: a route that fronts another server must check them
// locally and never send them upstream.
func TestRotatedJWTStaysLocal(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.AccessTokenStrategy = "jwt" }))
	tok := e.issue(e.newClient("svc")).AccessToken
	if _, err := RotateKeys(context.Background(), e.store, e.sealer, e.signer, 2*time.Hour, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	fi := newFakeIntrospector()
	if _, err := e.remoteRoute(fi, "").Authorize(context.Background(), tok); err != nil {
		t.Errorf("Authorize of our JWT signed before the rotation: %v, want it granted", err)
	}
	if n := fi.count(); n != 0 {
		t.Errorf("our token was sent to the remote server %d time(s), want never", n)
	}
}

// The route policy runs on every request, cached or not (Oathkeeper's
// GHSA-qvp4-rpmr-xwrr was a cached introspection result that skipped the
// scope check): one remote answer, shared by two routes, passes the route
// that asks for nothing and fails the one that asks for a missing scope,
// and an identity slipped into the stricter route's cache is refused too.
func TestRemotePolicyOnEveryHit(t *testing.T) {
	e := newEnv(t)
	fi := newFakeIntrospector()
	fi.set("ory_at_x", remoteResult(fixedNow, "svc", nil))
	open := e.remoteRoute(fi, "")
	strict := e.remoteRoute(fi, "", "orders:admin")

	g, _ := e.authorize(t, open, "ory_at_x")
	for i := range 3 {
		if _, err := strict.Authorize(context.Background(), "ory_at_x"); !errors.Is(err, ErrInsufficientScope) {
			t.Fatalf("strict route, request %d: %v, want ErrInsufficientScope", i, err)
		}
	}
	strict.cache.put(remoteKey("ory_at_x"), g)
	if _, err := strict.Authorize(context.Background(), "ory_at_x"); !errors.Is(err, ErrInsufficientScope) {
		t.Fatalf("strict route with a cached identity: %v, want ErrInsufficientScope", err)
	}
	before := fi.count()
	if again, err := open.Authorize(context.Background(), "ory_at_x"); err != nil || again != g {
		t.Fatalf("open route again: %v, want its cached identity", err)
	}
	if fi.count() != before {
		t.Error("a cached identity called the remote server again")
	}

	noAud := remoteResult(fixedNow, "svc", nil)
	noAud.Claims.Audience = []string{"https://other.example.com"}
	fi.set("ory_at_other_aud", noAud)
	if _, err := open.Authorize(context.Background(), "ory_at_other_aud"); !errors.Is(err, ErrInsufficientScope) {
		t.Errorf("token for another audience: %v, want ErrInsufficientScope", err)
	}
}

// A cached identity of a remote token is reused only within the remote
// answer's Until (cache_ttl) and never past the token's exp; the clock is
// injected, nothing sleeps.
func TestRemoteIdentityLifetime(t *testing.T) {
	cases := []struct {
		name      string
		expIn     time.Duration
		untilIn   time.Duration
		reusedFor time.Duration // the identity is reused until just before this
	}{
		{"cache_ttl first", time.Hour, 30 * time.Second, 30 * time.Second},
		{"exp first", 20 * time.Second, 20 * time.Second, 15 * time.Second}, // 3/4 of the 20 s identity lifetime
		{"identity refresh first", time.Hour, 10 * time.Minute, 225 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fi := newFakeIntrospector()
			r := remoteResult(fixedNow, "svc", nil)
			r.Claims.ExpiresAt = fixedNow.Add(tc.expIn).Unix()
			r.Remote.Until = fixedNow.Add(tc.untilIn)
			fi.set("ory_at_t", r)
			rt := e.remoteRoute(fi, "")
			g, v := e.authorize(t, rt, "ory_at_t")
			if exp := v.num(t, "exp"); exp > r.Claims.ExpiresAt {
				t.Errorf("identity exp %d past the token's exp %d", exp, r.Claims.ExpiresAt)
			}
			e.clock.Advance(tc.reusedFor - time.Second)
			if again, _ := e.authorize(t, rt, "ory_at_t"); again != g || fi.count() != 1 {
				t.Fatalf("just before %v: a new identity or a remote call (%d); want the cached identity", tc.reusedFor, fi.count())
			}
			e.clock.Advance(time.Second)
			if again, _ := e.authorize(t, rt, "ory_at_t"); again == g || fi.count() != 2 {
				t.Errorf("at %v: the cached identity was reused (%d remote calls), want a new check", tc.reusedFor, fi.count())
			}
		})
	}
}

// An answer without Until is never reused.
func TestRemoteResultWithoutUntilIsNotCached(t *testing.T) {
	e := newEnv(t)
	fi := newFakeIntrospector()
	r := remoteResult(fixedNow, "svc", nil)
	r.Remote.Until = time.Time{}
	fi.set("ory_at_t", r)
	rt := e.remoteRoute(fi, "")
	e.authorize(t, rt, "ory_at_t")
	e.authorize(t, rt, "ory_at_t")
	if fi.count() != 2 {
		t.Errorf("%d remote calls for two requests, want 2", fi.count())
	}
}

// The local client record of the same client_id enriches the identity:
// its metadata merges with the remote ext (objects key by key), its owner
// fills in a missing one, and the route decides who wins.
func TestRemoteEnrichment(t *testing.T) {
	remoteExt := clientstore.Metadata{"realm": map[string]any{"id": "r-remote", "region": "eu"}, "tier": "silver", "only_remote": true}
	localMD := clientstore.Metadata{"realm": map[string]any{"id": "r-local", "team": "a"}, "tier": "gold", "only_local": "x"}
	cases := []struct {
		enrich      Enrichment
		remoteOwner string
		wantExt     map[string]any
		wantOwner   string
		wantClient  bool
	}{
		{"", "", map[string]any{"realm": map[string]any{"id": "r-local", "region": "eu", "team": "a"},
			"tier": "gold", "only_remote": true, "only_local": "x"}, "team-a", true},
		{EnrichLocalWins, "team-remote", map[string]any{"realm": map[string]any{"id": "r-local", "region": "eu", "team": "a"},
			"tier": "gold", "only_remote": true, "only_local": "x"}, "team-a", true},
		{EnrichRemoteWins, "team-remote", map[string]any{"realm": map[string]any{"id": "r-remote", "region": "eu", "team": "a"},
			"tier": "silver", "only_remote": true, "only_local": "x"}, "team-remote", true},
		{EnrichRemoteWins, "", map[string]any{"realm": map[string]any{"id": "r-remote", "region": "eu", "team": "a"},
			"tier": "silver", "only_remote": true, "only_local": "x"}, "team-a", true},
		{EnrichOff, "", map[string]any{"realm": map[string]any{"id": "r-remote", "region": "eu"},
			"tier": "silver", "only_remote": true}, "", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/remote owner %q", cmpOr(tc.enrich, "default"), tc.remoteOwner), func(t *testing.T) {
			e := newEnv(t)
			if _, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "svc", Scope: testScope, Owner: "team-a", Metadata: localMD}); err != nil {
				t.Fatal(err)
			}
			fi := newFakeIntrospector()
			r := remoteResult(fixedNow, "svc", remoteExt)
			r.Remote.Owner = tc.remoteOwner
			fi.set("ory_at_e", r)
			g, v := e.authorize(t, e.remoteRoute(fi, tc.enrich), "ory_at_e")
			var ext map[string]any
			raw, _ := json.Marshal(v.claims["ext"])
			json.Unmarshal(raw, &ext)
			if !reflect.DeepEqual(ext, tc.wantExt) {
				t.Errorf("ext = %v, want %v", ext, tc.wantExt)
			}
			if v.claims["owner"] != tc.wantOwner {
				t.Errorf("owner = %v, want %q", v.claims["owner"], tc.wantOwner)
			}
			if (g.clientRev != 0) != tc.wantClient {
				t.Errorf("identity's local client revision = %d, want one: %v", g.clientRev, tc.wantClient)
			}
			if got, _ := g.Placeholder("gatehouse.metadata.realm.id"); got != tc.wantExt["realm"].(map[string]any)["id"] {
				t.Errorf("placeholder realm.id = %v, want the identity's", got)
			}
			if !reflect.DeepEqual(map[string]any(remoteExt), map[string]any{"realm": map[string]any{"id": "r-remote", "region": "eu"}, "tier": "silver", "only_remote": true}) ||
				localMD["tier"] != "gold" || localMD["realm"].(map[string]any)["id"] != "r-local" {
				t.Error("merging modified an input")
			}
		})
	}
}

func cmpOr(e Enrichment, def string) string {
	if e == "" {
		return def
	}
	return string(e)
}

// Changes to the local record show on the next request: a new record, new
// metadata, a disabled record (the token is refused), a deleted one.
func TestRemoteEnrichmentFollowsLocalRecord(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	fi := newFakeIntrospector()
	fi.set("ory_at_f", remoteResult(fixedNow, "svc", clientstore.Metadata{"tier": "silver"}))
	rt := e.remoteRoute(fi, EnrichLocalWins)
	tier := func() any {
		t.Helper()
		_, v := e.authorize(t, rt, "ory_at_f")
		ext, _ := v.claims["ext"].(map[string]any)
		return ext["tier"]
	}
	if got := tier(); got != "silver" {
		t.Fatalf("no local record: tier %v, want silver", got)
	}
	cl, _, err := e.cache.Create(ctx, &clientstore.Client{ID: "svc", Scope: testScope, Metadata: clientstore.Metadata{"tier": "gold"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tier(); got != "gold" {
		t.Errorf("after creating the local record: tier %v, want gold", got)
	}
	c := cl.Clone()
	c.Metadata = clientstore.Metadata{"tier": "platinum"}
	if cl, err = e.cache.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := tier(); got != "platinum" {
		t.Errorf("after a metadata update: tier %v, want platinum", got)
	}
	c = cl.Clone()
	c.Disabled = true
	if _, err := e.cache.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Authorize(ctx, "ory_at_f"); !errors.Is(err, ErrDisabled) {
		t.Errorf("local record disabled: %v, want ErrDisabled", err)
	}
	if err := e.cache.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if got := tier(); got != "silver" {
		t.Errorf("after deleting the local record: tier %v, want silver", got)
	}
}

// Outages and refusals of the remote server reach the caller as they are.
func TestRemoteErrorsPassThrough(t *testing.T) {
	e := newEnv(t)
	fi := newFakeIntrospector()
	rt := e.remoteRoute(fi, "")
	if _, err := rt.Authorize(context.Background(), "ory_at_unknown"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown token: %v, want ErrInvalidToken", err)
	}
	fi.err = &UnavailableError{RetryAfter: 3 * time.Second, Err: errors.New("connection refused")}
	_, err := rt.Authorize(context.Background(), "ory_at_x")
	var ue *UnavailableError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) || ue.RetryAfter != 3*time.Second || errors.Is(err, ErrInvalidToken) {
		t.Errorf("remote outage: %v, want the UnavailableError (and not an invalid token)", err)
	}
	fi.err = &ThrottledError{RetryAfter: 2 * time.Second}
	_, err = rt.AuthorizeFrom(context.Background(), "ory_at_y", netip.MustParseAddr("203.0.113.7"))
	var te *ThrottledError
	if !errors.Is(err, ErrThrottled) || !errors.As(err, &te) || te.RetryAfter != 2*time.Second || errors.Is(err, ErrUnavailable) {
		t.Errorf("address over its budget: %v, want the ThrottledError", err)
	}
	if fi.addr != "203.0.113.7" {
		t.Errorf("the introspector got address %q, want the caller's", fi.addr)
	}
}

// The remote token is never a key of the route's cache, nor kept in it.
func TestRemoteTokenNotKept(t *testing.T) {
	e := newEnv(t)
	fi := newFakeIntrospector()
	const tok = "ory_at_secret-token-value"
	fi.set(tok, remoteResult(fixedNow, "svc", nil))
	rt := e.remoteRoute(fi, "")
	e.authorize(t, rt, tok)
	n := 0
	for key, g := range rt.cache.c.All() {
		n++
		if strings.Contains(key, "secret-token-value") || key != remoteKey(tok) || g.Result.Token != "" {
			t.Errorf("route cache holds the token (key %q, Token %q)", key, g.Result.Token)
		}
	}
	if n != 1 {
		t.Errorf("the cache holds %d entries, want the remote token's", n)
	}
}
