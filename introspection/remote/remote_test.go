package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var ctx = context.Background()

// The answer of an active token becomes the same introspection.Result a
// local check gives, with the remote parts under Remote.
func TestIntrospectActive(t *testing.T) {
	f := newFakeServer(t)
	ans := activeAnswer()
	ans["client"] = map[string]any{"client_id": "svc", "owner": "team-remote"}
	ans["username"] = "robot"
	f.answer("tok-1", ans)
	c, _ := newTestClient(t, f, Config{CacheTTL: 30 * time.Second})

	res, err := c.Introspect(ctx, "tok-1", "")
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	want := introspection.Result{
		Token: "tok-1",
		Claims: introspection.Claims{
			ClientID: "svc", Scope: "orders:read orders:write", Audience: []string{"https://api.example.com"},
			IssuedAt: t0.Unix(), ExpiresAt: t0.Add(time.Hour).Unix(),
		},
		Issuer: testIssuer,
		Remote: &introspection.Remote{
			Subject: "svc", Username: "robot", JTI: "jti-1", Owner: "team-remote",
			Ext:   clientstore.Metadata{"realm": map[string]any{"id": "r-remote"}, "tier": "silver"},
			Until: t0.Add(30 * time.Second),
		},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Result =\n %+v\n %+v\nwant\n %+v\n %+v", res, res.Remote, want, want.Remote)
	}
	if res.ClientID() != "svc" || res.Subject() != "svc" || res.Owner() != "team-remote" {
		t.Errorf("ClientID, Subject, Owner = %q, %q, %q; want svc, svc, team-remote", res.ClientID(), res.Subject(), res.Owner())
	}
}

