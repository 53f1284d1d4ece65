package caddymodule

// A route fronting another authorization server under a flood of random
// tokens from one address: the flooding address is throttled (429) while
// remote tokens from other addresses keep working. Handler tests, an
// in-process Caddy test with client addresses from X-Forwarded-For, and
// the load benchmark BenchmarkRemoteFlood:
//
//	go test ./caddymodule -run '^$' -bench '^BenchmarkRemoteFlood$' -benchtime 1x
//
// Flags: -flood.duration (per leg), -flood.conns (the flooding source's
// keep-alive connections), -flood.rate (its requests per second; 0, the
// default: as fast as they go).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// serveFrom runs one request with token through p as if from addr
// (host:port), and returns the response.
func serveFrom(t *testing.T, p *Protect, token, addr string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders", nil)
	r.RemoteAddr = addr
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	if err := p.ServeHTTP(w, prepared(r, w), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return w
}

// A flooding address gets 429 with Retry-After for further unknown
// tokens, counted as throttled; its cached token, another address's
// remote token and Gatehouse's own tokens keep working. An IPv6 /64 is
// one address.
func TestProtectRemoteFloodThrottled(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	aud := "https://api.example.com"
	f.answer("ory_at_flooder_own", hydraAnswer("svc-hydra", "orders:read", aud))
	f.answer("ory_at_other", hydraAnswer("svc-hydra", "orders:read", aud))
	p := g.remoteProtect(t, f, func(p *Protect) {
		p.Introspect.AddressMissRate = 0.001 // no refill within the test
		p.Introspect.AddressMissBurst = 5
	})
	const flooder, other = "203.0.113.7:4000", "198.51.100.9:5000"
	if w := serveFrom(t, p, "ory_at_flooder_own", flooder); w.Code != 200 {
		t.Fatalf("the flooder's good token: %d", w.Code)
	}
	throttledBefore := protectedCount(t, g.app.state.metrics, "throttled")
	for i := range 4 {
		if w := serveFrom(t, p, fmt.Sprint("ory_at_junk_", i), flooder); w.Code != 401 {
			t.Fatalf("junk %d within the budget: %d, want 401", i, w.Code)
		}
	}
	calls := f.calls.Load()
	for i := range 20 {
		w := serveFrom(t, p, fmt.Sprint("ory_at_more_junk_", i), flooder)
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("junk %d over the budget: %d, want 429", i, w.Code)
		}
		if retry, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || retry < 1 {
			t.Errorf("Retry-After %q, want whole seconds", w.Header().Get("Retry-After"))
		}
		var body map[string]string
		if json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] != "temporarily_unavailable" {
			t.Errorf("body %s, want error temporarily_unavailable", w.Body)
		}
	}
	if n := f.calls.Load() - calls; n != 0 {
		t.Errorf("%d upstream calls over the budget, want 0", n)
	}
	if n := protectedCount(t, g.app.state.metrics, "throttled") - throttledBefore; n != 20 {
		t.Errorf("throttled counted %v, want 20", n)
	}
	if w := serveFrom(t, p, "ory_at_flooder_own", flooder); w.Code != 200 {
		t.Errorf("the flooder's cached token: %d, want 200", w.Code)
	}
	if w := serveFrom(t, p, "ory_at_other", other); w.Code != 200 {
		t.Errorf("another address's new remote token: %d, want 200", w.Code)
	}
	if w := serveFrom(t, p, g.token(t), flooder); w.Code != 200 {
		t.Errorf("a Gatehouse token from the flooding address: %d, want 200", w.Code)
	}

	// Two addresses of one /64 share a budget; the next /64 has its own.
	for i := range 5 {
		serveFrom(t, p, fmt.Sprint("ory_at_v6_", i), fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1))
	}
	if w := serveFrom(t, p, "ory_at_v6_next", "[2001:db8:1:2:ffff::1]:443"); w.Code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64: %d, want 429", w.Code)
	}
	if w := serveFrom(t, p, "ory_at_v6_next", "[2001:db8:1:3::1]:443"); w.Code != 401 {
		t.Errorf("an address of the next /64: %d, want 401 (asked about)", w.Code)
	}
}

