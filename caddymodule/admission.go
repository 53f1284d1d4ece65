package caddymodule

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Defaults of the token endpoint's admission: how many token requests run
// at once (per CPU) and how many more may wait (per running one), and how
// long one waits at most. Issuing a token is a few tens of microseconds of
// CPU, so a short queue is enough to absorb bursts; beyond it, waiting
// would only grow latency and memory.
const (
	defaultTokenConcurrencyPerCPU = 16
	defaultTokenQueuePerSlot      = 8
	tokenQueueWait                = 250 * time.Millisecond
)

// admission bounds the requests in progress at an endpoint: at most
// running run at once, at most queued more wait for a slot, each for at
// most wait; any other is refused at once, so a burst far beyond capacity
// is shed instead of queued without bound.
type admission struct {
	slots   *semaphore.Weighted
	waiting atomic.Int64
	queued  int64
	wait    time.Duration
}

func newAdmission(running, queued int, wait time.Duration) *admission {
	return &admission{slots: semaphore.NewWeighted(int64(running)), queued: int64(queued), wait: wait}
}

// tokenAdmission is the token endpoint's admission as configured (0: the
// default).
func tokenAdmission(running, queued int) *admission {
	if running <= 0 {
		running = defaultTokenConcurrencyPerCPU * runtime.GOMAXPROCS(0)
	}
	if queued <= 0 {
		queued = defaultTokenQueuePerSlot * running
	}
	return newAdmission(running, queued, tokenQueueWait)
}

// enter reports whether a request may run now; if so, it must call leave
// when done.
func (a *admission) enter(ctx context.Context) bool {
	if a.slots.TryAcquire(1) {
		return true
	}
	if a.waiting.Add(1) > a.queued {
		a.waiting.Add(-1)
		return false
	}
	defer a.waiting.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	return a.slots.Acquire(ctx, 1) == nil
}

func (a *admission) leave() { a.slots.Release(1) }
