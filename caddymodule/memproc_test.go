package caddymodule

// P4 measured on real Caddy processes: the resident set of a Caddy process
// that serves a protected route over a store of -mem.clients clients while
// -mem.tokens distinct live tokens are presented, next to a plain Caddy
// process proxying the same load to the same backend.
//
//	go test ./caddymodule -run '^$' -bench '^BenchmarkMemoryProcess$' -benchtime 1x
//
// Both processes are this test binary run as Caddy (see TestMain), or
// both the Caddy binary -mem.caddy names (e.g. the README's build, with
// -mem.caddy "$PWD/caddy"), so their binaries are the same. The gateway's
// store is filled and the tokens are minted in this process beforehand;
// the gateway process opens the store like any node and only checks
// tokens and signs identity JWTs. After every token was presented once
// (-mem.repeat times in a row: with 2 or more the identity cache fills to
// its bound) the load goes on for -mem.duration (10m for the issue's "no
// growth over a 10-minute run"; at most 30s for plain Caddy), sampling the
// child's RSS every second.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
)

var (
	memClients  = flag.Int("mem.clients", 100_000, "BenchmarkMemoryProcess: clients in the store")
	memTokens   = flag.Int("mem.tokens", 1_000_000, "BenchmarkMemoryProcess: distinct tokens presented")
	memDuration = flag.Duration("mem.duration", 30*time.Second,
		"BenchmarkMemoryProcess: load after every token was presented once")
	memProfile = flag.String("mem.profile", "", "BenchmarkMemoryProcess: write the gateway's heap profile at the end to this file")
	memRepeat  = flag.Int("mem.repeat", 1, "BenchmarkMemoryProcess: present each token this many times in a row (2 or more fills the identity cache)")
	memCache   = flag.Int("mem.cache", 0, "BenchmarkMemoryProcess: the gateway's identity_cache_size (0: the default)")
	memCaddy   = flag.String("mem.caddy", "", "BenchmarkMemoryProcess: a Caddy binary with the plugin (the README's ./caddy) to run instead of this test binary")
)

func BenchmarkMemoryProcess(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer backend.Close()

	start := time.Now()
	db := filepath.Join(b.TempDir(), "mem.db")
	tokens := memFixture(b, db)
	fmt.Printf("\n%d clients stored, %d tokens minted in %s\n", *memClients, len(tokens), time.Since(start).Round(time.Second))

	fmt.Printf("%-10s %9s %9s %9s %9s %9s %8s %8s %8s %7s\n", "process", "idle", "loaded", "max", "end", "growth", "file", "heap", "req/s", "errors")
	plain := memRun(b, "", backend.Listener.Addr().String(), tokens, min(*memDuration, 30*time.Second))
	plain.print("plain")
	gate := memRun(b, db, backend.Listener.Addr().String(), tokens, *memDuration)
	gate.print("gatehouse")
	fmt.Printf("plain     %s\ngatehouse %s\n", plain.mem, gate.mem)
	fmt.Printf("P4 RSS (MiB) of the gateway: max %.1f, %.2f× plain Caddy's %.1f, +%.1f; growth over the last %s: %+.1f\n",
		mib(gate.max), float64(gate.max)/float64(plain.max), mib(plain.max), mib(gate.max-plain.max), *memDuration, mib(gate.growth()))
	if gate.errors > 0 || plain.errors > 0 {
		b.Errorf("%d gateway and %d plain requests failed", gate.errors, plain.errors)
	}
	b.ReportMetric(mib(gate.max), "rss-MiB")
	b.ReportMetric(mib(plain.max), "plain-rss-MiB")
}