// protectedCount reads gatehouse_protected_requests_total{outcome} of m.
func protectedCount(t *testing.T, m *requestMetrics, outcome string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.protect)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, c := range f.GetMetric() {
			for _, l := range c.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return c.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// floodConfig: on :9084 a route introspecting at fakeURL with a small miss
// budget, behind a trusted proxy (loopback) that names the client in
// X-Forwarded-For.
func floodConfig(dbPath, fakeURL string) string {
	return fmt.Sprintf(`{
`+testServerOptions+`	servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}
	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
	}
}
http://localhost:9084 {
	gatehouse_protect {
		introspect %s {
			trusted_issuers %s
			address_miss_rate  0.01
			address_miss_burst 3
		}
		scope orders:read
	}
	respond "ok"
}
`, dbPath, fakeURL, fakeIssuer)
}

func TestRemoteFloodEndToEnd(t *testing.T) {
	f := newFakeIntrospection(t)
	f.answer("ory_at_wellbehaved", hydraAnswer("svc-hydra", "orders:read", remoteAPI))
	caddytest.NewTester(t).InitServer(floodConfig(filepath.Join(t.TempDir(), "g.db"), f.URL), "caddyfile")
	flooder := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	other := http.Header{"X-Forwarded-For": {"198.51.100.9"}}
	before := protectedOutcomes(t)

	var codes []int
	for i := range 10 {
		resp, _ := callAPI(t, remoteAPI, fmt.Sprint("Bearer ory_at_random_", i), flooder)
		codes = append(codes, resp.StatusCode)
		if i >= 3 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("request %d: %d without Retry-After", i, resp.StatusCode)
		}
	}
	if want := []int{401, 401, 401, 429, 429, 429, 429, 429, 429, 429}; !slices.Equal(codes, want) {
		t.Errorf("the flooding address got %v, want %v", codes, want)
	}
	if resp, body := callAPI(t, remoteAPI, "Bearer ory_at_wellbehaved", other); resp.StatusCode != 200 {
		t.Errorf("another address's remote token during the flood: %d %s, want 200", resp.StatusCode, body)
	}
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d upstream calls, want 4: none for the throttled requests", n)
	}
	after := protectedOutcomes(t)
	if n := after["throttled"] - before["throttled"]; n != 7 {
		t.Errorf("gatehouse_protected_requests_total{outcome=\"throttled\"} grew by %d, want 7", n)
	}
}

var (
	floodDuration = flag.Duration("flood.duration", 3*time.Second, "length of each leg of BenchmarkRemoteFlood")
	floodConns    = flag.Int("flood.conns", 256, "keep-alive connections of the flooding source in BenchmarkRemoteFlood")
	floodRate     = flag.Float64("flood.rate", 0, "requests per second of the flooding source in BenchmarkRemoteFlood (0: as fast as it can)")
)

// slowIntrospection is an RFC 7662 endpoint with a few workers, each
// taking work per call: tokens starting ory_at_good_ are active, others
// not.
func slowIntrospection(tb testing.TB, workers int, work time.Duration) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	free := make(chan struct{}, workers)
	active, _ := json.Marshal(hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case free <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-free }()
		calls.Add(1)
		time.Sleep(work) // the server's work on the call
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.PostFormValue("token"), "ory_at_good_") {
			w.Write(active)
		} else {
			io.WriteString(w, `{"active":false}`)
		}
	}))
	tb.Cleanup(s.Close)
	return s, &calls
}

// floodLeg is what one leg of BenchmarkRemoteFlood measured.
type floodLeg struct {
	good, goodOK     int // the well-behaved source's requests, and those answered 200
	fresh, freshOK   int // of them, with a new token
	goodP50, goodP99 time.Duration
	freshP99         time.Duration
	flood            map[int]int // status → count
	upstream         int64
}

