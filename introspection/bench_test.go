package introspection

import (
	"testing"
)

// The hot path: ParseBearer → Check → Identity (a cache hit nearly always).
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
	r := e.check(b, e.issue(e.newClient("svc")).AccessToken)
	rt := e.auth.NewRoute(testAudience, 0)
	if _, err := rt.Identity(&r); err != nil { // warm the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Identity(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentityMiss signs on every call: each iteration presents a
// distinct, pre-minted token.
func BenchmarkIdentityMiss(b *testing.B) {
	e := newEnv(b)
	cl := e.newClient("svc")
	rt := e.auth.NewRoute(testAudience, 0)
	results := make([]Result, b.N)
	for i := range results {
		results[i] = e.check(b, e.issue(cl).AccessToken)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rt.Identity(&results[i]); err != nil {
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
