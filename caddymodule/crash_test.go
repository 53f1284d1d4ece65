//go:build unix

package caddymodule

// The kill -9 test: a real Caddy process (this test binary re-executed,
// see TestMain) on a bbolt store takes concurrent admin writes and is
// killed with SIGKILL in the middle of them, then started again on the
// same file. Every write it acknowledged must be there; the one write per
// writer that was in flight may or may not be, but nothing is torn.
//
//	go test ./caddymodule -run '^TestKill9DuringAdminWrites$' -crash.cycles 30

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	bolt "go.etcd.io/bbolt"
)

var (
	crashCycles  = flag.Int("crash.cycles", 3, "kill -9 cycles of TestKill9DuringAdminWrites")
	crashWriters = flag.Int("crash.writers", 4, "concurrent admin writers of TestKill9DuringAdminWrites")
)

// crashClient is what the test knows of one client. Each client belongs
// to one writer, which writes it one request at a time, so at most one
// write of it is in flight when the process dies.
type crashClient struct {
	id      string
	exists  bool   // as last acknowledged
	seq     int    // metadata of the last acknowledged create or PATCH (crashMetadata(seq))
	rev     uint64 // ETag of the last acknowledged write; 0 before the first
	secret  string // "" when its last change was not acknowledged (a create or rotation lost with the process)
	pending *crashOp
}

// crashOp is a write: its kind and, for a create or PATCH, the seq of the
// metadata it writes.
type crashOp struct {
	kind string // create, patch, rotate, delete
	seq  int
}

// crashMetadata is the metadata written with seq: the whole of it follows
// from seq, so a client's metadata tells which write it is from and
// whether it is whole. Odd writes set "tier", even ones remove it.
func crashMetadata(seq int) map[string]any {
	m := map[string]any{"seq": seq}
	if seq%2 == 1 {
		m["tier"] = fmt.Sprintf("t%d", seq)
	}
	return m
}

func crashMetadataJSON(seq int) string {
	b, _ := json.Marshal(crashMetadata(seq))
	return string(b)
}

// crashWriter writes its own clients: creates, PATCHes of their
// metadata, secret rotations (grace 0: the old secret stops at once) and
// deletes, each with If-Match of the client's last acknowledged ETag.
type crashWriter struct {
	n       int
	rng     *rand.Rand
	made    int
	seq     int
	clients []*crashClient
}

// crashRun is what the writers share.
type crashRun struct {
	t      *testing.T
	http   *http.Client
	mu     sync.Mutex
	revs   map[uint64]string // every acknowledged or observed ETag → its client: never reused
	floor  uint64            // the highest revision observed before this cycle
	acked  atomic.Int64
	counts map[string]int // acknowledged writes of this cycle by kind
}

// adminWrite sends one admin request. err is a transport error or a
// response cut short: the request may or may not have been carried out.
func (r *crashRun) adminWrite(method, url, body, ifMatch string) (int, []byte, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("ETag"), err
}

func parseETag(etag string) (uint64, error) {
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		return 0, fmt.Errorf("ETag %q is not a strong entity tag", etag)
	}
	return strconv.ParseUint(etag[1:len(etag)-1], 10, 64)
}

func quoteETag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// run writes until stop is closed or a request fails (the process died).
func (w *crashWriter) run(r *crashRun, admin string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if !w.step(r, admin) {
			return
		}
	}
}

func (w *crashWriter) live() []*crashClient {
	var live []*crashClient
	for _, c := range w.clients {
		if c.exists {
			live = append(live, c)
		}
	}
	return live
}

