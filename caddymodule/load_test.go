package caddymodule

// The load benchmark: Caddy in-process with a plain reverse_proxy route and
// a protected route to the same trivial backend, driven by the same
// keep-alive load generator in alternating A/B rounds.
//
//	go test ./caddymodule -run '^$' -bench '^BenchmarkLoad$' -benchtime 1x
//
// Flags: -load.duration (per round), -load.rounds (A/B pairs), -load.conns
// (concurrent keep-alive connections). It prints requests/s, p50 and p99
// per round, the protected/plain ratio per pair and their median, token
// issuance per second, p99 under 50 client updates/s, and memory.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

var (
	loadDuration = flag.Duration("load.duration", 5*time.Second, "length of one load round")
	loadRounds   = flag.Int("load.rounds", 3, "number of A/B round pairs")
	loadConns    = flag.Int("load.conns", 16, "concurrent keep-alive connections")
)

type loadResult struct {
	requests int
	errors   int
	rps      float64
	p50, p99 time.Duration
}

// drive sends requests made by mk over conns keep-alive connections for d.
func drive(d time.Duration, conns int, mk func() *http.Request) loadResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return driveCtx(ctx, conns, mk)
}

// driveCtx sends requests made by mk over conns keep-alive connections
// until ctx ends. Like a well-behaved client, a connection told to come
// back later (429 or 503 with Retry-After) waits that long first.
func driveCtx(ctx context.Context, conns int, mk func() *http.Request) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			bad := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Do(mk())
				if err != nil {
					bad++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
					if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 &&
						(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
						select {
						case <-ctx.Done():
						case <-time.After(time.Duration(secs) * time.Second):
						}
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	res := loadResult{requests: len(all), errors: errs, rps: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		res.p50 = all[len(all)/2]
		res.p99 = all[len(all)*99/100]
	}
	return res
}

func loadConfig(dbPath, backend string) string {
	return fmt.Sprintf(`{
`+testServerOptions+`	log {
		level ERROR
	}
	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9081 {
	reverse_proxy %s
}
http://localhost:9082 {
	gatehouse_protect {
		scope orders:read
		audience http://localhost:9082
	}
	reverse_proxy %s
}
`, dbPath, backend, backend)
}

func BenchmarkLoad(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	caddytest.NewTester(b).InitServer(loadConfig(filepath.Join(b.TempDir(), "load.db"), backend.Listener.Addr().String()), "caddyfile")

	body := `{"client_id":"load","scope":"orders:read","audience":["http://localhost:9082"],"owner":"bench"}`
	resp, err := http.Post(adminURL+"/gatehouse/clients", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	secret := jsonField(created, "client_secret")
	tokResp := tokenFor(b, "load", secret)
	token := jsonField(tokResp, "access_token")
	if token == "" {
		b.Fatalf("no token: %s", tokResp)
	}
	plain := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://localhost:9081/orders", nil)
		r.Header.Set("Authorization", "Bearer "+token) // same request size
		return r
	}
	protected := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://localhost:9082/orders", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	}
	d, conns := *loadDuration, *loadConns
	drive(time.Second, conns, plain) // warm up connections, caches
	drive(time.Second, conns, protected)

	fmt.Printf("\nload: %d conns, %s rounds, GOMAXPROCS=%d\n", conns, d, runtime.GOMAXPROCS(0))
	fmt.Printf("%-6s %-10s %10s %10s %10s %6s\n", "pair", "route", "req/s", "p50", "p99", "errors")
	var ratios, p99ratios []float64
	for i := range *loadRounds {
		a := drive(d, conns, plain)
		p := drive(d, conns, protected)
		fmt.Printf("%-6d %-10s %10.0f %10s %10s %6d\n", i+1, "plain", a.rps, a.p50, a.p99, a.errors)
		fmt.Printf("%-6d %-10s %10.0f %10s %10s %6d\n", i+1, "protected", p.rps, p.p50, p.p99, p.errors)
		if a.rps > 0 && a.p99 > 0 {
			ratios = append(ratios, p.rps/a.rps)
			p99ratios = append(p99ratios, float64(p.p99)/float64(a.p99))
		}
	}
	rps, p99 := median(ratios), median(p99ratios)
	fmt.Printf("P1 protected/plain req/s: %s  median %.3f\n", fmtRatios(ratios), rps)
	fmt.Printf("P1 protected/plain p99:   %s  median %.3f\n", fmtRatios(p99ratios), p99)
	b.ReportMetric(rps, "rps-ratio")
	b.ReportMetric(p99, "p99-ratio")

	// P2: token issuance with client_secret_basic.
	form := "grant_type=client_credentials&scope=orders%3Aread"
	issue := drive(d, conns, func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, authURL+pathToken, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("load", secret)
		return r
	})
	fmt.Printf("P2 token issuance: %.0f tokens/s (p99 %s, %d errors)\n", issue.rps, issue.p99, issue.errors)
	b.ReportMetric(issue.rps, "tokens/s")

	// P5: protected p99 while the client is updated 50 times a second.
	quiet := drive(d, conns, protected)
	stop := make(chan struct{})
	var writes sync.WaitGroup
	writes.Add(1)
	go func() {
		defer writes.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				upd := fmt.Sprintf(`{"scope":"orders:read","audience":["http://localhost:9082"],"owner":"bench","metadata":{"n":%d}}`, n)
				req, _ := http.NewRequest(http.MethodPut, adminURL+"/gatehouse/clients/load", strings.NewReader(upd))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	busy := drive(d, conns, protected)
	close(stop)
	writes.Wait()
	fmt.Printf("P5 p99 quiet %s, with 50 updates/s %s: ratio %.3f\n", quiet.p99, busy.p99, float64(busy.p99)/float64(quiet.p99))

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("memory (whole test process: Caddy, backend and load generator): RSS %s, heap in use %d MiB\n",
		rss(), ms.HeapInuse>>20)
}

func tokenFor(tb testing.TB, id, secret string) []byte {
	req, _ := http.NewRequest(http.MethodPost, authURL+pathToken, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// jsonField extracts a string field without a full decode (test helper).
func jsonField(b []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(b, key)
	if i < 0 {
		return ""
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = fmt.Sprintf("%.3f", r)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// rss is this process's resident set size (Linux).
func rss() string { return fmt.Sprintf("%.1f MiB", mib(rssOf(os.Getpid()))) }
