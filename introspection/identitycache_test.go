package introspection

import (
	"fmt"
	"testing"
)

// The cache holds at most its size, however many tokens come (which ones
// it keeps is otter's choice).
func TestIdentityCacheBounded(t *testing.T) {
	for _, size := range []int{1, 64, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := newEnv(t)
			cl := e.newClient("svc")
			rt := e.route(testAudience, size)
			const tokens = 2000
			for i := range tokens {
				e.identity(t, rt, e.issue(cl).AccessToken)
				if i%100 == 99 {
					if n := cachedIdentities(rt); n > size {
						t.Fatalf("after %d tokens the cache holds %d identities, want at most %d", i+1, n, size)
					}
				}
			}
			if n := cachedIdentities(rt); n < size/2 {
				t.Errorf("the cache holds %d identities after %d tokens, want it to fill towards %d", n, tokens, size)
			}
		})
	}
}

// cachedIdentities is the number of identities rt's cache holds, once otter has
// caught up with the writes.
func cachedIdentities(rt *Authorizer) int {
	rt.cache.c.CleanUp()
	return rt.cache.c.EstimatedSize()
}

// A sweep of tokens used once (a client that fetches a token per call, a
// scan) does not push out the identities of tokens in use.
func TestIdentityCacheKeepsTokensInUse(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	rt := e.route(testAudience, 64)
	hot := make([]string, 8)
	jwts := make([]string, len(hot))
	for i := range hot {
		hot[i] = e.issue(cl).AccessToken
		jwts[i], _ = e.identity(t, rt, hot[i])
	}
	for i := range 2000 {
		e.identity(t, rt, e.issue(cl).AccessToken)
		if i%10 == 0 { // the tokens in use keep being used
			for j, tok := range hot {
				if jwt, _ := e.identity(t, rt, tok); jwt != jwts[j] {
					t.Fatalf("after %d tokens used once, token %d in use was signed again", i+1, j)
				}
			}
		}
	}
	if n := cachedIdentities(rt); n > 64 {
		t.Errorf("the cache holds %d identities, want at most 64", n)
	}
}
