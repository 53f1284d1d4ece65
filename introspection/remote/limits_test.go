package remote

// The bounds under a flood of unknown tokens: the miss budget per client
// address (with the test clock, no sleeps) and the bound on calls in
// flight with its queue (with a server that holds calls until released).

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
	"github.com/gatehousehq/gatehouse/introspection"
)

const (
	flooder = "203.0.113.7"
	other   = "198.51.100.9"
)

// throttled fails unless err is a ThrottledError with a retry hint within
// (0, max]; it returns the hint.
func throttled(t *testing.T, err error, maxWait time.Duration) time.Duration {
	t.Helper()
	var te *introspection.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, introspection.ErrThrottled) || errors.Is(err, introspection.ErrUnavailable) {
		t.Fatalf("%v, want a ThrottledError", err)
	}
	if te.RetryAfter <= 0 || te.RetryAfter > maxWait {
		t.Errorf("RetryAfter %v, want within (0, %v]", te.RetryAfter, maxWait)
	}
	return te.RetryAfter
}

// An address gets burst misses, then one per 1/rate; over budget it gets
// ThrottledError without a call, while its cached tokens (active or
// refused) keep their answers and other addresses keep their budgets.
func TestAddressMissBudget(t *testing.T) {
	f := newFakeServer(t)
	f.answer("good", activeAnswer())
	c, clk := newTestClient(t, f, Config{AddressMissRate: 2, AddressMissBurst: 3})

	if _, err := c.Introspect(ctx, "good", flooder); err != nil {
		t.Fatalf("the flooder's good token: %v", err)
	}
	for i := range 2 {
		if _, err := c.Introspect(ctx, fmt.Sprint("junk-", i), flooder); !errors.Is(err, ErrInactive) {
			t.Fatalf("miss %d within the burst: %v, want ErrInactive", i, err)
		}
	}
	for i := range 10 {
		_, err := c.Introspect(ctx, fmt.Sprint("junk-more-", i), flooder)
		throttled(t, err, 500*time.Millisecond)
	}
	if n := f.calls.Load(); n != 3 {
		t.Errorf("%d upstream calls, want 3: none over budget", n)
	}

	// Cached answers are not misses: neither the active token nor the
	// refusal of one already asked about spends anything.
	for range 5 {
		if _, err := c.Introspect(ctx, "good", flooder); err != nil {
			t.Fatalf("the flooder's cached token over budget: %v", err)
		}
		if _, err := c.Introspect(ctx, "junk-0", flooder); !errors.Is(err, ErrInactive) {
			t.Fatalf("a cached refusal over budget: %v, want ErrInactive", err)
		}
	}

	// Another address has its own budget; no address, none at all.
	f.answer("others", activeAnswer())
	if _, err := c.Introspect(ctx, "others", other); err != nil {
		t.Fatalf("another address: %v", err)
	}
	for i := range 10 {
		if _, err := c.Introspect(ctx, fmt.Sprint("no-addr-", i), ""); !errors.Is(err, ErrInactive) {
			t.Fatalf("without an address, miss %d: %v, want ErrInactive", i, err)
		}
	}

	// The budget refills at the rate: one miss per 500ms.
	_, err := c.Introspect(ctx, "later", flooder)
	wait := throttled(t, err, 500*time.Millisecond)
	clk.Advance(wait)
	if _, err := c.Introspect(ctx, "later", flooder); !errors.Is(err, ErrInactive) {
		t.Fatalf("after %v: %v, want the refilled miss to be asked about", wait, err)
	}
	_, err = c.Introspect(ctx, "later-still", flooder)
	throttled(t, err, 500*time.Millisecond)
}

