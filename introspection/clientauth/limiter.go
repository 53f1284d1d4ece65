package clientauth

import (
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/maypok86/otter/v2"
)

// Limiter slows down brute-force guessing of client credentials: after
// more than Threshold failures for a key within Window, the key is refused
// for Base, doubling with each further block up to Max; a success resets a
// key. Callers choose keys so that nobody's failures block somebody else:
// an address, or a client_id together with the address guessing it.
//
// It tracks at most MaxEntries keys, in an otter cache: when it is full,
// otter's W-TinyLFU keeps the keys that fail more often, so a flood of new
// keys does not wash out one that keeps failing. A key is forgotten once
// its failures no longer count (see limitEntry.until).
type Limiter struct {
	Threshold  int
	Window     time.Duration
	Base, Max  time.Duration
	MaxEntries int

	entries *otter.Cache[string, limitEntry]
	now     func() time.Time
}

type limitEntry struct {
	failures     int
	windowStart  time.Time
	blockedUntil time.Time
	strikes      uint
}

// until is when the entry stops mattering: once its window has passed
// and, if it was ever blocked, Max has passed since the block ended, Fail
// would start it over and Allow lets the key try.
func (e *limitEntry) until(l *Limiter) time.Time {
	end := e.windowStart.Add(l.Window)
	if b := e.blockedUntil.Add(l.Max); e.strikes > 0 && b.After(end) {
		end = b
	}
	return end.Add(time.Nanosecond) // Fail still counts a failure exactly at the end
}

// NewLimiter returns a limiter with the given policy, tracking at most
// maxEntries keys.
func NewLimiter(threshold int, window, base, maxBlock time.Duration, maxEntries int) *Limiter {
	l := &Limiter{Threshold: threshold, Window: window, Base: base, Max: maxBlock, MaxEntries: maxEntries, now: time.Now}
	l.entries = otter.Must(&otter.Options[string, limitEntry]{
		MaximumSize: max(1, maxEntries),
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, limitEntry]) time.Duration {
			return e.Value.until(l).Sub(e.SnapshotAt())
		}),
		Clock: introspection.CacheClock(func() time.Time { return l.now() }),
	})
	return l
}

// Allow reports whether key may try now, and if not, how long to wait.
func (l *Limiter) Allow(key string) (time.Duration, bool) {
	e, ok := l.entries.GetIfPresent(key)
	if !ok {
		return 0, true
	}
	if wait := e.blockedUntil.Sub(l.now()); wait > 0 {
		return wait, false
	}
	return 0, true
}

// Fail records a failed attempt for key.
func (l *Limiter) Fail(key string) {
	now := l.now()
	l.entries.Compute(key, func(e limitEntry, found bool) (limitEntry, otter.ComputeOp) {
		if !found {
			e = limitEntry{windowStart: now}
		}
		if now.Sub(e.windowStart) > l.Window {
			e.failures, e.windowStart = 0, now
			if now.Sub(e.blockedUntil) > l.Max {
				e.strikes = 0 // well-behaved for a while: start over
			}
		}
		e.failures++
		if e.failures > l.Threshold {
			block := l.Base << min(e.strikes, 20)
			if block > l.Max || block <= 0 {
				block = l.Max
			}
			e.strikes++
			e.blockedUntil = now.Add(block)
			e.failures = 0
			e.windowStart = now
		}
		return e, otter.WriteOp
	})
}

// Reset forgets key, after a success.
func (l *Limiter) Reset(key string) {
	l.entries.Invalidate(key)
}

// Limits are the brute-force limits of client authentication (RFC 6749
// §2.3.1, RFC 6819 §5.1.4.2.3): per address, and per client_id guessed
// from one address. Blocks never reach across addresses, so nobody can
// lock a client out by failing on its behalf from elsewhere.
type Limits struct {
	byAddr, byClient *Limiter
}

// NewLimits returns Gatehouse's limits: more than 20 failures a minute
// from one address block it for 30 s, doubling up to 15 min; more than 10
// for one client_id from one address block that pair for 5 s, doubling up
// to a minute only. Each tracks at most 100,000 keys.
func NewLimits() *Limits {
	return &Limits{
		byAddr:   NewLimiter(20, time.Minute, 30*time.Second, 15*time.Minute, 100_000),
		byClient: NewLimiter(10, time.Minute, 5*time.Second, time.Minute, 100_000),
	}
}

// allow refuses an attempt while its address, or this client_id guessed
// from this address, is blocked.
func (l *Limits) allow(addr, id string) error {
	wait, ok := l.byAddr.Allow(addr)
	if key := limitKey(id, addr); ok && key != "" {
		wait, ok = l.byClient.Allow(key)
	}
	if ok {
		return nil
	}
	return &LimitedError{RetryAfter: wait}
}

// fail records a failed attempt.
func (l *Limits) fail(addr, id string) {
	l.byAddr.Fail(addr)
	if key := limitKey(id, addr); key != "" {
		l.byClient.Fail(key)
	}
}

// reset forgets the failures of client id from addr, after a success.
func (l *Limits) reset(addr, id string) {
	l.byClient.Reset(limitKey(id, addr))
}

// limitKey is the per-client limiter key of id guessed from addr; empty
// for an id no client can have, so junk ids take no memory.
func limitKey(id, addr string) string {
	if id == "" || clientstore.ValidateID(id) != nil {
		return ""
	}
	return id + " " + addr
}