// BenchmarkRemoteFlood: a route fronting a slow introspection server (20
// ms a call, 8 at a time: 400 calls/s) is flooded with random tokens from
// one address over -flood.conns keep-alive connections, as fast as they
// go, while a well-behaved source at another address sends 200 requests/s
// with remote tokens: 8 cached ones, and a new one every 20th request.
// A leg without the flood, one with the default bounds, one with them
// off; each reports the well-behaved source's success rate and latency,
// of all its requests and of those with a new token.
func BenchmarkRemoteFlood(b *testing.B) {
	g := newBenchGateway(b)
	fmt.Printf("\nflood: %d conns, %v requests/s (0: as fast as they go), %s legs, GOMAXPROCS=%d\n",
		*floodConns, *floodRate, *floodDuration, runtime.GOMAXPROCS(0))
	for _, leg := range []struct {
		name, unit string
		flood      bool
		edit       func(*Introspect)
	}{
		{"no flood", "quiet", false, func(*Introspect) {}},
		{"flood, bounds on", "on", true, func(*Introspect) {}},
		{"flood, bounds off", "off", true, func(in *Introspect) { in.MaxConcurrent, in.AddressMissRate = -1, -1 }},
	} {
		res := runFloodLeg(b, g, leg.flood, leg.edit)
		rate := 100 * float64(res.goodOK) / float64(max(1, res.good))
		fmt.Printf("%-18s well-behaved: %d requests, %.1f%% 200, p50 %s, p99 %s; new tokens: %d, %.1f%% 200, p99 %s; flood: %v; upstream calls %d\n",
			leg.name, res.good, rate, res.goodP50.Round(time.Microsecond), res.goodP99.Round(time.Microsecond),
			res.fresh, 100*float64(res.freshOK)/float64(max(1, res.fresh)), res.freshP99.Round(time.Microsecond), res.flood, res.upstream)
		b.ReportMetric(rate, leg.unit+"-success-%")
		b.ReportMetric(float64(res.goodP99)/float64(time.Millisecond), leg.unit+"-p99-ms")
	}
}