// A refused miss spends nothing: an address that keeps retrying while over
// budget is not locked out longer than the rate says.
func TestAddressMissBudgetRetriesCostNothing(t *testing.T) {
	f := newFakeServer(t)
	c, clk := newTestClient(t, f, Config{AddressMissRate: 1, AddressMissBurst: 1})
	if _, err := c.Introspect(ctx, "a", flooder); !errors.Is(err, ErrInactive) {
		t.Fatal(err)
	}
	for range 100 {
		c.Introspect(ctx, "b", flooder)
	}
	clk.Advance(time.Second)
	if _, err := c.Introspect(ctx, "b", flooder); !errors.Is(err, ErrInactive) {
		t.Fatalf("a second later, after 100 refused retries: %v, want the miss asked about", err)
	}
}

// Joining a call already out costs the server nothing, so it spends no
// miss: many requests of one new token from one address all get the
// answer, even with a budget of one.
func TestAddressMissBudgetJoiningIsFree(t *testing.T) {
	f := newFakeServer(t)
	f.answer("tok", activeAnswer())
	f.set(slow)
	f.arrived = make(chan struct{}, 1)
	c, _ := newTestClient(t, f, Config{AddressMissRate: 1, AddressMissBurst: 1})
	first := make(chan error, 1)
	go func() {
		_, err := c.Introspect(ctx, "tok", flooder)
		first <- err
	}()
	<-f.arrived // the call is out
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := c.Introspect(ctx, "tok", flooder)
			errs <- err
		})
	}
	_, err := c.Introspect(ctx, "another", flooder) // a distinct token does spend
	throttled(t, err, time.Second)
	f.unblock()
	wg.Wait()
	close(errs)
	if err := <-first; err != nil {
		t.Fatalf("the first request: %v", err)
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("a request joining the call: %v, want the answer", err)
		}
	}
	if calls := f.calls.Load(); calls != 1 {
		t.Errorf("%d upstream calls, want 1", calls)
	}
}

// The budget tracks a bounded number of addresses, and forgets an
// address once its bucket would be full again.
func TestAddressBudgetBounded(t *testing.T) {
	clk := clocktest.New(t0)
	a := newAddressBudget(10, 20, 100, clk.Now)
	for i := range 5000 {
		a.take(fmt.Sprint("192.0.2.", i), clk.Now())
	}
	a.b.CleanUp()
	if n := a.b.EstimatedSize(); n > 100 {
		t.Errorf("%d addresses tracked, want at most 100", n)
	}
	for range 20 {
		a.take(flooder, clk.Now())
	}
	if _, ok := a.take(flooder, clk.Now()); ok {
		t.Fatal("a miss over the burst was allowed")
	}
	clk.Advance(2*time.Second + time.Millisecond) // 20 at 10/s: full again
	a.b.CleanUp()
	if _, ok := a.b.GetIfPresent(flooder); ok {
		t.Error("the address is still tracked after its bucket refilled")
	}
	for i := range 20 {
		if _, ok := a.take(flooder, clk.Now()); !ok {
			t.Fatalf("miss %d of the refilled burst refused", i)
		}
	}
}

