package remote

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Two bounds keep a flood of unknown tokens from denying service to the
// remote tokens of others: a budget of misses (tokens neither cached nor
// already being asked about) per client address, and a global bound on
// calls in flight with a short, bounded queue. Neither touches a token
// already cached, and Gatehouse's own tokens never come here.

// ErrOverloaded is the cause of an UnavailableError when a call could not
// get one of the MaxConcurrent slots within QueueTimeout, or the queue was
// full. No call was made, and it does not count against the breaker.
var ErrOverloaded = errors.New("introspection calls at their limit: request shed")

// addressBudget gives each client address a token bucket of misses,
// refilled at rate per second up to burst. The buckets live in an otter
// cache bounded in entries; a bucket unused for as long as it takes to
// refill is full again, so it is dropped then.
type addressBudget struct {
	limit rate.Limit
	burst int
	b     *otter.Cache[string, *rate.Limiter]
}

// newAddressBudget returns the budget, or nil if perSecond is not
// positive (no per-address budget).
func newAddressBudget(perSecond float64, burst, entries int, now func() time.Time) *addressBudget {
	if perSecond <= 0 {
		return nil
	}
	a := &addressBudget{limit: rate.Limit(perSecond), burst: max(1, burst)}
	refill := time.Duration(math.Ceil(float64(a.burst) / perSecond * float64(time.Second)))
	a.b = otter.Must(&otter.Options[string, *rate.Limiter]{
		MaximumSize:      max(1, entries),
		ExpiryCalculator: otter.ExpiryAccessing[string, *rate.Limiter](max(refill, time.Second)),
		Clock:            introspection.CacheClock(now),
	})
	return a
}

// take spends one miss of addr's budget at now; if none is left it spends
// nothing and says how long until one is.
func (a *addressBudget) take(addr string, now time.Time) (time.Duration, bool) {
	lim, ok := a.b.GetIfPresent(addr)
	if !ok {
		lim, _ = a.b.SetIfAbsent(addr, rate.NewLimiter(a.limit, a.burst))
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// gate bounds the calls in flight to the server: at most slots at once;
// a call that finds them taken waits at most timeout, with at most queue
// others. A nil gate lets every call through.
type gate struct {
	slots   *semaphore.Weighted
	queue   int64
	timeout time.Duration
	waiting atomic.Int64
}

func newGate(slots, queue int, timeout time.Duration) *gate {
	if slots <= 0 {
		return nil
	}
	return &gate{slots: semaphore.NewWeighted(int64(slots)), queue: int64(max(0, queue)), timeout: timeout}
}

// enter takes a slot, waiting as configured; false: none was free in
// time, or the queue was full. A slot taken is given back with leave.
func (g *gate) enter() bool {
	if g == nil || g.slots.TryAcquire(1) {
		return true
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	if g.timeout <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	return g.slots.Acquire(ctx, 1) == nil
}

func (g *gate) leave() {
	if g != nil {
		g.slots.Release(1)
	}
}
