package introspection

import (
	"context"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// A deleted client's tokens stay dead even when a new client takes its id.
func TestDeletedClientTokensStayDeadAfterRecreate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tok := e.issue(e.newClient("svc")).AccessToken
	if err := e.cache.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.cache.Create(ctx, &clientstore.Client{ID: "svc", Scope: "other", Owner: "team-b"}); err != nil {
		t.Fatal(err)
	}
	if r, err := e.auth.Check(tok); err == nil {
		t.Fatalf("token of the deleted client accepted for the new client: scope %q, owner %q; want ErrRevoked", r.Claims.Scope, r.Client.Owner)
	}
}

// Exactly one spelling of a token opens: no slack in the last base64
// character's unused bits, no skipped CR/LF.
func TestOpenRefusesNonCanonicalEncodings(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	for _, id := range []string{"a", "ab", "abc"} {
		c := Claims{ClientID: id, Scope: "s", Audience: []string{"x"}, IssuedAt: 1, ExpiresAt: 2}
		tok, err := s.Seal(&c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range b64URLAlphabet {
			if mut := tok[:len(tok)-1] + string(ch); mut != tok {
				if _, err := s.Open(mut); err == nil {
					t.Errorf("client %q: last char %q→%q accepted", id, tok[len(tok)-1], ch)
				}
			}
		}
		for _, nl := range []string{"\n", "\r"} {
			if _, err := s.Open(tok[:10] + nl + tok[10:]); err == nil {
				t.Errorf("client %q: %q inserted accepted", id, nl)
			}
		}
	}
}