// memFixture fills a bbolt store at path with -mem.clients clients and
// returns -mem.tokens tokens minted for them, round robin.
func memFixture(b *testing.B, path string) []string {
	dir := filepath.Dir(path)
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, _ = os.MkdirTemp("/dev/shm", "gatehouse-mem") // setup speed only: fsync is free there
		defer os.RemoveAll(dir)
	}
	src := filepath.Join(dir, "fixture.db")
	app, ids := memGateway(b, src, *memClients)
	tokens := make([]string, *memTokens)
	var wg sync.WaitGroup
	const workers = 4
	failed := make([]error, workers) // one per worker: errors of any type
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(tokens); i += workers {
				tok, err := memToken(app, ids[i%len(ids)])
				if err != nil {
					failed[w] = err
					return
				}
				tokens[i] = tok
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(failed, app.state.store.Close())...); err != nil {
		b.Fatal(err)
	}
	if src != path {
		data, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(path, data, 0o600)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return tokens
}

// memGateway stores n clients shaped like real ones (scopes, an audience,
// an owner, nested metadata) in a new bbolt store at path and returns the
// gateway over it and the clients' ids. The caller closes the store.
func memGateway(b *testing.B, path string, n int) (*App, []string) {
	ctx := context.Background()
	store, err := clientstore.OpenBolt(path, 0)
	if err != nil {
		b.Fatal(err)
	}
	st, err := openStateOn(ctx, store, nil)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := introspection.LoadSigner(ctx, store, introspection.DefaultAlg)
	if err != nil {
		store.Close()
		b.Fatal(err)
	}
	app := &App{Issuer: "https://auth.example.com", logger: zap.NewNop(), state: st}
	app.auth = introspection.NewAuthority(introspection.Config{Issuer: app.Issuer}, st.clients, st.sealer, signer, st.revocations)
	ids := make([]string, n)
	for i := range ids {
		c, _, err := st.clients.Create(ctx, &clientstore.Client{
			ID: fmt.Sprintf("client-%06d", i), Scope: "orders:read orders:write",
			Audience: []string{"https://api.example.com"}, Owner: "team-" + strconv.Itoa(i%100),
			Metadata: clientstore.Metadata{"realm": map[string]any{"id": strconv.Itoa(i)}, "tier": "gold"},
		})
		if err != nil {
			store.Close()
			b.Fatal(err)
		}
		ids[i] = c.ID
	}
	return app, ids
}

