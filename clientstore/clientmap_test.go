package clientstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

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
				p := pack(&Client{ID: id, Revision: uint64(step)})
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
