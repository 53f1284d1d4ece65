package clientstore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/offheap"
)

// clientMap against a plain map under random single and batched writes.
// The arena's chunks are small here, so records move and freed chunks are
// reused many times over.
func TestClientMapMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	clock := time.Unix(0, 0)
	m := newClientMapIn(offheap.New(offheap.Options{ChunkSize: 4 << 10, Limbo: time.Second,
		Now: func() time.Time { clock = clock.Add(300 * time.Millisecond); return clock }}))
	want := map[string]packed{}
	check := func(step int) {
		t.Helper()
		for i := range 3000 {
			id := fmt.Sprint("c-", i)
			got, ok := m.load(id)
			if w, in := want[id]; ok != in || got != w {
				t.Fatalf("step %d: load(%s) = %q, %v; want %q", step, id, got, ok, w)
			}
		}
		n := 0
		m.each(func(p packed) {
			if want[p.id()] != p {
				t.Fatalf("step %d: each gave %q, want %q", step, p, want[p.id()])
			}
			n++
		})
		if n != len(want) || m.len() != len(want) {
			t.Fatalf("step %d: each gave %d clients, want %d", step, n, len(want))
		}
	}
	for step := range 200 {
		e := m.edit()
		next := make(map[string]packed, len(want))
		for k, v := range want {
			next[k] = v
		}
		ops := 1
		if step%10 == 0 {
			ops = 500 // a batch, as a load or a reset makes
		}
		for range ops {
			id := fmt.Sprint("c-", rng.IntN(2500))
			if rng.IntN(3) == 0 {
				e.delete(id)
				delete(next, id)
			} else {
				p := pack(&Client{ID: id, Revision: uint64(step), Name: strings.Repeat("n", rng.IntN(200))})
				e.put(p)
				next[id] = p
			}
		}
		if step%7 == 0 {
			check(step) // nothing of an uncommitted batch shows
		}
		e.commit()
		want = next
		check(step)
	}
	if len(want) == 0 {
		t.Fatal("the test deleted everything")
	}
	st := m.arena.Stats()
	live := 0
	for _, p := range want {
		live += len(p)
	}
	if st.Used-st.Dead != live {
		t.Errorf("arena counts %d live bytes, the clients have %d", st.Used-st.Dead, live)
	}
	if m.arena.Epoch() < 10 {
		t.Errorf("the arena compacted %d times: the test does not exercise it", m.arena.Epoch())
	}
	// Dead bytes stay a bounded share: compaction keeps up with the writes.
	if st.Mapped > 3*live+12*(4<<10) {
		t.Errorf("%d bytes mapped for %d live bytes", st.Mapped, live)
	}
}

// Lock-free readers racing a writer whose updates make the arena move
// records and reuse chunks at once: every read gives a revision the
// client had, never an older one than read before, and a record that
// decodes to the client asked for.
func TestClientMapReadersDuringCompaction(t *testing.T) {
	var clock atomic.Int64
	m := newClientMapIn(offheap.New(offheap.Options{ChunkSize: 4 << 10, Limbo: time.Second,
		Now: func() time.Time { return time.Unix(0, clock.Add(int64(time.Second))) }})) // limbo always over
	const n = 300
	var mu sync.Mutex // the writer lock
	put := func(i int, rev uint64) {
		mu.Lock()
		defer mu.Unlock()
		m.store(pack(&Client{ID: fmt.Sprint("c-", i), Revision: rev, Name: strings.Repeat("x", i%97), Owner: "o"}))
	}
	for i := range n {
		put(i, 1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			seen := make([]uint64, n)
			for k := 0; ; k++ {
				select {
				case <-done:
					return
				default:
				}
				i := (k*7 + r) % n
				id := fmt.Sprint("c-", i)
				rev, ok := m.revision(id)
				if !ok || rev < seen[i] {
					t.Errorf("revision(%s) = %d, %v after %d", id, rev, ok, seen[i])
					return
				}
				seen[i] = rev
				p, ok := m.load(id)
				if cl := p.client(); !ok || cl.ID != id || cl.Revision < rev || cl.Owner != "o" {
					t.Errorf("load(%s) = %+v, %v after revision %d", id, cl, ok, rev)
					return
				}
			}
		})
	}
	for rev := uint64(2); rev < 300; rev++ {
		for i := range n {
			put(i, rev)
		}
	}
	close(done)
	wg.Wait()
	if m.arena.Epoch() < 100 {
		t.Errorf("the arena compacted %d times: the test does not exercise it", m.arena.Epoch())
	}
}

// BenchmarkCacheRevision is the hot path's client lookup, among 100,000 clients.
func BenchmarkCacheRevision(b *testing.B) {
	c := &Cache{clients: newClientMap()}
	ids := make([]string, 100_000)
	e := c.clients.edit()
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%06d", i)
		e.put(pack(&Client{ID: ids[i]}))
	}
	e.commit()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Revision(ids[i%len(ids)]); !ok {
			b.Fatal("not found")
		}
		i += 7919
	}
}

// The clients are kept off the Go heap (Linux): the heap holds their
// tables, a small share of their size, so they do not double through the
// garbage collector's headroom.
func TestClientMapOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the arena maps memory on Linux only")
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := newClientMap()
	e := m.edit()
	size := 0
	for i := range 50_000 {
		p := pack(&Client{ID: fmt.Sprintf("client-%06d", i), Scope: "orders:read orders:write", Owner: "team",
			SecretHash: strings.Repeat("h", 55), Metadata: Metadata{"tier": "gold", "realm": strconv.Itoa(i)}})
		size += len(p)
		e.put(p)
	}
	e.commit()
	grew := int64(heap()) - int64(before)
	if grew > int64(size/4) {
		t.Errorf("the heap grew by %d bytes for %d bytes of packed clients", grew, size)
	}
	if st := m.arena.Stats(); m.len() != 50_000 || st.Used != size {
		t.Fatalf("%d clients, %d bytes in the arena; want 50000, %d", m.len(), st.Used, size)
	}
	runtime.KeepAlive(m)
}