// step makes one write and records it if acknowledged; false if it was
// not (the writer stops).
func (w *crashWriter) step(r *crashRun, admin string) bool {
	live := w.live()
	var c *crashClient
	var op crashOp
	var method, path, body string
	if len(live) < 2 || w.rng.IntN(5) == 0 {
		w.made++
		w.seq++
		c = &crashClient{id: fmt.Sprintf("crash-w%d-%d", w.n, w.made)}
		w.clients = append(w.clients, c)
		op = crashOp{kind: "create", seq: w.seq}
		method, path = http.MethodPost, adminClientsPath
		body = fmt.Sprintf(`{"client_id":%q,"scope":"orders:read","owner":"writer-%d","metadata":%s}`, c.id, w.n, crashMetadataJSON(w.seq))
	} else {
		c = live[w.rng.IntN(len(live))]
		switch k := w.rng.IntN(8); {
		case k < 4:
			w.seq++
			op = crashOp{kind: "patch", seq: w.seq}
			tier := "null"
			if w.seq%2 == 1 {
				tier = fmt.Sprintf(`"t%d"`, w.seq)
			}
			method, path = http.MethodPatch, clientPath(c.id)
			body = fmt.Sprintf(`{"metadata":{"seq":%d,"tier":%s}}`, w.seq, tier)
		case k < 6:
			op = crashOp{kind: "rotate"}
			method, path = http.MethodPost, clientPath(c.id)+"/"+secretSegment+"?grace_period=0s"
		default:
			op = crashOp{kind: "delete"}
			method, path = http.MethodDelete, clientPath(c.id)
		}
	}
	ifMatch := ""
	if op.kind != "create" {
		ifMatch = quoteETag(c.rev)
	}
	status, b, etag, err := r.adminWrite(method, admin+path, body, ifMatch)
	t := r.t
	if err != nil {
		c.pending = &op
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Errorf("writer %d: %s %s: no answer within the client's timeout: %v", w.n, method, path, err)
		}
		return false
	}
	want := map[string]int{"create": http.StatusCreated, "delete": http.StatusNoContent}[op.kind]
	if want == 0 {
		want = http.StatusOK
	}
	if status != want {
		t.Errorf("writer %d: %s %s: %d %s, want %d", w.n, method, path, status, b, want)
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[op.kind]++
	r.acked.Add(1)
	if op.kind == "delete" {
		c.exists = false
		return true
	}
	rev, err := parseETag(etag)
	if err != nil {
		t.Errorf("writer %d: %s %s: %v", w.n, method, path, err)
		return false
	}
	if rev <= c.rev || rev <= r.floor {
		t.Errorf("client %s: %s acknowledged with ETag %d, after %d for this client and %d before the restart: ETags must grow",
			c.id, op.kind, rev, c.rev, r.floor)
	}
	if other, dup := r.revs[rev]; dup {
		t.Errorf("client %s: ETag %d already belonged to %s: ETags are never reused", c.id, rev, other)
	}
	r.revs[rev] = c.id
	var got struct {
		Metadata map[string]any `json:"metadata"`
		Secret   string         `json:"client_secret"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Errorf("client %s: %s answer %s: %v", c.id, op.kind, b, err)
		return false
	}
	c.exists, c.rev = true, rev
	if op.kind != "patch" {
		c.secret = got.Secret
	}
	if op.kind != "rotate" {
		c.seq = op.seq
	}
	if m, _ := json.Marshal(got.Metadata); string(m) != crashMetadataJSON(c.seq) {
		t.Errorf("client %s: %s answered metadata %s, want %s", c.id, op.kind, m, crashMetadataJSON(c.seq))
	}
	return true
}

// crashObserved is a client as the restarted process shows it.
type crashObserved struct {
	exists bool
	rev    uint64
	seq    int
}

// observe reads one client through the admin API.
func observe(t *testing.T, n *caddyNode, id string) crashObserved {
	t.Helper()
	status, b, h := n.adminCall(http.MethodGet, clientPath(id), "", nil)
	switch status {
	case http.StatusNotFound:
		return crashObserved{}
	case http.StatusOK:
	default:
		t.Fatalf("GET client %s after the restart: %d %s", id, status, b)
	}
	rev, err := parseETag(h.Get("ETag"))
	if err != nil {
		t.Fatalf("GET client %s: %v", id, err)
	}
	var got struct {
		ID       string         `json:"client_id"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(b, &got); err != nil || got.ID != id {
		t.Fatalf("GET client %s: %s (%v)", id, b, err)
	}
	seq, ok := got.Metadata["seq"].(float64)
	if m, _ := json.Marshal(got.Metadata); !ok || string(m) != crashMetadataJSON(int(seq)) {
		t.Fatalf("client %s after the restart has metadata %s: not whole metadata of one write", id, m)
	}
	return crashObserved{exists: true, rev: rev, seq: int(seq)}
}

// checkFile checks the killed process's file before anything opens it
// for writing: bbolt's own page-level consistency check, and every client
// record decodes and validates (clientstore.ReadBackup). It returns the
// clients' revisions by id.
func checkFile(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("opening the killed process's file: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	db.Close()
	if err != nil {
		t.Fatalf("bbolt consistency check of the killed process's file: %v", err)
	}
	snap, err := clientstore.ReadBackup(path)
	if err != nil {
		t.Fatalf("reading the killed process's file: %v", err)
	}
	revs := make(map[string]uint64, len(snap.Clients))
	for _, c := range snap.Clients {
		if err := c.Validate(); err != nil {
			t.Fatalf("client %s in the file: %v", c.ID, err)
		}
		revs[c.ID] = c.Revision
	}
	return revs
}

// verify compares the restarted process with what was acknowledged,
// settles every in-flight write (applied or not, never half), and checks
// that every client with a known secret gets a token. file is what
// checkFile read.
func (r *crashRun) verify(t *testing.T, n *caddyNode, writers []*crashWriter, file map[string]uint64) (applied, lost, secrets int) {
	t.Helper()
	// Every client the admin API lists reads back, and the list is the file's.
	listed := map[string]bool{}
	for token := ""; ; {
		path := adminClientsPath + "?page_size=1000"
		if token != "" {
			path += "&page_token=" + token
		}
		status, b, h := n.adminCall(http.MethodGet, path, "", nil)
		var page []struct {
			ID string `json:"client_id"`
		}
		if status != 200 || json.Unmarshal(b, &page) != nil {
			t.Fatalf("listing clients after the restart: %d %s", status, b)
		}
		for _, c := range page {
			listed[c.ID] = true
		}
		if token = h.Get("X-Next-Page-Token"); token == "" {
			break
		}
	}
	if len(listed) != len(file) {
		t.Errorf("the restarted process lists %d clients, the file holds %d", len(listed), len(file))
	}
	known := map[string]bool{}
	for _, w := range writers {
		for _, c := range w.clients {
			known[c.id] = true
		}
	}
	for id := range listed {
		if !known[id] {
			t.Errorf("client %s exists but was never written", id)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range writers {
		for _, c := range w.clients {
			o := observe(t, n, c.id)
			if o.exists != listed[c.id] {
				t.Errorf("client %s: GET says exists=%v, the list %v", c.id, o.exists, listed[c.id])
			}
			if rev, inFile := file[c.id]; o.exists != inFile || (inFile && rev != o.rev) {
				t.Errorf("client %s: served as exists=%v ETag %d, the file has exists=%v revision %d", c.id, o.exists, o.rev, inFile, rev)
			}
			asAcked := o.exists == c.exists && (!o.exists || (o.rev == c.rev && o.seq == c.seq))
			p := c.pending
			c.pending = nil
			if p == nil {
				if !asAcked {
					t.Errorf("client %s: after the restart exists=%v ETag %d metadata seq %d; acknowledged: exists=%v ETag %d seq %d",
						c.id, o.exists, o.rev, o.seq, c.exists, c.rev, c.seq)
				}
				continue
			}
			if asAcked {
				lost++
				continue
			}
			var ok bool
			switch p.kind {
			case "create":
				ok = o.exists && o.seq == p.seq && o.rev > r.floor
			case "patch":
				ok = o.exists && o.seq == p.seq && o.rev > c.rev
			case "rotate":
				ok = o.exists && o.seq == c.seq && o.rev > c.rev
			case "delete":
				ok = !o.exists
			}
			if !ok {
				t.Errorf("client %s: after the restart exists=%v ETag %d seq %d: neither the acknowledged state (exists=%v ETag %d seq %d) nor the in-flight %s (seq %d)",
					c.id, o.exists, o.rev, o.seq, c.exists, c.rev, c.seq, p.kind, p.seq)
				continue
			}
			applied++
			if o.exists {
				if other, dup := r.revs[o.rev]; dup {
					t.Errorf("client %s: ETag %d already belonged to %s: ETags are never reused", c.id, o.rev, other)
				}
				r.revs[o.rev] = c.id
			}
			// The write happened but its answer was lost: a new secret
			// (create, rotation) is unknown.
			c.exists, c.rev, c.seq = o.exists, o.rev, o.seq
			if p.kind == "create" || p.kind == "rotate" {
				c.secret = ""
			}
		}
	}
	for _, rev := range file {
		r.floor = max(r.floor, rev)
	}
	for _, w := range writers {
		for _, c := range w.clients {
			r.floor = max(r.floor, c.rev)
		}
	}
	// Every secret the process acknowledged authenticates: the last
	// rotation of each client was kept (grace 0 would refuse the one before).
	for _, w := range writers {
		for _, c := range w.clients {
			if !c.exists || c.secret == "" {
				continue
			}
			secrets++
			if status, _ := n.token(createdClientJSON{ClientID: c.id, ClientSecret: c.secret}); status != 200 {
				t.Errorf("client %s: its last acknowledged secret gets %d at the token endpoint after the restart, want 200", c.id, status)
			}
		}
	}
	return applied, lost, secrets
}

func TestKill9DuringAdminWrites(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d cycles, %d writers", seed, *crashCycles, *crashWriters)
	rng := rand.New(rand.NewPCG(seed, 1))
	db := filepath.Join(t.TempDir(), "gatehouse.db")
	run := &crashRun{t: t, revs: map[uint64]string{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *crashWriters}}}
	writers := make([]*crashWriter, *crashWriters)
	for i := range writers {
		writers[i] = &crashWriter{n: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+2))}
	}

	var file map[string]uint64
	for cycle := 0; cycle <= *crashCycles; cycle++ {
		n := startCaddyNode(t, fmt.Sprintf("cycle-%d", cycle), "storage bolt "+db)
		if cycle > 0 {
			applied, lost, secrets := run.verify(t, n, writers, file)
			t.Logf("cycle %d: restarted and checked; of the %d writes in flight at the kill %d were applied, %d not; %d acknowledged secrets get tokens",
				cycle, applied+lost, applied, lost, secrets)
			if t.Failed() {
				t.FailNow()
			}
		}
		if cycle == *crashCycles {
			n.stop()
			break
		}

		run.counts = map[string]int{}
		run.acked.Store(0)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range writers {
			wg.Go(func() { w.run(run, n.admin, stop) })
		}
		// Kill once the writes are under way, after a random delay.
		deadline := time.Now().Add(30 * time.Second)
		for run.acked.Load() < 10 && !t.Failed() {
			if time.Now().After(deadline) {
				t.Fatal("fewer than 10 admin writes acknowledged within 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd := n.cmd
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		ps, err := cmd.Process.Wait()
		n.cmd = nil
		close(stop)
		wg.Wait()
		// The next process may get the same ports: no connection to this
		// one may be reused.
		run.http.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		if err != nil {
			t.Fatal(err)
		}
		if ws, ok := ps.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("caddy ended with %v, want killed by SIGKILL", ps)
		}
		if t.Failed() {
			t.FailNow()
		}
		pending := 0
		for _, w := range writers {
			for _, c := range w.clients {
				if c.pending != nil {
					pending++
				}
			}
		}
		run.mu.Lock()
		kinds := make([]string, 0, len(run.counts))
		for k, v := range run.counts {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
		}
		run.mu.Unlock()
		slices.Sort(kinds)
		file = checkFile(t, db)
		t.Logf("cycle %d: killed after %d acknowledged writes (%s), %d in flight; the file passes bbolt's check, %d clients decode and validate",
			cycle+1, run.acked.Load(), strings.Join(kinds, ", "), pending, len(file))
	}
}
