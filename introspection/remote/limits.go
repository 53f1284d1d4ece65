package remote

import (
	"context"
	"errors"
	"math"
	"sync"
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
// calls in flight, half of them at most for one address, with a short,
// bounded queue. Neither touches a token already cached, and Gatehouse's
// own tokens never come here.

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

// gate bounds the calls in flight to the server: at most slots at once,
// and at most perAddr of them (half) for calls started by one address. A
// call that finds them taken waits at most timeout in all; at most queue
// calls wait for a global slot. A nil gate lets every call through.
//
// The share per address keeps one address's burst of misses from taking
// every slot: its calls beyond the share wait for one of its own (few,
// while the budget per address is on: each spent a miss of it) while
// others' calls go ahead.
type gate struct {
	slots   *semaphore.Weighted
	queue   int64
	timeout time.Duration
	waiting atomic.Int64
	perAddr int64

	mu    sync.Mutex
	addrs map[string]*addrShare // addresses with calls holding or awaiting a slot
}

// addrShare is one address's share of the slots.
type addrShare struct {
	sem   *semaphore.Weighted
	users int // calls holding or awaiting one of its slots
}

func newGate(slots, queue int, timeout time.Duration) *gate {
	if slots <= 0 {
		return nil
	}
	return &gate{slots: semaphore.NewWeighted(int64(slots)), queue: int64(max(0, queue)), timeout: timeout,
		perAddr: int64(max(1, slots/2)), addrs: map[string]*addrShare{}}
}

// enter takes a slot for a call started by addr ("": none in
// particular), waiting as configured; false: none was free in time, or
// the queue was full. A slot taken is given back with leave(addr).
func (g *gate) enter(addr string) bool {
	if g == nil {
		return true
	}
	// One deadline for all the waiting, made once there is any.
	var ctx context.Context
	cancel := context.CancelFunc(func() {})
	defer func() { cancel() }()
	wait := func() context.Context {
		if ctx == nil {
			ctx, cancel = context.WithTimeout(context.Background(), g.timeout)
		}
		return ctx
	}
	share := g.share(addr)
	if share != nil && !share.sem.TryAcquire(1) && (g.timeout <= 0 || share.sem.Acquire(wait(), 1) != nil) {
		g.unshare(addr, share, false)
		return false
	}
	if g.slots.TryAcquire(1) || g.await(wait) {
		return true
	}
	g.unshare(addr, share, true)
	return false
}

// await waits for a global slot in the queue, if it has room.
func (g *gate) await(wait func() context.Context) bool {
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	return g.timeout > 0 && g.slots.Acquire(wait(), 1) == nil
}

// leave gives back the slot of a call started by addr.
func (g *gate) leave(addr string) {
	if g == nil {
		return
	}
	g.slots.Release(1)
	g.mu.Lock()
	share := g.addrs[addr]
	g.mu.Unlock()
	g.unshare(addr, share, true)
}

// share returns addr's share, counting the call as its user; nil for no
// address.
func (g *gate) share(addr string) *addrShare {
	if addr == "" {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.addrs[addr]
	if a == nil {
		a = &addrShare{sem: semaphore.NewWeighted(g.perAddr)}
		g.addrs[addr] = a
	}
	a.users++
	return a
}

// unshare ends a call's use of addr's share, giving back its slot of the
// share if it held one, and forgets the address when no call uses it.
func (g *gate) unshare(addr string, a *addrShare, held bool) {
	if a == nil {
		return
	}
	if held {
		a.sem.Release(1)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if a.users--; a.users == 0 {
		delete(g.addrs, addr)
	}
}
