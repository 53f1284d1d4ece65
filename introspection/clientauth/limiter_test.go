package clientauth

// The brute-force limiter of client authentication (RFC 6749 §2.3.1: "the
// authorization server MUST protect any endpoint utilizing it against
// brute force attacks"; RFC 6819 §5.1.4.2.3). Time only moves when a test
// moves the limiter's clock.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
)

const (
	limThreshold = 3
	limWindow    = time.Minute
	limBase      = 5 * time.Second
	limMax       = 40 * time.Second
)

func newTestLimiter(maxEntries int) (*Limiter, *clocktest.Clock) {
	c := clocktest.New(fixedNow)
	l := NewLimiter(limThreshold, limWindow, limBase, limMax, maxEntries)
	l.now = c.Now
	return l, c
}

func allowed(t *testing.T, l *Limiter, key, when string) {
	t.Helper()
	if wait, ok := l.Allow(key); !ok {
		t.Fatalf("%s: %q refused for %v, want allowed", when, key, wait)
	}
}

func blockedFor(t *testing.T, l *Limiter, key string, want time.Duration, when string) {
	t.Helper()
	wait, ok := l.Allow(key)
	if ok {
		t.Fatalf("%s: %q allowed, want blocked for %v", when, key, want)
	}
	if wait != want {
		t.Fatalf("%s: %q blocked for %v, want %v", when, key, wait, want)
	}
}

// tracked is the number of keys l tracks, once otter has caught up with
// the writes.
func tracked(l *Limiter) int {
	l.entries.CleanUp()
	return l.entries.EstimatedSize()
}

func fail(l *Limiter, key string, n int) {
	for i := 0; i < n; i++ {
		l.Fail(key)
	}
}

// Up to Threshold failures within the window are tolerated; the next one
// blocks the key for Base.
func TestLimiterThreshold(t *testing.T) {
	l, _ := newTestLimiter(100)
	allowed(t, l, "a", "before any failure")
	fail(l, "a", limThreshold)
	allowed(t, l, "a", fmt.Sprintf("after %d failures (the threshold)", limThreshold))
	l.Fail("a")
	blockedFor(t, l, "a", limBase, "after threshold+1 failures")
	allowed(t, l, "b", "another key")
}

// Failures older than the window are forgotten: a slow trickle never
// blocks. A failure exactly one window after the first still counts.
func TestLimiterWindow(t *testing.T) {
	l, c := newTestLimiter(100)
	for i := 0; i < 10; i++ {
		fail(l, "slow", limThreshold)
		c.Advance(limWindow + time.Nanosecond)
		allowed(t, l, "slow", fmt.Sprintf("round %d of %d failures per window", i, limThreshold))
	}

	fail(l, "edge", limThreshold)
	c.Advance(limWindow)
	l.Fail("edge")
	blockedFor(t, l, "edge", limBase, "threshold+1 failures, the last exactly one window after the first")
}

// A block lasts exactly its duration; each further block doubles, up to
// Max, and stays there without overflowing however many blocks follow.
func TestLimiterBackoffDoublesUpToMax(t *testing.T) {
	l, c := newTestLimiter(100)
	want := []time.Duration{limBase, 2 * limBase, 4 * limBase, limMax, limMax}
	for i, w := range want {
		fail(l, "k", limThreshold+1)
		blockedFor(t, l, "k", w, fmt.Sprintf("block %d", i+1))
		c.Advance(w - time.Nanosecond)
		if _, ok := l.Allow("k"); ok {
			t.Fatalf("block %d: allowed a nanosecond before it ends", i+1)
		}
		c.Advance(time.Nanosecond)
		allowed(t, l, "k", fmt.Sprintf("the moment block %d ends", i+1))
	}
	for i := 0; i < 200; i++ {
		fail(l, "k", limThreshold+1)
		wait, ok := l.Allow("k")
		if ok || wait <= 0 || wait > limMax {
			t.Fatalf("after %d more blocks: Allow = %v, %v; want blocked for at most Max %v", i+1, wait, ok, limMax)
		}
		c.Advance(wait)
	}
}

// The wait reported shrinks as time passes: Retry-After is truthful.
func TestLimiterWaitCountsDown(t *testing.T) {
	l, c := newTestLimiter(100)
	fail(l, "k", limThreshold+1)
	c.Advance(2 * time.Second)
	blockedFor(t, l, "k", limBase-2*time.Second, "two seconds into the block")
}

// A success (Reset) forgets the key: no block and no strikes, so the next
// block starts again at Base.
func TestLimiterReset(t *testing.T) {
	l, c := newTestLimiter(100)
	fail(l, "k", limThreshold+1)
	c.Advance(limBase)
	fail(l, "k", limThreshold+1)
	blockedFor(t, l, "k", 2*limBase, "second block")
	l.Reset("k")
	allowed(t, l, "k", "after Reset")
	fail(l, "k", limThreshold)
	allowed(t, l, "k", "threshold failures after Reset")
	l.Fail("k")
	blockedFor(t, l, "k", limBase, "first block after Reset")
	l.Reset("never-seen") // harmless
}

