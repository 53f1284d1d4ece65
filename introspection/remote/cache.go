package remote

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
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

const cacheShards = 16

// cache holds verdicts by the SHA-256 of the token, bounded in entries and
// in bytes. Each shard evicts on its own: expired entries first, then
// arbitrary ones (Go's map order is random).
type cache struct {
	maxEntries int // per shard
	maxBytes   int // per shard
	shards     [cacheShards]struct {
		mu    sync.Mutex
		m     map[[sha256.Size]byte]*entry
		bytes int
	}
}

func newCache(entries int, bytes int64) *cache {
	c := &cache{maxEntries: max(1, entries/cacheShards), maxBytes: int(max(1, bytes/cacheShards))}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]*entry)
	}
	return c
}

// get returns the live entry for key, or nil.
func (c *cache) get(key [sha256.Size]byte, now time.Time) *entry {
	s := &c.shards[key[0]%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.until) {
		delete(s.m, key)
		s.bytes -= e.size
		return nil
	}
	return e
}

// put stores e under key unless it is already stale or too big to hold.
func (c *cache) put(key [sha256.Size]byte, e *entry, now time.Time) {
	if !now.Before(e.until) || e.size > c.maxBytes {
		return
	}
	s := &c.shards[key[0]%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok {
		delete(s.m, key)
		s.bytes -= old.size
	}
	for len(s.m) > 0 && (len(s.m) >= c.maxEntries || s.bytes+e.size > c.maxBytes) {
		// Look at a few entries: drop the stale ones, or else the last
		// one seen.
		var victim [sha256.Size]byte
		freed, seen := false, 0
		for k, old := range s.m {
			if !now.Before(old.until) {
				delete(s.m, k)
				s.bytes -= old.size
				freed = true
			} else {
				victim = k
			}
			if seen++; seen == 8 {
				break
			}
		}
		if !freed {
			s.bytes -= s.m[victim].size
			delete(s.m, victim)
		}
	}
	s.m[key] = e
	s.bytes += e.size
}

// stats returns the number of entries and their approximate bytes.
func (c *cache) stats() (entries, bytes int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}