// RFC 7662 §2.1: a POSTed form with token (and the hint if configured);
// the caller authenticates with client_secret_basic (RFC 6749 §2.3.1: id
// and secret form-urlencoded before base64), client_secret_post, or a
// bearer token.
func TestRequestAndCallerAuthentication(t *testing.T) {
	const id, secret = "gate:way+1", "s3cr/t=+ %"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	cases := []struct {
		name     string
		cfg      Config
		wantAuth string
		wantForm url.Values
	}{
		{"no credentials", Config{}, "", url.Values{"token": {"t"}}},
		{"client_secret_basic (RFC 6749 §2.3.1)", Config{ClientID: id, ClientSecret: secret}, basic, url.Values{"token": {"t"}}},
		{"client_secret_post", Config{ClientID: id, ClientSecret: secret, AuthMethod: AuthClientSecretPost}, "",
			url.Values{"token": {"t"}, "client_id": {id}, "client_secret": {secret}}},
		{"bearer", Config{Bearer: "intro-token"}, "Bearer intro-token", url.Values{"token": {"t"}}},
		{"token_type_hint", Config{TokenTypeHint: "access_token"}, "", url.Values{"token": {"t"}, "token_type_hint": {"access_token"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			c, _ := newTestClient(t, f, tc.cfg)
			if _, err := c.Introspect(ctx, "t", ""); !errors.Is(err, ErrInactive) {
				t.Fatalf("Introspect of an unknown token: %v, want ErrInactive", err)
			}
			auth, form := f.lastRequest()
			if auth != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", auth, tc.wantAuth)
			}
			if !reflect.DeepEqual(url.Values(form), tc.wantForm) {
				t.Errorf("form = %v, want %v", form, tc.wantForm)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"no URL", Config{}, "absolute http(s) URL"},
		{"relative URL", Config{URL: "/introspect"}, "absolute http(s) URL"},
		{"other scheme", Config{URL: "ftp://hydra/introspect"}, "absolute http(s) URL"},
		{"user info", Config{URL: "https://a:b@hydra/introspect"}, "user info"},
		{"bearer and client", Config{URL: "https://hydra/i", Bearer: "x", ClientID: "y"}, "not both"},
		{"secret without id", Config{URL: "https://hydra/i", ClientSecret: "x"}, "without client_id"},
		{"unknown auth method", Config{URL: "https://hydra/i", ClientID: "x", AuthMethod: "private_key_jwt"}, "unknown auth method"},
		{"negative TTL", Config{URL: "https://hydra/i", CacheTTL: -1}, "negative"},
	}
	for _, tc := range cases {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.msg)
		}
	}
	c, err := New(Config{URL: "https://hydra/i"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.cfg.CacheTTL != DefaultCacheTTL || c.cfg.NegativeTTL != DefaultNegativeTTL || c.cfg.Timeout != DefaultTimeout ||
		c.breaker.threshold != DefaultBreakerFailures || c.breaker.cooldown != DefaultBreakerCooldown {
		t.Errorf("defaults not filled in: %+v", c.cfg)
	}
	if c.http.Timeout != DefaultTimeout || c.transport.TLSClientConfig.InsecureSkipVerify {
		t.Error("the HTTP client must time out and verify TLS by default")
	}
}

// What the server says about a token that must not pass, each refused
// as an invalid token (401), never as an outage, and remembered for
// negative_ttl.
func TestRefusedAnswers(t *testing.T) {
	with := func(edit func(map[string]any)) map[string]any {
		a := activeAnswer()
		edit(a)
		return a
	}
	cases := []struct {
		name   string
		answer map[string]any
		want   error
	}{
		{"inactive (RFC 7662 §2.2)", map[string]any{"active": false}, ErrInactive},
		{"inactive with claims", with(func(a map[string]any) { a["active"] = false }), ErrInactive},
		{"token_use id_token", with(func(a map[string]any) { a["token_use"] = "id_token" }), ErrNotAccessToken},
		{"token_use refresh_token", with(func(a map[string]any) { a["token_use"] = "refresh_token" }), ErrNotAccessToken},
		{"wrong issuer", with(func(a map[string]any) { a["iss"] = "https://evil.example.com/" }), ErrUntrustedIssuer},
		{"issuer without its trailing slash", with(func(a map[string]any) { a["iss"] = "https://hydra.example.com" }), ErrUntrustedIssuer},
		{"no issuer", with(func(a map[string]any) { delete(a, "iss") }), ErrUntrustedIssuer},
		{"exp in the past", with(func(a map[string]any) { a["exp"] = t0.Add(-time.Second).Unix() }), introspection.ErrExpired},
		{"exp now", with(func(a map[string]any) { a["exp"] = t0.Unix() }), introspection.ErrExpired},
		{"exp 0", with(func(a map[string]any) { a["exp"] = 0 }), introspection.ErrExpired},
		{"DPoP-bound (RFC 9449)", with(func(a map[string]any) { a["token_type"] = "DPoP" }), ErrSenderConstrained},
		{"certificate-bound (RFC 8705)", with(func(a map[string]any) { a["cnf"] = map[string]any{"x5t#S256": "abc"} }), ErrSenderConstrained},
		{"neither client_id nor sub", with(func(a map[string]any) { delete(a, "client_id"); delete(a, "sub") }), ErrNoIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.answer("tok", tc.answer)
			c, clk := newTestClient(t, f, Config{NegativeTTL: 5 * time.Second})
			for i := range 2 {
				_, err := c.Introspect(ctx, "tok", "")
				if !errors.Is(err, tc.want) || !errors.Is(err, introspection.ErrInvalidToken) {
					t.Fatalf("call %d: %v, want %v (an invalid token)", i, err, tc.want)
				}
				if errors.Is(err, introspection.ErrUnavailable) {
					t.Fatalf("call %d: %v is an outage error; a refused token is not an outage", i, err)
				}
			}
			if n := f.calls.Load(); n != 1 {
				t.Errorf("%d upstream calls for two requests within negative_ttl, want 1", n)
			}
			clk.Advance(5 * time.Second)
			c.Introspect(ctx, "tok", "")
			if n := f.calls.Load(); n != 2 {
				t.Errorf("%d upstream calls after negative_ttl passed, want 2", n)
			}
		})
	}
}

// Without trusted_issuers, any iss (or none) is accepted: the operator
// trusts the server it points at.
func TestNoTrustedIssuersAcceptsAnyIssuer(t *testing.T) {
	f := newFakeServer(t)
	a := activeAnswer()
	delete(a, "iss")
	f.answer("tok", a)
	c, _ := newTestClient(t, f, Config{TrustedIssuers: []string{}})
	if _, err := c.Introspect(ctx, "tok", ""); err != nil {
		t.Fatalf("Introspect without trusted_issuers: %v", err)
	}
}

// Answers that are lenient but valid: aud as a string, dates as floats,
// no exp, a user token with sub but no client_id.
func TestLenientAnswers(t *testing.T) {
	f := newFakeServer(t)
	a := activeAnswer()
	a["aud"] = "https://api.example.com"
	a["exp"] = float64(t0.Add(time.Hour).Unix()) + 0.5
	f.answer("float", a)
	b := activeAnswer()
	delete(b, "exp")
	delete(b, "client_id")
	b["sub"] = "user-7"
	f.answer("user", b)
	c, _ := newTestClient(t, f, Config{CacheTTL: 30 * time.Second})

	r, err := c.Introspect(ctx, "float", "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Claims.Audience, []string{"https://api.example.com"}) || r.Claims.ExpiresAt != t0.Add(time.Hour).Unix() {
		t.Errorf("aud %q exp %d, want the string as a one-element list and the date truncated", r.Claims.Audience, r.Claims.ExpiresAt)
	}
	r, err = c.Introspect(ctx, "user", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject() != "user-7" || r.ClientID() != "" || r.Claims.ExpiresAt != 0 || !r.Remote.Until.Equal(t0.Add(30*time.Second)) {
		t.Errorf("sub %q client_id %q exp %d until %v; want user-7, none, none, cache_ttl", r.Subject(), r.ClientID(), r.Claims.ExpiresAt, r.Remote.Until)
	}
}

// RFC 7662 §4: a cached answer never outlives exp; otherwise it lives
// cache_ttl. The clock is injected: nothing sleeps.
func TestCacheTTLBoundByExp(t *testing.T) {
	cases := []struct {
		name     string
		expIn    time.Duration
		cacheTTL time.Duration
		lastHit  time.Duration // still served from the cache at t0+lastHit
		expired  bool          // at the bound, the token is expired (else re-asked)
	}{
		{"exp before cache_ttl", 10 * time.Second, 30 * time.Second, 9 * time.Second, true},
		{"cache_ttl before exp", time.Hour, 30 * time.Second, 29 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			a := activeAnswer()
			a["exp"] = t0.Add(tc.expIn).Unix()
			f.answer("tok", a)
			c, clk := newTestClient(t, f, Config{CacheTTL: tc.cacheTTL})
			r, err := c.Introspect(ctx, "tok", "")
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(min(tc.expIn, tc.cacheTTL)); !r.Remote.Until.Equal(want) {
				t.Errorf("Until = %v, want min(exp, now+cache_ttl) = %v", r.Remote.Until, want)
			}
			clk.Advance(tc.lastHit)
			if _, err := c.Introspect(ctx, "tok", ""); err != nil {
				t.Fatalf("at +%v: %v, want the cached answer", tc.lastHit, err)
			}
			if n := f.calls.Load(); n != 1 {
				t.Fatalf("%d upstream calls by +%v, want 1 (cached)", n, tc.lastHit)
			}
			clk.Advance(time.Second)
			_, err = c.Introspect(ctx, "tok", "")
			if tc.expired && !errors.Is(err, introspection.ErrExpired) {
				t.Errorf("at exp: %v, want ErrExpired", err)
			}
			if !tc.expired && err != nil {
				t.Errorf("after cache_ttl: %v, want a fresh answer", err)
			}
			if n := f.calls.Load(); n != 2 {
				t.Errorf("%d upstream calls after the cache bound, want 2", n)
			}
		})
	}
}

// An entry is checked against exp on every use, even if something kept
// it past its exp.
func TestEntryRechecksExp(t *testing.T) {
	e := &entry{res: introspection.Result{Claims: introspection.Claims{ExpiresAt: t0.Unix()}}, until: t0.Add(time.Hour)}
	if _, err := e.result("tok", t0.Add(-time.Second)); err != nil {
		t.Errorf("before exp: %v", err)
	}
	if _, err := e.result("tok", t0); !errors.Is(err, introspection.ErrExpired) {
		t.Errorf("at exp: %v, want ErrExpired", err)
	}
}

// 1,000 concurrent requests with the same new token cause one upstream
// call, and all of them get the answer.
func TestSingleflight(t *testing.T) {
	f := newFakeServer(t)
	f.answer("tok", activeAnswer())
	f.set(slow)
	c, _ := newTestClient(t, f, Config{})
	const n = 1000
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	errs := make(chan error, n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			r, err := c.Introspect(ctx, "tok", "")
			if err == nil && r.ClientID() != "svc" {
				err = errors.New("wrong result " + r.ClientID())
			}
			errs <- err
		}()
	}
	started.Wait()
	f.unblock()
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent request failed: %v", err)
		}
	}
	if calls := f.calls.Load(); calls != 1 {
		t.Errorf("%d upstream calls for %d concurrent requests with one token, want 1", calls, n)
	}
}

