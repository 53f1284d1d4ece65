package introspection

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

func TestCheckValid(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl)
	r := e.check(t, tok.AccessToken)

	cur, _ := e.cache.Get("svc")
	if r.Client.ID != "svc" || r.Client.Revision != cur.Revision || r.Client.Owner != cur.Owner {
		t.Errorf("Result.Client = %+v, want the cache's current state %+v", r.Client, cur)
	}
	if r.Issuer != testIssuer {
		t.Errorf("Result.Issuer = %q, want %q", r.Issuer, testIssuer)
	}
	want := Claims{
		ClientID:   "svc",
		Generation: cl.Generation,
		Scope:      testScope,
		Audience:   []string{testAudience},
		IssuedAt:   fixedNow.Unix(),
		ExpiresAt:  fixedNow.Add(DefaultTokenTTL).Unix(),
		ID:         r.Claims.ID,
	}
	if !reflect.DeepEqual(r.Claims, want) {
		t.Errorf("Result.Claims = %+v, want %+v", r.Claims, want)
	}
	if r.Claims.ID == (TokenID{}) {
		t.Error("Result.Claims.ID is zero, want the token's jti")
	}
}

func TestCheckExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.issue(e.newClient("svc")).AccessToken
	exp := fixedNow.Add(DefaultTokenTTL)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at issuance", fixedNow, nil},
		{"one second before exp", exp.Add(-time.Second), nil},
		{"half a second before exp", exp.Add(-500 * time.Millisecond), nil},
		// RFC 7519 §4.1.4: the token must not be accepted on or after exp.
		{"exactly at exp", exp, ErrExpired},
		{"just past exp", exp.Add(time.Nanosecond + time.Second), ErrExpired},
		{"long past exp", exp.Add(24 * time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(tt.now)
			_, err := e.auth.Check(tok)
			if !errors.Is(err, tt.want) {
				t.Errorf("Check at exp%+v: got error %v, want %v", tt.now.Sub(exp), err, tt.want)
			}
		})
	}
}

// RFC 7009 §2.1: a client revokes only its own tokens.
func TestRevoke(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	owner := e.newClient("owner")
	other := e.newClient("other")
	tok := e.issue(owner).AccessToken
	sibling := e.issue(owner).AccessToken
	otherTok := e.issue(other).AccessToken

	// Another client's attempt is refused (RFC 7009 §2.1) and has no effect.
	if err := e.auth.Revoke(ctx, other, tok); !errors.Is(err, ErrNotTokenOwner) {
		t.Fatalf("Revoke by another client: got %v, want ErrNotTokenOwner", err)
	}
	if _, err := e.auth.Check(tok); err != nil {
		t.Fatalf("Check after another client tried to revoke it: got %v, want the token still valid", err)
	}

	if err := e.auth.Revoke(ctx, owner, tok); err != nil {
		t.Fatalf("Revoke by the owner: %v", err)
	}
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check of a revoked token: got %v, want ErrRevoked", err)
	}
	// One token at a time: the owner's other token and other clients' tokens
	// stay valid.
	for name, s := range map[string]string{"owner's other token": sibling, "other client's token": otherTok} {
		if _, err := e.auth.Check(s); err != nil {
			t.Errorf("Check of %s after revoking one token: got %v, want valid", name, err)
		}
	}
	// Revoking twice is harmless.
	if err := e.auth.Revoke(ctx, owner, tok); err != nil {
		t.Errorf("second Revoke: got error %v, want nil", err)
	}
}