// At most MaxConcurrent calls are out; one more waits in the queue and
// gets the next free slot; with the queue full, the next is shed at once
// with ErrOverloaded; a call that waits QueueTimeout in vain is shed too.
// Shed calls never reach the server and never count against the breaker.
func TestMaxConcurrentAndQueue(t *testing.T) {
	f := newFakeServer(t)
	f.set(slow)
	f.arrived = make(chan struct{}, 8)
	c, _ := newTestClient(t, f, Config{MaxConcurrent: 2, QueueSize: 1, QueueTimeout: time.Hour, BreakerFailures: 1})

	results := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Introspect(ctx, fmt.Sprint("held-", i), "")
			results <- err
		}()
	}
	<-f.arrived
	<-f.arrived
	if !eventually(func() bool { return c.gate.waiting.Load() == 1 }) {
		t.Fatalf("%d calls waiting, want the third", c.gate.waiting.Load())
	}
	start := time.Now()
	_, err := c.Introspect(ctx, "queue-full", "")
	var ue *introspection.UnavailableError
	if !errors.Is(err, ErrOverloaded) || !errors.As(err, &ue) || ue.RetryAfter <= 0 {
		t.Fatalf("with the slots taken and the queue full: %v, want ErrOverloaded with a retry hint", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shedding took %v, want it at once", d)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d upstream calls, want the 2 slots", n)
	}
	if _, open := c.breaker.blocked(c.now()); open {
		t.Error("a shed call opened the breaker")
	}
	f.unblock()
	for range 3 {
		if err := <-results; !errors.Is(err, ErrInactive) {
			t.Errorf("a call holding or awaiting a slot: %v, want the answer", err)
		}
	}
	if n := f.calls.Load(); n != 3 {
		t.Errorf("%d upstream calls, want 3: the queued one got a slot", n)
	}
	if c.gate.waiting.Load() != 0 {
		t.Errorf("%d still counted as waiting", c.gate.waiting.Load())
	}
}

func TestQueueTimeout(t *testing.T) {
	f := newFakeServer(t)
	f.set(slow)
	f.arrived = make(chan struct{}, 1)
	c, _ := newTestClient(t, f, Config{MaxConcurrent: 1, QueueTimeout: time.Millisecond, BreakerFailures: 1})
	held := make(chan error, 1)
	go func() {
		_, err := c.Introspect(ctx, "held", "")
		held <- err
	}()
	<-f.arrived
	for i := range 5 {
		if _, err := c.Introspect(ctx, fmt.Sprint("late-", i), ""); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("call %d with the one slot held: %v, want ErrOverloaded", i, err)
		}
	}
	if _, open := c.breaker.blocked(c.now()); open {
		t.Error("shed calls opened the breaker")
	}
	f.unblock()
	if err := <-held; !errors.Is(err, ErrInactive) {
		t.Fatal(err)
	}
	if _, err := c.Introspect(ctx, "after", ""); !errors.Is(err, ErrInactive) {
		t.Errorf("once the slot is free: %v, want the answer", err)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d upstream calls, want 2", n)
	}
}

// An open breaker answers at once, without waiting for a slot, and a
// probe waiting for a slot in vain does not leave the breaker half-open
// for good.
func TestOpenBreakerDoesNotQueue(t *testing.T) {
	f := newFakeServer(t)
	f.set(status500)
	c, clk := newTestClient(t, f, Config{MaxConcurrent: 1, QueueTimeout: time.Millisecond, BreakerFailures: 1, BreakerCooldown: time.Second})
	if _, err := c.Introspect(ctx, "a", ""); errors.Is(err, ErrCircuitOpen) || !errors.Is(err, introspection.ErrUnavailable) {
		t.Fatalf("first failure: %v", err)
	}
	// Hold the only slot: the breaker still answers first.
	if !c.gate.enter("") {
		t.Fatal("the free slot was refused")
	}
	if _, err := c.Introspect(ctx, "b", ""); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("breaker open, slot held: %v, want ErrCircuitOpen", err)
	}
	clk.Advance(time.Second) // cool-down over: the probe is due, but finds no slot
	if _, err := c.Introspect(ctx, "c", ""); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("probe without a slot: %v, want ErrOverloaded", err)
	}
	c.gate.leave("")
	f.set(normal)
	if _, err := c.Introspect(ctx, "d", ""); !errors.Is(err, ErrInactive) {
		t.Fatalf("the probe once a slot is free: %v, want the answer", err)
	}
	if _, open := c.breaker.blocked(c.now()); open {
		t.Error("the breaker stayed open after its probe was answered")
	}
}