// A caller that gives up does not cancel the call others wait for.
func TestCallerCancellationDoesNotCancelTheCall(t *testing.T) {
	f := newFakeServer(t)
	f.answer("tok", activeAnswer())
	f.set(slow)
	f.arrived = make(chan struct{}, 1)
	c, _ := newTestClient(t, f, Config{})
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error)
	go func() {
		_, err := c.Introspect(cctx, "tok", "")
		gaveUp <- err
	}()
	<-f.arrived
	cancel()
	if err := <-gaveUp; !errors.Is(err, introspection.ErrUnavailable) {
		t.Fatalf("canceled caller: %v, want ErrUnavailable", err)
	}
	other := make(chan error)
	go func() {
		_, err := c.Introspect(ctx, "tok", "")
		other <- err
	}()
	f.unblock()
	if err := <-other; err != nil {
		t.Fatalf("the other caller: %v, want the answer", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// The server down, slow or answering garbage: fail closed with
// ErrUnavailable (503 at the edge), never ErrInvalidToken, within the
// timeout, and nothing cached.
func TestFailClosed(t *testing.T) {
	down := newFakeServer(t)
	downURL := down.url()
	down.Close()
	cases := []struct {
		name string
		mode behaviour
		url  string
		want error
	}{
		{"server down", normal, downURL, nil},
		{"slow server", slow, "", context.DeadlineExceeded},
		{"garbage body", garbage, "", ErrBadResponse},
		{"body over 64 KiB", huge, "", ErrResponseLarge},
		{"HTTP 500", status500, "", nil},
		{"redirect not followed", redirect, "", nil},
	}
	const timeout = 300 * time.Millisecond
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.answer("tok", activeAnswer())
			f.set(tc.mode)
			c, _ := newTestClient(t, f, Config{URL: tc.url, Timeout: timeout, BreakerFailures: 100})
			start := time.Now()
			_, err := c.Introspect(ctx, "tok", "")
			elapsed := time.Since(start)
			var ue *introspection.UnavailableError
			if !errors.As(err, &ue) || errors.Is(err, introspection.ErrInvalidToken) {
				t.Fatalf("Introspect: %v, want an UnavailableError and not an invalid token", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("cause %v, want %v", err, tc.want)
			}
			if elapsed > timeout+time.Second {
				t.Errorf("took %v, want it within the %v timeout", elapsed, timeout)
			}
			if ue.RetryAfter <= 0 {
				t.Errorf("RetryAfter = %v, want a hint", ue.RetryAfter)
			}
			if tc.url == "" {
				// Failures are not cached: once the server is fine, the
				// next request is answered.
				f.set(normal)
				f.unblock()
				if _, err := c.Introspect(ctx, "tok", ""); err != nil {
					t.Errorf("after the server recovered: %v", err)
				}
			}
		})
	}
}