// RFC 7009 §2.2: invalid tokens are answered like valid ones, and nothing is
// recorded for them.
func TestRevokeIgnoresInvalidTokens(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")
	expired := e.issue(cl).AccessToken
	e.clock.Advance(DefaultTokenTTL)

	for name, tok := range map[string]string{
		"empty":     "",
		"garbage":   "gat_garbage",
		"not ours":  "eyJhbGciOiJub25lIn0.e30.",
		"expired":   expired,
		"forged":    sealedRaw(tokenVersion, e.sealer.activeID(), 80),
		"no prefix": "AQID",
	} {
		if err := e.auth.Revoke(ctx, cl, tok); err != nil {
			t.Errorf("Revoke(%s): got error %v, want nil", name, err)
		}
	}
	n := 0
	if err := e.store.ForEachRevocation(ctx, func(string, time.Time) error { n++; return nil }); err != nil {
		t.Fatalf("ForEachRevocation: %v", err)
	}
	if n != 0 {
		t.Errorf("store holds %d revocations after revoking only invalid tokens, want 0", n)
	}
}

func TestRevocationSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	kept := e.issue(cl).AccessToken
	if err := e.auth.Revoke(ctx, cl, tok); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	e.reopen()
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check of a revoked token after reopen: got %v, want ErrRevoked", err)
	}
	if _, err := e.auth.Check(kept); err != nil {
		t.Errorf("Check of an unrevoked token after reopen: got %v, want valid", err)
	}
}

func TestCheckFollowsClientChanges(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, e *env, cl *clientstore.Client)
		want   error
	}{
		{"disabled", func(t *testing.T, e *env, cl *clientstore.Client) {
			c := cl.Clone()
			c.Disabled = true
			if _, err := e.cache.Update(ctx, c); err != nil {
				t.Fatalf("Update: %v", err)
			}
		}, ErrDisabled},
		{"deleted", func(t *testing.T, e *env, cl *clientstore.Client) {
			if err := e.cache.Delete(ctx, cl.ID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, ErrUnknownClient},
		{"metadata changed", func(t *testing.T, e *env, cl *clientstore.Client) {
			c := cl.Clone()
			c.Metadata = clientstore.Metadata{"realm": map[string]any{"id": "r2"}}
			if _, err := e.cache.Update(ctx, c); err != nil {
				t.Fatalf("Update: %v", err)
			}
		}, nil},
		// A generation bump (what a secret rotation does) invalidates every
		// token minted before it. Cache cannot set the generation, so write
		// the record to the store and restart, as another node would.
		{"generation bumped in the store", func(t *testing.T, e *env, cl *clientstore.Client) {
			c := cl.Clone()
			c.Generation++
			if err := e.store.UpdateClient(ctx, c); err != nil {
				t.Fatalf("UpdateClient: %v", err)
			}
			e.reopen()
		}, ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cl := e.newClient("svc")
			bystander := e.newClient("bystander")
			tok := e.issue(cl).AccessToken
			other := e.issue(bystander).AccessToken
			e.check(t, tok)

			tt.change(t, e, cl)

			r, err := e.auth.Check(tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check right after the change: got %v, want %v", err, tt.want)
			}
			if err == nil {
				if now, _ := e.cache.Get(cl.ID); r.Client.Revision != now.Revision {
					t.Errorf("Result.Client is at revision %d, not the updated %d", r.Client.Revision, now.Revision)
				}
				if got, _ := r.Client.Metadata.Lookup("realm.id"); got != "r2" {
					t.Errorf("Result.Client metadata realm.id = %v, want the updated %q", got, "r2")
				}
			}
			if _, err := e.auth.Check(other); err != nil {
				t.Errorf("another client's token after the change: got %v, want valid", err)
			}
		})
	}
}

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

