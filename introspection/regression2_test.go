package introspection

import (
	"context"
	"testing"

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