// TLS is verified by default: a server whose certificate is not trusted
// is an outage, not an answer.
func TestTLSVerifiedByDefault(t *testing.T) {
	f := newFakeServer(t)
	tlsSrv := newTLSFake(t, f)
	c, _ := newTestClient(t, f, Config{URL: tlsSrv.URL + "/oauth2/introspect", BreakerFailures: 100})
	if _, err := c.Introspect(ctx, "tok", ""); !errors.Is(err, introspection.ErrUnavailable) {
		t.Fatalf("untrusted certificate: %v, want ErrUnavailable", err)
	}
	f.answer("tok", activeAnswer())
	trusted, _ := newTestClient(t, f, Config{URL: tlsSrv.URL + "/oauth2/introspect", RootCAs: rootsOf(tlsSrv)})
	if _, err := trusted.Introspect(ctx, "tok", ""); err != nil {
		t.Fatalf("trusted certificate: %v", err)
	}
}

// After N consecutive failures the breaker opens: requests fail at once
// without calling; after the cool-down one probe goes out, and its
// success closes the breaker.
func TestBreakerOpensAndRecovers(t *testing.T) {
	f := newFakeServer(t)
	f.answer("tok", activeAnswer())
	f.set(status500)
	c, clk := newTestClient(t, f, Config{BreakerFailures: 3, BreakerCooldown: 10 * time.Second})
	for i := range 3 {
		if _, err := c.Introspect(ctx, "tok", ""); errors.Is(err, ErrCircuitOpen) || !errors.Is(err, introspection.ErrUnavailable) {
			t.Fatalf("failure %d: %v, want an upstream failure", i, err)
		}
	}
	for i := range 5 {
		_, err := c.Introspect(ctx, "tok", "")
		var ue *introspection.UnavailableError
		if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &ue) {
			t.Fatalf("request %d with the breaker open: %v, want ErrCircuitOpen", i, err)
		}
		if ue.RetryAfter <= 0 || ue.RetryAfter > 10*time.Second {
			t.Errorf("RetryAfter %v, want the rest of the 10s cool-down", ue.RetryAfter)
		}
	}
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("%d upstream calls, want 3: none while the breaker is open", n)
	}

	// Cool-down over, still failing: the one probe fails and reopens it.
	clk.Advance(10 * time.Second)
	c.Introspect(ctx, "tok", "")
	if _, err := c.Introspect(ctx, "tok", ""); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("after a failed probe: %v, want the breaker open again", err)
	}
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("%d upstream calls, want 4 (one probe)", n)
	}

	// The server recovers: the next probe closes the breaker for good.
	f.set(normal)
	clk.Advance(10 * time.Second)
	for i := range 3 {
		if _, err := c.Introspect(ctx, "tok", ""); err != nil {
			t.Fatalf("request %d after recovery: %v", i, err)
		}
	}
	if n := f.calls.Load(); n != 5 {
		t.Errorf("%d upstream calls, want 5 (the probe, then the cache)", n)
	}
}