// The bounds are on by default and can be turned off; nonsense is refused.
func TestLimitsConfig(t *testing.T) {
	c, err := New(Config{URL: "https://hydra/i"})
	if err != nil {
		t.Fatal(err)
	}
	if c.gate == nil || c.budget == nil || c.cfg.MaxConcurrent != DefaultMaxConcurrent || c.cfg.QueueSize != DefaultQueueSize ||
		c.cfg.QueueTimeout != DefaultQueueTimeout || c.cfg.AddressMissRate != DefaultAddressMissRate || c.cfg.AddressMissBurst != DefaultAddressBurst {
		t.Errorf("defaults: %+v, gate %v, budget %v", c.cfg, c.gate != nil, c.budget != nil)
	}
	off, err := New(Config{URL: "https://hydra/i", MaxConcurrent: -1, AddressMissRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if off.gate != nil || off.budget != nil {
		t.Error("-1 did not turn the bounds off")
	}
	for _, cfg := range []Config{
		{AddressMissRate: math.NaN()},
		{AddressMissRate: math.Inf(1)},
		{AddressMissBurst: -1},
		{QueueSize: -1},
		{QueueTimeout: -time.Second},
	} {
		cfg.URL = "https://hydra/i"
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// One address holds at most half the slots: its further calls wait for
// one of its own (and are shed when that takes too long) while another
// address's calls take the free slots at once. An address is forgotten
// when it has no call left.
func TestGateShareOfAddress(t *testing.T) {
	g := newGate(4, 10, time.Millisecond)
	for i := range 2 {
		if !g.enter(flooder) {
			t.Fatalf("the flooder's call %d within its share was refused", i)
		}
	}
	if g.enter(flooder) {
		t.Fatal("the flooder took a third of four slots")
	}
	for i := range 2 {
		if !g.enter(other) {
			t.Fatalf("the other address's call %d was refused", i)
		}
	}
	if g.enter("") {
		t.Fatal("a fifth call got one of four slots")
	}
	g.leave(flooder)
	if !g.enter(flooder) {
		t.Fatal("the flooder's call after one of its own left was refused")
	}
	for _, a := range []string{flooder, flooder, other, other} {
		g.leave(a)
	}
	if len(g.addrs) != 0 || g.waiting.Load() != 0 {
		t.Errorf("after every call left: %d addresses tracked, %d waiting; want none", len(g.addrs), g.waiting.Load())
	}
	for i := range 4 {
		if !g.enter("") {
			t.Fatalf("call %d without an address was refused", i)
		}
	}
}

// The same through the client: with the flooder's calls holding its share
// of a slow server's slots, another address's new token is asked about at
// once, and the flooder's next call waits for a slot of its own share.
func TestFloodingAddressLeavesSlotsToOthers(t *testing.T) {
	f := newFakeServer(t)
	f.answer("others", activeAnswer())
	f.set(slow)
	f.arrived = make(chan struct{}, 8)
	c, _ := newTestClient(t, f, Config{MaxConcurrent: 4, QueueTimeout: time.Hour})
	results := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Introspect(ctx, fmt.Sprint("junk-", i), flooder)
			results <- err
		}()
	}
	<-f.arrived
	<-f.arrived
	if !eventually(func() bool {
		c.gate.mu.Lock()
		defer c.gate.mu.Unlock()
		return c.gate.addrs[flooder] != nil && c.gate.addrs[flooder].users == 3
	}) {
		t.Fatal("the flooder's third call is not waiting for its share")
	}
	theirs := make(chan error, 1)
	go func() {
		_, err := c.Introspect(ctx, "others", other)
		theirs <- err
	}()
	<-f.arrived // asked about while the flooder's third call still waits
	if n := f.calls.Load(); n != 3 {
		t.Errorf("%d upstream calls, want the flooder's 2 and the other's 1", n)
	}
	f.unblock()
	if err := <-theirs; err != nil {
		t.Errorf("the other address's token: %v", err)
	}
	for range 3 {
		if err := <-results; !errors.Is(err, ErrInactive) {
			t.Errorf("a flooder's call: %v, want the answer in time", err)
		}
	}
}
