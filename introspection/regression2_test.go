package introspection

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// RFC 9068 §2.2: aud is REQUIRED in a JWT access token, even for a client
// registered without audiences (it then names this authorization server).
func TestJWTAccessTokenAlwaysHasAud(t *testing.T) {
	e := newEnv(t)
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "noaud", Scope: testScope, AccessTokenStrategy: "jwt"})
	if err != nil {
		t.Fatal(err)
	}
	c := jwtPayload(t, e.issue(cl).AccessToken)
	if c["aud"] != e.auth.cfg.Issuer {
		t.Fatalf("aud = %v, want the issuer %q (RFC 9068 §2.2: aud required)", c["aud"], e.auth.cfg.Issuer)
	}
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

// A jwks_uri that redirects (perhaps to an internal plain-http address) is
// not followed (RFC 8725 §3.10 spirit: fetch only what was registered).
func TestJWKSURIRedirectNotFollowed(t *testing.T) {
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internalHits.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer internal.Close()
	ext := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/latest/meta-data/", http.StatusFound)
	}))
	defer ext.Close()
	rk := NewRemoteKeys(ext.Client())
	if _, err := rk.Get(context.Background(), ext.URL+"/jwks.json", ""); err == nil {
		t.Fatal("a redirecting jwks_uri gave a key set")
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the redirect target was fetched %d time(s), want never", n)
	}
}

// A failing jwks_uri is remembered for a while instead of being fetched
// again for every assertion.
func TestJWKSURIFailureCached(t *testing.T) {
	var hits atomic.Int64
	ext := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer ext.Close()
	rk := NewRemoteKeys(ext.Client())
	clock := fixedNow
	rk.now = func() time.Time { return clock }
	for range 50 {
		if _, err := rk.Get(context.Background(), ext.URL+"/jwks.json", "k1"); err == nil {
			t.Fatal("a failing jwks_uri gave a key set")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("50 lookups made %d fetches, want 1", n)
	}
	clock = clock.Add(remoteJWKSFailTTL + time.Second)
	rk.Get(context.Background(), ext.URL+"/jwks.json", "k1")
	if n := hits.Load(); n != 2 {
		t.Errorf("after the failure TTL: %d fetches, want 2 (retried)", n)
	}
}

// A client may hold more scope and audiences than fit one token: issuance
// refuses rather than minting a token every check would refuse.
func TestIssueRefusesOversizeToken(t *testing.T) {
	e := newEnv(t)
	var auds []string
	for i := range 8 {
		auds = append(auds, fmt.Sprintf("https://%d.example.com/%s", i, strings.Repeat("p", 400)))
	}
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "big", Scope: testScope, Audience: auds})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.Issue(cl, "", nil); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("Issue with all 8 long audiences: %v, want ErrTokenTooLarge", err)
	}
	tok, err := e.auth.Issue(cl, "", auds[:1])
	if err != nil {
		t.Fatalf("Issue down-scoped to one audience: %v", err)
	}
	if _, err := e.auth.Check(tok.AccessToken); err != nil {
		t.Fatalf("the down-scoped token does not check: %v", err)
	}
}