// memToken issues a new token to the client id.
func memToken(app *App, id string) (string, error) {
	cl, _ := app.state.clients.Get(id)
	tok, err := app.auth.Issue(cl, "orders:read", nil)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// memResult is what one Caddy process did under the load, RSS in bytes.
type memResult struct {
	idle, loaded, max, end int64
	tail                   []int64 // RSS samples after every token was presented once
	file                   int64   // the file-backed part of end (binary, bbolt)
	heap                   uint64  // HeapInuse at the end
	mem                    string  // the runtime's other memory figures at the end
	requests, errors       int
	rps                    float64
}

func (r *memResult) growth() int64 {
	if len(r.tail) < 2 {
		return 0
	}
	return r.tail[len(r.tail)-1] - r.tail[0]
}

func (r *memResult) print(name string) {
	fmt.Printf("%-10s %9.1f %9.1f %9.1f %9.1f %+9.1f %8.1f %8.1f %8.0f %7d\n", name, mib(r.idle), mib(r.loaded), mib(r.max), mib(r.end),
		mib(r.growth()), mib(r.file), float64(r.heap)/(1<<20), r.rps, r.errors)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// memRun starts a Caddy process proxying to backend: a gateway protecting
// the route with the store at db, or plain Caddy if db is "". It presents
// every token once, then keeps presenting them for d.
func memRun(b *testing.B, db, backend string, tokens []string, d time.Duration) *memResult {
	dir := b.TempDir()
	adminPort, port := etcdtest.FreePort(b), etcdtest.FreePort(b)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	global, protect := "", ""
	if db != "" {
		cache := ""
		if *memCache > 0 {
			cache = fmt.Sprintf("\n\t\tidentity_cache_size %d", *memCache)
		}
		global = fmt.Sprintf("gatehouse {\n\t\tstorage bolt %s\n\t\tissuer https://auth.example.com%s\n\t}", db, cache)
		protect = "gatehouse_protect {\n\t\tscope orders:read\n\t\taudience https://api.example.com\n\t}"
	}
	cmd := startCaddyBinary(b, *memCaddy, dir, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	persist_config off
	log {
		level ERROR
	}
	%s
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	%s
	reverse_proxy %s
}
`, adminPort, port, etcdtest.FreePort(b), global, port, protect, backend), admin+"/config/")
	defer func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	}()
	pid := cmd.Process.Pid
	time.Sleep(time.Second)
	res := &memResult{idle: rssOf(pid)}

	var next atomic.Int64
	url := fmt.Sprintf("http://127.0.0.1:%d/orders", port)
	repeat := int64(max(1, *memRepeat))
	mk := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		r.Header.Set("Authorization", "Bearer "+tokens[int((next.Add(1)-1)/repeat)%len(tokens)])
		return r
	}
	sampler := func(ctx context.Context, keep *[]int64) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					v := rssOf(pid)
					res.max = max(res.max, v)
					if keep != nil {
						*keep = append(*keep, v)
					}
				}
			}
		})
		return &wg
	}

	// Every token once.
	ctx, cancel := context.WithCancel(context.Background())
	wg := sampler(ctx, nil)
	all := driveCtx(ctx, *loadConns, func() *http.Request {
		if next.Load() >= repeat*int64(len(tokens)) {
			cancel()
		}
		return mk()
	})
	cancel()
	wg.Wait()
	res.loaded = rssOf(pid)
	res.tail = append(res.tail, res.loaded)

	// Then the sustained run.
	ctx, cancel = context.WithTimeout(context.Background(), d)
	wg = sampler(ctx, &res.tail)
	more := driveCtx(ctx, *loadConns, mk)
	cancel()
	wg.Wait()
	res.end, res.file = rssOf(pid), procStatus(pid, "RssFile")
	res.max = max(res.max, res.loaded, res.end)
	res.tail = append(res.tail, res.end)
	res.requests = all.requests + more.requests
	res.errors = all.errors + more.errors
	res.rps = more.rps
	res.heap, res.mem = heapOf(admin)
	if db != "" && *memProfile != "" {
		saveURL(b, admin+"/debug/pprof/heap?gc=1", *memProfile)
	}
	return res
}

// rssOf reads the resident set size of process pid, in bytes (Linux).
func rssOf(pid int) int64 { return procStatus(pid, "VmRSS") }

// procStatus reads a field of /proc/pid/status given in kB, in bytes.
func procStatus(pid int, field string) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// heapOf reads HeapInuse from the expvar page of Caddy's admin API, and
// the runtime's other memory figures and Gatehouse's off-heap memory as
// one line.
func heapOf(admin string) (uint64, string) {
	resp, err := http.Get(admin + "/debug/vars")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct {
			HeapAlloc, HeapInuse, HeapIdle, HeapReleased, StackInuse, MSpanInuse, GCSys, OtherSys, Sys uint64
			NextGC                                                                                     uint64
		} `json:"memstats"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	m := v.Memstats
	f := func(n uint64) float64 { return float64(n) / (1 << 20) }
	line := fmt.Sprintf("MiB: heap alloc %.1f, in use %.1f, idle not released %.1f, next GC %.1f, stacks %.1f, spans %.1f, GC %.1f, other %.1f, sys %.1f",
		f(m.HeapAlloc), f(m.HeapInuse), f(m.HeapIdle-m.HeapReleased), f(m.NextGC), f(m.StackInuse), f(m.MSpanInuse), f(m.GCSys), f(m.OtherSys), f(m.Sys))
	return m.HeapInuse, line
}

func saveURL(b *testing.B, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		b.Fatal(err)
	}
}
