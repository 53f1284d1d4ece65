// Package clocktest is a settable clock for tests: they step time past an
// expiry or a grace period instead of sleeping. The code under test takes
// a func() time.Time (or an interface with Now); Clock.Now is one. Safe
// for concurrent use.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a time source that moves only when a test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock showing t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