func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	b := breaker{threshold: 2, cooldown: time.Minute}
	b.failure(t0)
	if _, ok := b.allow(t0); !ok {
		t.Fatal("one failure below the threshold opened the breaker")
	}
	if opened, _ := b.failure(t0); !opened {
		t.Fatal("the threshold-th failure did not open the breaker")
	}
	if wait, ok := b.allow(t0.Add(time.Second)); ok || wait != 59*time.Second {
		t.Fatalf("open breaker: allow = %v, %v; want refused for the remaining 59s", wait, ok)
	}
	later := t0.Add(time.Minute)
	if _, ok := b.allow(later); !ok {
		t.Fatal("after the cool-down the probe was refused")
	}
	for range 3 {
		if _, ok := b.allow(later); ok {
			t.Fatal("a second call went out while the probe is pending")
		}
	}
	if !b.success() {
		t.Error("the probe's success did not report closing the breaker")
	}
	if _, ok := b.allow(later); !ok {
		t.Error("closed breaker refused a call")
	}
}

// The cache stays within its entry and byte bounds, keeps an entry in use
// through a flood of entries used once, refuses entries larger than its
// byte bound, and drops entries at their until.
func TestCacheBounds(t *testing.T) {
	clk := clocktest.New(t0)
	key := func(i int) (k [32]byte) {
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		return k
	}
	hot := key(1 << 20)
	for _, tc := range []struct {
		name           string
		entries, bytes int
	}{
		{"entries bind", 64, 1 << 20},
		{"bytes bind", 1000, 64 * 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(tc.entries, int64(tc.bytes), clk.Now)
			c.put(hot, &entry{until: t0.Add(time.Minute), size: 300}, t0)
			for i := range 5000 {
				c.put(key(i), &entry{until: t0.Add(time.Minute), size: 300 + i%700}, t0)
				if c.get(hot, t0) == nil {
					t.Fatalf("after %d puts the entry in use is gone", i+1)
				}
				if i%100 == 99 {
					if n, b := c.stats(); n > tc.entries || b > tc.bytes {
						t.Fatalf("after %d puts: %d entries, %d bytes; want at most %d and %d", i+1, n, b, tc.entries, tc.bytes)
					}
				}
			}
		})
	}
	big := newCache(16, 1024, clk.Now)
	big.put(key(1), &entry{until: t0.Add(time.Minute), size: 2048}, t0)
	if n, _ := big.stats(); n != 0 {
		t.Error("an entry over the byte bound was cached")
	}
	stale := newCache(16, 1<<20, clk.Now)
	stale.put(key(0), &entry{until: t0.Add(time.Second)}, t0)
	stale.put(key(1), &entry{until: t0.Add(time.Hour)}, t0)
	if stale.get(key(0), t0) == nil {
		t.Fatal("an entry is not served before its until")
	}
	clk.Advance(time.Second)
	if stale.get(key(0), clk.Now()) != nil {
		t.Error("an entry was served at its until")
	}
	if n, _ := stale.stats(); n != 1 || stale.get(key(1), clk.Now()) == nil {
		t.Errorf("%d entries after the first one's until, want only the live one", n)
	}
}

