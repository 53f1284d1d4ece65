package remote

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
)

// Sustained failure — a server that hangs, errs or is gone, for hundreds
// of requests with distinct tokens — leaks neither goroutines nor
// connections: the breaker keeps the calls few, timed-out calls release
// their connections, errors reuse kept-alive ones, and Close lets the
// rest go.
func TestNoLeakUnderSustainedFailure(t *testing.T) {
	before := runtime.NumGoroutine()
	cases := []struct {
		name     string
		mode     behaviour
		down     bool
		maxConns int64 // connections the server may see
	}{
		{"hanging server", slow, false, 0}, // 0: at most one per call
		{"HTTP 500", status500, false, 2},  // kept alive and reused
		{"server gone", normal, true, 0},
	}
	const (
		requests  = 300
		threshold = 5
		cooldown  = time.Second
		probes    = requests / 50 // the clock passes a cool-down every 50 requests
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.set(tc.mode)
			cfg := Config{Timeout: 50 * time.Millisecond, BreakerFailures: threshold, BreakerCooldown: cooldown}
			if tc.down {
				cfg.URL = f.url()
				f.Close()
			}
			c, clk := newTestClient(t, f, cfg)
			for i := range requests {
				if _, err := c.Introspect(ctx, fmt.Sprint("tok-", i), ""); !errors.Is(err, introspection.ErrUnavailable) {
					t.Fatalf("request %d: %v, want ErrUnavailable", i, err)
				}
				if i%50 == 49 {
					clk.Advance(cooldown)
				}
			}
			calls := f.calls.Load()
			if calls > threshold+probes {
				t.Errorf("%d upstream calls for %d requests, want at most %d (breaker)", calls, requests, threshold+probes)
			}
			conns := f.newConns.Load()
			t.Logf("%d requests: %d upstream calls, %d connections", requests, calls, conns)
			if maxConns := max(tc.maxConns, calls); !tc.down && (conns > maxConns || tc.maxConns > 0 && conns > tc.maxConns) {
				t.Errorf("the server saw %d connections for %d calls, want at most %d", conns, calls, maxConns)
			}
			c.Close()
			f.unblock()
			if !eventually(func() bool { return f.open.Load() == 0 }) {
				t.Errorf("%d connections still open after Close", f.open.Load())
			}
			f.Close()
		})
	}
	if !eventually(func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// eventually polls cond for up to five seconds: goroutines and sockets
// wind down asynchronously, and a test can only observe them.
func eventually(cond func() bool) bool {
	for range 250 {
		if cond() {
			return true
		}
		runtime.Gosched()
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