func TestGrantScope(t *testing.T) {
	cl := &clientstore.Client{ID: "svc", Scope: "orders:read orders:write admin"}
	tests := []struct {
		name      string
		requested string
		want      string
		wantErr   error
	}{
		{"empty grants all", "", "orders:read orders:write admin", nil},
		{"blank grants all", "   ", "orders:read orders:write admin", nil},
		{"one", "orders:read", "orders:read", nil},
		{"subset keeps request order", "admin orders:read", "admin orders:read", nil},
		{"all", "orders:read orders:write admin", "orders:read orders:write admin", nil},
		{"duplicates folded", "orders:read orders:read admin orders:read", "orders:read admin", nil},
		{"extra spaces", "  orders:read   admin ", "orders:read admin", nil},
		// RFC 6749 §3.3 / §5.2 invalid_scope.
		{"not held", "orders:delete", "", ErrInvalidScope},
		{"one of several not held", "orders:read orders:delete", "", ErrInvalidScope},
		{"no prefix matching", "orders", "", ErrInvalidScope},
		{"no suffix matching", "read", "", ErrInvalidScope},
		{"longer than held", "orders:read:all", "", ErrInvalidScope},
		{"case matters", "Orders:Read", "", ErrInvalidScope},
		{"double quote", `orders:read"`, "", ErrInvalidScope},
		{"backslash", `orders\read`, "", ErrInvalidScope},
		{"non-ASCII", "orders:réad", "", ErrInvalidScope},
		{"control character", "orders:read\x01", "", ErrInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GrantScope(cl, tt.requested)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("GrantScope(%q) = %q, %v; want %q, %v", tt.requested, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// RFC 6749 §3.3: a scope token never has a character outside %x21 / %x23-5B
// / %x5D-7E, even one a (mis-stored) client record claims to hold.
func TestGrantScopeRefusesIllegalCharactersEvenIfHeld(t *testing.T) {
	cl := &clientstore.Client{ID: "svc", Scope: `a"b c\d ok`}
	for _, s := range []string{`a"b`, `c\d`} {
		if got, err := GrantScope(cl, s); !errors.Is(err, ErrInvalidScope) {
			t.Errorf("GrantScope(%q) = %q, %v; want ErrInvalidScope", s, got, err)
		}
	}
	if got, err := GrantScope(cl, "ok"); err != nil || got != "ok" {
		t.Errorf(`GrantScope("ok") = %q, %v; want "ok", nil`, got, err)
	}
}

func TestGrantAudience(t *testing.T) {
	const a, b = "https://a.example.com", "https://b.example.com"
	cl := &clientstore.Client{ID: "svc", Audience: []string{a, b}}
	tests := []struct {
		name      string
		requested []string
		want      []string
		wantErr   error
	}{
		{"nil grants all", nil, []string{a, b}, nil},
		{"empty grants all", []string{}, []string{a, b}, nil},
		{"one", []string{b}, []string{b}, nil},
		{"both, request order", []string{b, a}, []string{b, a}, nil},
		{"duplicates folded", []string{a, a, b, a}, []string{a, b}, nil},
		// RFC 8707 §2: a resource the client may not use is invalid_target.
		{"unknown", []string{"https://c.example.com"}, nil, ErrInvalidTarget},
		{"one of several unknown", []string{a, "https://c.example.com"}, nil, ErrInvalidTarget},
		{"prefix of allowed", []string{"https://a.example"}, nil, ErrInvalidTarget},
		{"trailing slash differs", []string{a + "/"}, nil, ErrInvalidTarget},
		{"empty string", []string{""}, nil, ErrInvalidTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GrantAudience(cl, tt.requested)
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GrantAudience(%q) = %q, %v; want %q, %v", tt.requested, got, err, tt.want, tt.wantErr)
			}
		})
	}
	// The request slice is not modified by folding duplicates.
	req := []string{a, a, b}
	if _, err := GrantAudience(cl, req); err != nil || !reflect.DeepEqual(req, []string{a, a, b}) {
		t.Errorf("GrantAudience modified its argument to %q (err %v)", req, err)
	}
}

func TestGrantAudienceClientWithoutAudiences(t *testing.T) {
	cl := &clientstore.Client{ID: "svc"}
	if got, err := GrantAudience(cl, nil); err != nil || len(got) != 0 {
		t.Errorf("GrantAudience(nil) = %q, %v; want no audience, nil", got, err)
	}
	if _, err := GrantAudience(cl, []string{testAudience}); !errors.Is(err, ErrInvalidTarget) {
		t.Errorf("GrantAudience of any audience for a client without audiences: got %v, want ErrInvalidTarget", err)
	}
}

func TestIssue(t *testing.T) {
	const other = "https://other.example.com"
	e := newEnv(t)
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{
		ID: "svc", Scope: testScope, Audience: []string{testAudience, other},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	tests := []struct {
		name      string
		scope     string
		aud       []string
		wantScope string
		wantAud   []string
		wantErr   error
	}{
		{"everything", "", nil, testScope, []string{testAudience, other}, nil},
		{"down-scoped", "orders:read", []string{other}, "orders:read", []string{other}, nil},
		{"scope not held", "orders:delete", nil, "", nil, ErrInvalidScope},
		{"audience not allowed", "", []string{"https://evil.example.com"}, "", nil, ErrInvalidTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := e.auth.Issue(cl, tt.scope, tt.aud)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Issue: got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if tok.AccessToken != "" {
					t.Errorf("Issue failed but returned token %q, want none", tok.AccessToken)
				}
				return
			}
			if tok.ExpiresIn != int64(DefaultTokenTTL.Seconds()) {
				t.Errorf("ExpiresIn = %d, want %d (TokenTTL in seconds)", tok.ExpiresIn, int64(DefaultTokenTTL.Seconds()))
			}
			if tok.Scope != tt.wantScope || !reflect.DeepEqual(tok.Audience, tt.wantAud) {
				t.Errorf("Token scope %q aud %q, want %q %q", tok.Scope, tok.Audience, tt.wantScope, tt.wantAud)
			}
			// The grant travels in the token.
			r := e.check(t, tok.AccessToken)
			if r.Claims.Scope != tt.wantScope || !reflect.DeepEqual(r.Claims.Audience, tt.wantAud) {
				t.Errorf("checked token scope %q aud %q, want %q %q", r.Claims.Scope, r.Claims.Audience, tt.wantScope, tt.wantAud)
			}
		})
	}
}

func TestIssueHonoursTokenTTL(t *testing.T) {
	for _, ttl := range []time.Duration{90 * time.Second, 24 * time.Hour} {
		e := newEnv(t, withConfig(func(c *Config) { c.TokenTTL = ttl }))
		tok := e.issue(e.newClient("svc"))
		if want := int64(ttl.Seconds()); tok.ExpiresIn != want {
			t.Errorf("TokenTTL %v: ExpiresIn = %d, want %d", ttl, tok.ExpiresIn, want)
		}
		e.clock.Advance(ttl - time.Second)
		if _, err := e.auth.Check(tok.AccessToken); err != nil {
			t.Errorf("TokenTTL %v: Check 1s before expiry: %v, want valid", ttl, err)
		}
		e.clock.Advance(time.Second)
		if _, err := e.auth.Check(tok.AccessToken); !errors.Is(err, ErrExpired) {
			t.Errorf("TokenTTL %v: Check at expiry: %v, want ErrExpired", ttl, err)
		}
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

func TestNewAuthorityDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{Issuer: testIssuer}, Config{Issuer: testIssuer, TokenTTL: time.Hour, IdentityTTL: 5 * time.Minute}},
		{"negative", Config{TokenTTL: -time.Second, IdentityTTL: -time.Second}, Config{TokenTTL: time.Hour, IdentityTTL: 5 * time.Minute}},
		{"set", Config{Issuer: "x", TokenTTL: 2 * time.Hour, IdentityTTL: time.Minute}, Config{Issuer: "x", TokenTTL: 2 * time.Hour, IdentityTTL: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewAuthority(tt.in, nil, nil, nil, nil).Config(); got != tt.want {
				t.Errorf("NewAuthority(%+v).Config() = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	if DefaultTokenTTL != time.Hour || DefaultIdentityTTL != 5*time.Minute {
		t.Errorf("defaults TokenTTL %v IdentityTTL %v, want 1h and 5m (README, token_ttl and identity_ttl)", DefaultTokenTTL, DefaultIdentityTTL)
	}
}

func TestAuthorityAccessors(t *testing.T) {
	e := newEnv(t)
	if e.auth.Clients() != e.cache {
		t.Error("Clients() is not the cache the authority was built with")
	}
	if e.auth.Signer() != e.signer {
		t.Error("Signer() is not the signer the authority was built with")
	}
}