// The token is never a cache key or kept in a cached result.
func TestCacheKeepsNoToken(t *testing.T) {
	f := newFakeServer(t)
	f.answer("secret-token-value", activeAnswer())
	c, _ := newTestClient(t, f, Config{})
	if _, err := c.Introspect(ctx, "secret-token-value", ""); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, e := range c.cache.c.All() {
		n++
		if strings.Contains(string(k[:]), "secret-token-value") || e.res.Token != "" {
			t.Errorf("a cache entry holds the token (key %x, Token %q)", k, e.res.Token)
		}
	}
	if n != 1 {
		t.Fatalf("%d cache entries, want 1", n)
	}
}

// Logs name the endpoint (without its query) and the failure, never the
// token or the caller's secret.
func TestLogsHoldNoTokenOrSecret(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := newFakeServer(t)
	const token, secret = "tok-SENSITIVE-1", "secret-SENSITIVE-2"
	f.answer(token, activeAnswer())
	c, _ := newTestClient(t, f, Config{URL: f.url() + "?api_key=KEY-SENSITIVE-3", ClientID: "gw", ClientSecret: secret,
		Timeout: 100 * time.Millisecond, BreakerFailures: 3, Logger: zap.New(core)})
	for i, mode := range []behaviour{normal, status500, garbage, slow, huge, normal} {
		f.set(mode)
		c.Introspect(ctx, token, "")
		c.Introspect(ctx, fmt.Sprint(token, i), "")
	}
	if logs.Len() == 0 {
		t.Fatal("no logs: the failures must be logged")
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, bad := range []string{"SENSITIVE", url.QueryEscape(secret)} {
			if strings.Contains(line, bad) {
				t.Errorf("log %q holds a token, secret or query: %s", e.Message, line)
			}
		}
	}
}
