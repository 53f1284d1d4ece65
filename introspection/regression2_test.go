package introspection

import (
	"context"
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
