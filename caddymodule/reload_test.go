package caddymodule

// Config reloads under traffic: a real Caddy process (this test binary
// re-executed, see TestMain) serves protected requests and token requests
// on keep-alive connections while its config is reloaded again and again.
// Caddy itself drops a few requests that race with a reload on a
// keep-alive connection (the old server closes it as idle while the
// request is on its way), with or without Gatehouse; the same traffic
// against the same routes answered by plain `respond` handlers measures
// that. What is Gatehouse's is asserted: no refusal of a valid token or
// client, no error status at all, every reload returns, the store never
// reported locked.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

var reloadCount = flag.Int("reload.count", 10, "config reloads per run of TestReloadUnderTraffic")

const (
	// reloadBound is how long one POST /load may take before the test
	// calls it stuck: far beyond any reload, it only catches a deadlock.
	reloadBound = 30 * time.Second
)

// reloadConfig is one site with the token endpoint and a protected route:
// Gatehouse's (db != ""), or plain `respond` handlers at the same paths
// (the baseline). gen is the irrelevant detail that differs between
// reloads, so Caddy really loads a new config; /generation shows it.
func reloadConfig(db string, adminPort, httpPort, httpsPort, gen int) string {
	global, api, token := "", `respond "ok"`, "header Content-Type application/json\n\t\trespond `{\"access_token\":\"baseline\"}`"
	if db != "" {
		global = fmt.Sprintf("gatehouse {\n\t\tstorage bolt %s\n\t\tissuer http://127.0.0.1:%d\n\t\ttoken_ttl 1h\n\t}", db, httpPort)
		api = "gatehouse_protect {\n\t\t\tscope orders:read\n\t\t}\n\t\trespond \"ok {gatehouse.client_id}\""
		token = "gatehouse_server"
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	persist_config off
	%s
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	handle /generation {
		respond "%d"
	}
	handle /api/* {
		%s
	}
	handle {
		%s
	}
}
`, adminPort, httpPort, httpsPort, global, httpPort, gen, api, token)
}

// reloadTally counts the outcomes of one kind of request.
type reloadTally struct {
	ok, connErrors, timeouts, gatehouseErrors, otherErrors atomic.Int64
}

func (c *reloadTally) String() string {
	return fmt.Sprintf("%d ok, %d connection errors, %d timeouts, %d error answers written by Gatehouse, %d other error answers",
		c.ok.Load(), c.connErrors.Load(), c.timeouts.Load(), c.gatehouseErrors.Load(), c.otherErrors.Load())
}

// reloadTraffic is the load of one run.
type reloadTraffic struct {
	base      string
	gatehouse bool
	client    createdClientJSON
	http      *http.Client

	api, token reloadTally

	mu       sync.Mutex
	tokens   []string // recent access tokens, the protected requests use them round robin
	next     int
	examples []string       // the first unexpected answers
	errKinds map[string]int // connection errors by kind
}

func (tr *reloadTraffic) pick() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.next++
	return tr.tokens[tr.next%len(tr.tokens)]
}

func (tr *reloadTraffic) keep(tok string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.tokens) < 64 {
		tr.tokens = append(tr.tokens, tok)
	} else {
		tr.tokens[tr.next%len(tr.tokens)] = tok
	}
}

// connErrorKind names a transport error for the log.
func connErrorKind(err error) string {
	switch s := err.Error(); {
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.EOF), strings.HasSuffix(s, "EOF"):
		return "EOF"
	case strings.Contains(s, "server closed idle connection"):
		return "server closed idle connection"
	default:
		return s
	}
}

// record classifies one answer (or its absence) and reports whether it
// was the success expected.
func (tr *reloadTraffic) record(tally *reloadTally, what string, resp *http.Response, err error, check func(body []byte) bool) bool {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		// Not a dropped connection: a request that hangs.
		tally.timeouts.Add(1)
		return false
	}
	if err != nil {
		tally.connErrors.Add(1)
		tr.mu.Lock()
		tr.errKinds[what+": "+connErrorKind(err)]++
		tr.mu.Unlock()
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		tally.connErrors.Add(1)
		tr.mu.Lock()
		tr.errKinds[what+" (body): "+connErrorKind(err)]++
		tr.mu.Unlock()
		return false
	}
	if resp.StatusCode == http.StatusOK && check(body) {
		tally.ok.Add(1)
		return true
	}
	// Gatehouse's refusals carry a challenge or an OAuth error object.
	var e struct {
		Error string `json:"error"`
	}
	byGatehouse := resp.Header.Get("WWW-Authenticate") != "" || (json.Unmarshal(body, &e) == nil && e.Error != "")
	if byGatehouse {
		tally.gatehouseErrors.Add(1)
	} else {
		tally.otherErrors.Add(1)
	}
	tr.mu.Lock()
	if len(tr.examples) < 5 {
		tr.examples = append(tr.examples, fmt.Sprintf("%s: %d (written by Gatehouse: %v) WWW-Authenticate %q body %.200s",
			what, resp.StatusCode, byGatehouse, resp.Header.Get("WWW-Authenticate"), body))
	}
	tr.mu.Unlock()
	return false
}

func (tr *reloadTraffic) apiRequest() {
	tok := "baseline"
	if tr.gatehouse {
		tok = tr.pick()
	}
	req, _ := http.NewRequest(http.MethodGet, tr.base+"/api/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := tr.http.Do(req)
	want := "ok"
	if tr.gatehouse {
		want = "ok " + tr.client.ClientID
	}
	tr.record(&tr.api, "protected request", resp, err, func(b []byte) bool { return string(b) == want })
}

func (tr *reloadTraffic) tokenRequest() {
	req, _ := http.NewRequest(http.MethodPost, tr.base+pathToken, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuthz(tr.client.ClientID, tr.client.ClientSecret))
	resp, err := tr.http.Do(req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if tr.record(&tr.token, "token request", resp, err, func(b []byte) bool {
		return json.Unmarshal(b, &tok) == nil && tok.AccessToken != ""
	}) && tr.gatehouse {
		tr.keep(tok.AccessToken)
	}
}

// reloadRun is the outcome of one run.
type reloadRun struct {
	traffic    *reloadTraffic
	maxReload  time.Duration
	gatehouses int // "gatehouse ready" lines in Caddy's log: one per provisioning
}

// runReloads starts Caddy (with Gatehouse if gatehouse), drives traffic
// and reloads reloadCount times.
func runReloads(t *testing.T, gatehouse bool) *reloadRun {
	dir := t.TempDir()
	db := ""
	if gatehouse {
		db = filepath.Join(dir, "gatehouse.db")
	}
	adminPort, httpPort, httpsPort := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	cmd := startCaddyChild(t, dir, reloadConfig(db, adminPort, httpPort, httpsPort, 0), admin+"/config/")
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
			t.Logf("caddy's log:\n%s", b[max(0, len(b)-6000):])
		}
	})
	plain := &http.Client{Timeout: 10 * time.Second}
	waitGeneration := func(gen int) {
		t.Helper()
		want := fmt.Sprint(gen)
		etcdtest.Within(t, 10*time.Second, "generation "+want+" serves", func() bool {
			resp, err := plain.Get(base + "/generation")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b) == want
		})
	}
	waitGeneration(0)

	tr := &reloadTraffic{base: base, gatehouse: gatehouse, errKinds: map[string]int{},
		client: createdClientJSON{ClientID: "baseline", ClientSecret: "baseline"},
		http: &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}}
	defer tr.http.CloseIdleConnections()
	var before []string // tokens minted before the first reload
	if gatehouse {
		n := &caddyNode{t: t, name: "gatehouse", admin: admin, base: base}
		tr.client = n.create(`{"client_id":"reload","scope":"orders:read"}`)
		for range 8 {
			before = append(before, n.mustToken(tr.client))
		}
		tr.tokens = slices.Clone(before)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(f func()) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					f()
				}
			}
		})
	}
	for range 4 {
		loop(tr.apiRequest)
	}
	for range 2 {
		loop(tr.tokenRequest)
	}
	// waitTraffic waits until n more requests of each kind succeeded, so
	// that every reload happens under traffic.
	waitTraffic := func(n int64) {
		t.Helper()
		api, tok := tr.api.ok.Load(), tr.token.ok.Load()
		etcdtest.Within(t, 20*time.Second, "traffic flows", func() bool {
			return tr.api.ok.Load() >= api+n && tr.token.ok.Load() >= tok+n
		})
	}
	run := &reloadRun{traffic: tr}
	var once sync.Once
	halt := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	defer halt()
	waitTraffic(100)

	loader := &http.Client{Timeout: reloadBound}
	for gen := 1; gen <= *reloadCount; gen++ {
		start := time.Now()
		resp, err := loader.Post(admin+"/load", "text/caddyfile", strings.NewReader(reloadConfig(db, adminPort, httpPort, httpsPort, gen)))
		if err != nil {
			t.Fatalf("reload %d did not return within %v: %v", gen, reloadBound, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		run.maxReload = max(run.maxReload, took)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload %d: %d %s", gen, resp.StatusCode, b)
		}
		waitGeneration(gen)
		waitTraffic(100)
	}
	halt()

	if gatehouse {
		// Tokens minted by the first config still work under the last.
		n := &caddyNode{t: t, name: "gatehouse", admin: admin, base: base}
		for i, tok := range before {
			if status := n.api(tok); status != 200 {
				t.Errorf("token %d minted before the reloads: %d after them, want 200", i, status)
			}
		}
		if status, h := n.health(); status != 200 || h.Clients != 1 {
			t.Errorf("health after the reloads: %d, %d clients; want 200 and the one client", status, h.Clients)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), clientstore.ErrLocked.Error()) {
		t.Errorf("caddy's log reports the bbolt file locked")
	}
	run.gatehouses = strings.Count(string(log), `"msg":"gatehouse ready"`)
	return run
}

func (r *reloadRun) summary() string {
	tr := r.traffic
	kinds := make([]string, 0, len(tr.errKinds))
	for k, v := range tr.errKinds {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, v))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("protected requests: %v; token requests: %v; slowest reload %v; connection errors: [%s]",
		&tr.api, &tr.token, r.maxReload.Round(time.Millisecond), strings.Join(kinds, "; "))
}

func TestReloadUnderTraffic(t *testing.T) {
	var baseline, gatehouse *reloadRun
	t.Run("baseline without Gatehouse", func(t *testing.T) {
		baseline = runReloads(t, false)
		t.Logf("%d reloads: %s", *reloadCount, baseline.summary())
	})
	t.Run("Gatehouse", func(t *testing.T) {
		gatehouse = runReloads(t, true)
		t.Logf("%d reloads: %s", *reloadCount, gatehouse.summary())
		tr := gatehouse.traffic
		if n := tr.api.gatehouseErrors.Load() + tr.token.gatehouseErrors.Load() + tr.api.otherErrors.Load() + tr.token.otherErrors.Load(); n > 0 {
			t.Errorf("%d error answers to valid requests across reloads, e.g.:\n%s", n, strings.Join(tr.examples, "\n"))
		}
		if n := tr.api.timeouts.Load() + tr.token.timeouts.Load(); n > 0 {
			t.Errorf("%d requests got no answer within 10s across reloads", n)
		}
		if gatehouse.gatehouses != *reloadCount+1 {
			t.Errorf("Gatehouse was provisioned %d times, want %d (the first config and every reload)", gatehouse.gatehouses, *reloadCount+1)
		}
	})
	if baseline == nil || gatehouse == nil {
		return
	}
	conn := func(r *reloadRun) int64 { return r.traffic.api.connErrors.Load() + r.traffic.token.connErrors.Load() }
	t.Logf("connection errors at %d reloads: %d with Gatehouse, %d without (not asserted: Caddy's own)", *reloadCount, conn(gatehouse), conn(baseline))
}
