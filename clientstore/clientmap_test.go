package clientstore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func mustPack(t testing.TB, cl *Client) packed {
	t.Helper()
	p, err := pack(cl)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clientMap against a plain map under random single and batched writes.
func TestClientMapMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := newClientMap()
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
				p := mustPack(t, &Client{ID: id, Revision: uint64(step), Name: strings.Repeat("n", rng.IntN(200))})
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
}

// Readers racing a writer (run with -race): every read gives a revision
// the client had, never an older one than read before, and a client that
// decodes to the one asked for.
func TestCacheReadersDuringWrites(t *testing.T) {
	c := &Cache{clients: newClientMap()}
	const n = 300
	var mu sync.Mutex // the writer lock
	put := func(i int, rev uint64) {
		mu.Lock()
		defer mu.Unlock()
		c.clients.store(mustPack(t, &Client{ID: fmt.Sprint("c-", i), Revision: rev, Name: strings.Repeat("x", i%97),
			Owner: "o", Metadata: Metadata{"rev": fmt.Sprint(rev)}}))
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
				rev, ok := c.Revision(id)
				if !ok || rev < seen[i] {
					t.Errorf("Revision(%s) = %d, %v after %d", id, rev, ok, seen[i])
					return
				}
				seen[i] = rev
				cl, ok := c.Get(id)
				if !ok || cl.ID != id || cl.Revision < rev || cl.Owner != "o" || cl.Metadata["rev"] != fmt.Sprint(cl.Revision) {
					t.Errorf("Get(%s) = %+v, %v after revision %d", id, cl, ok, rev)
					return
				}
			}
		})
	}
	for rev := uint64(2); rev < 100; rev++ {
		for i := range n {
			put(i, rev)
		}
	}
	close(done)
	wg.Wait()
}

// BenchmarkCacheRevision is the hot path's client lookup, among 100,000 clients.
func BenchmarkCacheRevision(b *testing.B) {
	c := &Cache{clients: newClientMap()}
	ids := make([]string, 100_000)
	e := c.clients.edit()
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%06d", i)
		e.put(mustPack(b, &Client{ID: ids[i]}))
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
