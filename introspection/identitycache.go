package introspection

import (
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultIdentityCacheSize bounds the identity-JWT cache of one route.
const DefaultIdentityCacheSize = 10_000

// identityCache holds identities by token (or by the SHA-256 of a remote
// token), at most size of them. otter decides which to keep (W-TinyLFU):
// a new entry displaces an old one only if its key was asked for more
// often, so a sweep of tokens used once does not push out the identities
// of tokens in use. Entries have no expiry of their own: Authorize serves
// an identity only before its refreshAt, a fresh identity replaces a stale
// one under the same key, and stale identities of tokens no longer
// presented go as others come in. (An expiry would cost a clock read on
// every hit.)
type identityCache struct {
	c *otter.Cache[string, *Identity]
}

func newIdentityCache(size int) *identityCache {
	return &identityCache{c: otter.Must(&otter.Options[string, *Identity]{
		MaximumSize: size,
		// Maintenance (eviction) runs on the goroutine that writes, which
		// has just signed a JWT: cheaper than waking another goroutine for
		// it. Safe here: nothing runs under the cache's locks (no Compute,
		// no deletion handler).
		Executor: func(fn func()) { fn() },
	})}
}

// get returns the identity cached under key, nil if there is none.
func (c *identityCache) get(key string) *Identity {
	g, _ := c.c.GetIfPresent(key)
	return g
}

// put caches g under key.
func (c *identityCache) put(key string, g *Identity) {
	c.c.Set(key, g)
}

// CacheClock is the time of an otter cache, read from a func such as
// time.Now or a test's clock, without ticks: the cache then starts no
// goroutine that would outlive it, and drops expired entries as it is used
// rather than every second.
type CacheClock func() time.Time

// NowNano implements otter.Clock.
func (c CacheClock) NowNano() int64 { return c().UnixNano() }

// Tick implements otter.Clock: never.
func (CacheClock) Tick(time.Duration) <-chan time.Time { return nil }
