package introspection

import (
	"sync"
	"time"
)

// Limiter slows down brute-force guessing of client credentials: after
// more than Threshold failures for a key within Window, the key is refused
// for Base, doubling with each further block up to Max; a success resets a
// key. Callers choose keys so that nobody's failures block somebody else:
// an address, or a client_id together with the address guessing it.
type Limiter struct {
	Threshold  int
	Window     time.Duration
	Base, Max  time.Duration
	MaxEntries int

	mu      sync.Mutex
	entries map[string]*limitEntry
	now     func() time.Time
}

type limitEntry struct {
	failures     int
	windowStart  time.Time
	blockedUntil time.Time
	strikes      uint
}

// NewLimiter returns a limiter with the given policy, tracking at most
// maxEntries keys.
func NewLimiter(threshold int, window, base, max time.Duration, maxEntries int) *Limiter {
	return &Limiter{Threshold: threshold, Window: window, Base: base, Max: max, MaxEntries: maxEntries,
		entries: make(map[string]*limitEntry), now: time.Now}
}

// Allow reports whether key may try now, and if not, how long to wait.
func (l *Limiter) Allow(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
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
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, ok := l.entries[key]
	if !ok {
		if len(l.entries) >= l.MaxEntries {
			l.evict(now)
		}
		e = &limitEntry{windowStart: now}
		l.entries[key] = e
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
}

// Reset forgets key, after a success.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// evict makes room for one entry in O(1): among a few entries (map order
// is random) it drops the idle ones, or else the one whose block ends
// first, so memory and time stay bounded under a flood of keys.
func (l *Limiter) evict(now time.Time) {
	var victim string
	var victimUntil time.Time
	freed, seen := false, 0
	for k, e := range l.entries {
		if now.After(e.blockedUntil) && now.Sub(e.windowStart) > l.Window {
			delete(l.entries, k)
			freed = true
		} else if seen == 0 || e.blockedUntil.Before(victimUntil) {
			victim, victimUntil = k, e.blockedUntil
		}
		if seen++; seen == 8 {
			break
		}
	}
	if !freed {
		delete(l.entries, victim)
	}
}
