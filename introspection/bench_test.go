package introspection

import (
	"context"
	"testing"
)

// The hot path: ParseBearer → Authorize (a cache hit nearly always).
// Run with: go test -run '^$' -bench . ./introspection/

func BenchmarkSeal(b *testing.B) {
	s := testSealer(b, 7, fixedNow)
	c := Claims{ClientID: "svc-orders", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 3601}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(&c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := testSealer(b, 7, fixedNow)
	c := Claims{ClientID: "svc-orders", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 3601}
	tok, err := s.Seal(&c)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	e := newEnv(b)
	tok := e.issue(e.newClient("svc")).AccessToken
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.auth.Check(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIdentityHit(b *testing.B) {
	e := newEnv(b)
	tok := e.issue(e.newClient("svc")).AccessToken
	rt := e.route(testAudience, 0)
	ctx := context.Background()
	if _, err := rt.Authorize(ctx, tok); err != nil { // warm the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Authorize(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentityMiss signs on every call: each iteration presents a
// distinct, pre-minted token.
func BenchmarkIdentityMiss(b *testing.B) {
	e := newEnv(b)
	cl := e.newClient("svc")
	rt := e.route(testAudience, 0)
	ctx := context.Background()
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = e.issue(cl).AccessToken
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rt.Authorize(ctx, tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBearer(b *testing.B) {
	e := newEnv(b)
	h := "Bearer " + e.issue(e.newClient("svc")).AccessToken
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBearer(h); err != nil {
			b.Fatal(err)
		}
	}
}
