package remote

import (
	"crypto/sha256"
	"math"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/maypok86/otter/v2"
)

// entry is one cached verdict: an active token's result, or the error
// that refuses the token (negative caching).
type entry struct {
	res   introspection.Result // Token empty: the cache keeps no token
	err   error
	until time.Time // not served from this instant on
	size  int       // approximate bytes, for the cache bound
}

// entryOverhead approximates what an entry costs beyond its response body.
const entryOverhead = 256

// result is the entry's verdict for a request presenting token. The
// token's exp is checked again on every use, wherever the entry came from.
func (e *entry) result(token string, now time.Time) (introspection.Result, error) {
	if e.err != nil {
		return introspection.Result{}, e.err
	}
	if exp := e.res.Claims.ExpiresAt; exp != 0 && now.Unix() >= exp {
		return introspection.Result{}, introspection.ErrExpired
	}
	r := e.res
	r.Token = token
	return r, nil
}

// cache holds verdicts by the SHA-256 of the token, in an otter cache
// bounded by weight: an entry weighs its approximate bytes, but at least
// bytes/entries, so that the cache holds at most that many bytes and at
// most that many entries. otter decides which entries to keep (W-TinyLFU)
// and drops each at its until.
type cache struct {
	c         *otter.Cache[[sha256.Size]byte, *entry]
	minWeight int64 // bytes/entries
	maxWeight int64 // bytes, at most 4 GiB (otter weighs entries in uint32)
}

// newCache returns a cache of at most entries entries and bytes bytes,
// whose entries expire by the time now tells.
func newCache(entries int, bytes int64, now func() time.Time) *cache {
	c := &cache{maxWeight: min(max(1, bytes), math.MaxUint32)}
	c.minWeight = max(1, c.maxWeight/int64(max(1, entries)))
	c.c = otter.Must(&otter.Options[[sha256.Size]byte, *entry]{
		MaximumWeight: uint64(c.maxWeight),
		Weigher:       func(_ [sha256.Size]byte, e *entry) uint32 { return uint32(c.weight(e)) },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[[sha256.Size]byte, *entry]) time.Duration {
			return e.Value.until.Sub(e.SnapshotAt())
		}),
		Clock: introspection.CacheClock(now),
	})
	return c
}

func (c *cache) weight(e *entry) int64 { return max(int64(e.size), c.minWeight) }

// get returns the live entry for key, or nil.
func (c *cache) get(key [sha256.Size]byte, now time.Time) *entry {
	if e, ok := c.c.GetIfPresent(key); ok && now.Before(e.until) {
		return e
	}
	return nil
}

// put stores e under key unless it is already stale or too big to hold.
func (c *cache) put(key [sha256.Size]byte, e *entry, now time.Time) {
	if now.Before(e.until) && c.weight(e) <= c.maxWeight {
		c.c.Set(key, e)
	}
}

// stats returns the number of entries and their approximate bytes.
func (c *cache) stats() (entries, bytes int) {
	c.c.CleanUp()
	for _, e := range c.c.All() {
		entries++
		bytes += e.size
	}
	return entries, bytes
}

// clock is the time of an otter cache, without ticks: the cache then
// starts no goroutine that would outlive it, and drops expired entries as
// it is used rather than every second.
type otterClock struct{ now func() time.Time }

func (c otterClock) NowNano() int64                    { return c.now().UnixNano() }
func (otterClock) Tick(time.Duration) <-chan time.Time { return nil }