func runFloodLeg(b *testing.B, g *benchGateway, flood bool, edit func(*Introspect)) floodLeg {
	upstream, calls := slowIntrospection(b, 8, 20*time.Millisecond)
	p := &Protect{Scopes: []string{"orders:read"}, Audience: "https://api.example.com",
		Introspect: &Introspect{URL: upstream.URL, TrustedIssuers: []string{fakeIssuer}, Timeout: caddy.Duration(500 * time.Millisecond)}}
	edit(p.Introspect)
	if err := p.setup(g.app, g.app.logger); err != nil {
		b.Fatal(err)
	}
	defer p.Cleanup()
	ok := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		io.WriteString(w, "ok")
		return nil
	})
	// The client's address comes from a trusted proxy's X-Forwarded-For.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = r.Header.Get("X-Forwarded-For") + ":1"
		p.ServeHTTP(w, prepared(r, w), ok)
	}))
	defer front.Close()
	send := func(c *http.Client, token, from string) (int, time.Duration) {
		r, _ := http.NewRequest(http.MethodGet, front.URL+"/orders", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("X-Forwarded-For", from)
		start := time.Now()
		resp, err := c.Do(r)
		if err != nil {
			return 0, time.Since(start)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	const goodAddr, floodAddr = "198.51.100.9", "203.0.113.7"
	goodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	var warm []string
	for i := range 8 {
		tok := fmt.Sprint("ory_at_good_warm_", i)
		if code, _ := send(goodClient, tok, goodAddr); code != 200 {
			b.Fatalf("warming %s: %d", tok, code)
		}
		warm = append(warm, tok)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	res := floodLeg{flood: map[int]int{}}
	floodTr := &http.Transport{MaxIdleConnsPerHost: *floodConns, MaxConnsPerHost: *floodConns}
	floodClient := &http.Client{Transport: floodTr, Timeout: 10 * time.Second}
	var seq atomic.Int64
	pace := rate.NewLimiter(rate.Inf, 1)
	if *floodRate > 0 {
		pace = rate.NewLimiter(rate.Limit(*floodRate), 1)
	}
	paceCtx, unpace := context.WithCancel(context.Background())
	for range *floodConns * btoi(flood) {
		wg.Go(func() {
			counts := map[int]int{}
			for {
				if pace.Wait(paceCtx) != nil {
					mu.Lock()
					for k, v := range counts {
						res.flood[k] += v
					}
					mu.Unlock()
					return
				}
				code, _ := send(floodClient, fmt.Sprint("ory_at_junk_", seq.Add(1)), floodAddr)
				counts[code]++
			}
		})
	}
	var lat, freshLat []time.Duration
	var fresh atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				tok, isNew := warm[(i+w)%len(warm)], (i*4+w)%20 == 0
				if isNew {
					tok = fmt.Sprint("ory_at_good_new_", fresh.Add(1))
				}
				code, d := send(goodClient, tok, goodAddr)
				mu.Lock()
				res.good++
				if code == 200 {
					res.goodOK++
				}
				lat = append(lat, d)
				if isNew {
					res.fresh++
					if code == 200 {
						res.freshOK++
					}
					freshLat = append(freshLat, d)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(*floodDuration)
	close(stop)
	unpace()
	wg.Wait()
	floodTr.CloseIdleConnections()
	goodClient.CloseIdleConnections()
	slices.Sort(lat)
	slices.Sort(freshLat)
	if len(lat) > 0 {
		res.goodP50, res.goodP99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	if len(freshLat) > 0 {
		res.freshP99 = freshLat[len(freshLat)*99/100]
	}
	res.upstream = calls.Load()
	return res
}

// With every call slot taken and the short queue waited out, a new token
// gets 503 with Retry-After at once, counted as overloaded (not as the
// server failing), without a call.
func TestProtectRemoteOverloaded(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	f.answer("ory_at_held", hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	f.setHang(true)
	p := g.remoteProtect(t, f, func(p *Protect) {
		p.Introspect.MaxConcurrent = 1
		p.Introspect.QueueTimeout = caddy.Duration(time.Millisecond)
		p.Introspect.Timeout = caddy.Duration(time.Minute)
		p.Introspect.BreakerFailures = 1
	})
	held := make(chan int, 1)
	go func() {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders", nil)
		r.RemoteAddr = "198.51.100.9:5000"
		r.Header.Set("Authorization", "Bearer ory_at_held")
		w := httptest.NewRecorder()
		p.ServeHTTP(w, prepared(r, w), nopHandler)
		held <- w.Code
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond) // the first call is on its way to the server
	}
	m := g.app.state.metrics
	overloaded, unavailable := protectedCount(t, m, "overloaded"), protectedCount(t, m, "unavailable")
	w := serveFrom(t, p, "ory_at_shed", "203.0.113.7:4000")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("with the one slot taken: %d (Retry-After %q), want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if d := protectedCount(t, m, "overloaded") - overloaded; d != 1 || protectedCount(t, m, "unavailable") != unavailable {
		t.Errorf("overloaded grew by %v, unavailable by %v; want 1 and 0", d, protectedCount(t, m, "unavailable")-unavailable)
	}
	f.setHang(false)
	if code := <-held; code != 200 {
		t.Fatalf("the held call: %d, want 200", code)
	}
	f.answer("ory_at_shed", hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	if w := serveFrom(t, p, "ory_at_shed", "203.0.113.7:4000"); w.Code != 200 {
		t.Errorf("the shed token once a slot is free: %d, want 200 (the breaker untouched)", w.Code)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d upstream calls, want 2", n)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
