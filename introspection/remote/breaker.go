package remote

import (
	"sync"
	"time"
)

// breaker is a circuit breaker for the introspection server: after
// threshold consecutive failed calls it opens and refuses calls for
// cooldown, then lets exactly one probe call through (half-open); the
// probe's success closes it, its failure opens it again.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int       // consecutive
	openUntil time.Time // zero: closed
	probing   bool      // half-open: the probe call is out
}

// probeRetry is the Retry-After hint while a probe call decides.
const probeRetry = time.Second

// allow reports whether a call may go out now; if not, how long until one
// might.
func (b *breaker) allow(now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return 0, true
	case now.Before(b.openUntil):
		return b.openUntil.Sub(now), false
	case b.probing:
		return probeRetry, false
	}
	b.probing = true
	return 0, true
}

// blocked reports, changing nothing, whether allow would refuse a call
// now, and how long until one might go out.
func (b *breaker) blocked(now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return 0, false
	case now.Before(b.openUntil):
		return b.openUntil.Sub(now), true
	case b.probing:
		return probeRetry, true
	}
	return 0, false
}

// success records a call answered; it reports whether that closed an
// open breaker.
func (b *breaker) success() (closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	closed = !b.openUntil.IsZero()
	b.failures, b.openUntil, b.probing = 0, time.Time{}, false
	return closed
}

// failure records a failed call; it reports whether that opened the
// breaker, and how long callers should wait before retrying.
func (b *breaker) failure(now time.Time) (opened bool, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.probing || b.failures >= b.threshold {
		opened = b.openUntil.IsZero() || b.probing
		b.openUntil, b.probing = now.Add(b.cooldown), false
		return opened, b.cooldown
	}
	return false, probeRetry
}