// Failures during a block do not extend it (the HTTP layer refuses blocked
// keys before it records failures, but the limiter must not depend on it
// to end a block) — they start the count towards the next block.
func TestLimiterFailuresWhileBlocked(t *testing.T) {
	l, c := newTestLimiter(100)
	fail(l, "k", limThreshold+1)
	l.Fail("k")
	blockedFor(t, l, "k", limBase, "one more failure during the block")
	c.Advance(limBase)
	allowed(t, l, "k", "when the block ends")
}

// Memory stays bounded under a flood of distinct keys (one per guessed
// client_id or spoofed address), and the flood cannot wash out a blocked
// key that keeps trying: otter admits a new key in place of an old one
// only if it was seen more often. (A blocked key that stays quiet through
// a flood of many times MaxEntries keys may be dropped, as otter's counts
// age; it then starts over with Threshold failures to spend.)
func TestLimiterBoundedEntries(t *testing.T) {
	const maxEntries = 1000
	l, c := newTestLimiter(maxEntries)
	fail(l, "attacker", limThreshold+1)
	for i := range 20 * maxEntries {
		l.Fail(fmt.Sprint("flood-", i))
		if i%100 == 0 {
			l.Allow("attacker") // refused, as each of its tries is
		}
		if i%1000 == 999 {
			if n := tracked(l); n > maxEntries {
				t.Fatalf("after %d flood keys the limiter tracks %d keys, want at most %d", i+1, n, maxEntries)
			}
		}
	}
	blockedFor(t, l, "attacker", limBase, "after the flood")

	// Even a flood of keys that are all blocked stays bounded.
	c.Advance(time.Second)
	for i := range 5 * maxEntries {
		k := fmt.Sprint("blocked-", i)
		fail(l, k, limThreshold+1)
		if i%1000 == 999 {
			if n := tracked(l); n > maxEntries {
				t.Fatalf("after %d blocked keys the limiter tracks %d keys, want at most %d", i+1, n, maxEntries)
			}
		}
	}
	// The key added last is still tracked (and blocked).
	if _, ok := l.Allow(fmt.Sprint("blocked-", 5*maxEntries-1)); ok {
		t.Fatal("the most recently blocked key was dropped")
	}
}

// A key is forgotten once its failures no longer matter: after its window
// if it was never blocked, else once Max has passed since its block ended
// too. (otter removes expired keys in steps of about a second.)
func TestLimiterForgets(t *testing.T) {
	const window = 10 * time.Second // shorter than limMax
	l := NewLimiter(limThreshold, window, limBase, limMax, 100)
	c := clocktest.New(fixedNow)
	l.now = c.Now
	fail(l, "trickle", limThreshold)
	fail(l, "blocked", limThreshold+1)
	c.Advance(window)
	if n := tracked(l); n != 2 {
		t.Fatalf("at the end of the window: %d keys tracked, want 2", n)
	}
	c.Advance(2 * time.Second)
	if n := tracked(l); n != 1 {
		t.Fatalf("past the window: %d keys tracked, want only the blocked one", n)
	}
	c.Set(fixedNow.Add(limBase + limMax - 2*time.Second))
	if n := tracked(l); n != 1 {
		t.Fatalf("just before Max after the block: %d keys tracked, want the blocked one still", n)
	}
	fail(l, "blocked", limThreshold+1)
	blockedFor(t, l, "blocked", 2*limBase, "a block while the strikes are remembered")
	c.Advance(2*limBase + limMax + 2*time.Second)
	if n := tracked(l); n != 0 {
		t.Fatalf("past Max after the last block: %d keys tracked, want none", n)
	}
	fail(l, "blocked", limThreshold+1)
	blockedFor(t, l, "blocked", limBase, "a block after the key was forgotten")
}

// The limiter is used from every request goroutine at once.
func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(limThreshold, limWindow, limBase, limMax, 64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := fmt.Sprint("k", (g*500+i)%100)
				l.Allow(k)
				l.Fail(k)
				if i%7 == 0 {
					l.Reset(k)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := tracked(l); n > 64 {
		t.Fatalf("tracks %d keys, want at most 64", n)
	}
}

// Only ids a client can have get a per-client key: junk ids take no
// memory.
func TestLimitKey(t *testing.T) {
	if limitKey("a/b", "x") != "" || limitKey(strings.Repeat("a", 1000), "x") != "" || limitKey("", "x") != "" {
		t.Error("limitKey keeps ids no client can have; they must take no memory")
	}
	if got := limitKey("svc", "192.0.2.7"); got != "svc 192.0.2.7" {
		t.Errorf("limitKey(svc, 192.0.2.7) = %q, want \"svc 192.0.2.7\"", got)
	}
}
