package clientstore

// Two "nodes" (a store, a Cache and a Sync each) on one real etcd: changes
// made through one are in the other's memory within a second, also after
// a compaction and after etcd was unreachable.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

// revFollower records revocations as introspection.Revocations does.
type revFollower struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (f *revFollower) Reset(s *Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = map[string]time.Time{}
	for k, v := range s.Revocations {
		f.ids[k] = v
	}
	return nil
}

func (f *revFollower) Apply(changes []Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range changes {
		switch ch.Kind {
		case RevocationPut:
			f.ids[ch.Name] = ch.Until
		case RevocationDeleted:
			delete(f.ids, ch.Name)
		}
	}
	return nil
}

func (f *revFollower) Export(snap *Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range f.ids {
		snap.Revocations[k] = v
	}
}

func (f *revFollower) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.ids[id]
	return ok
}

type node struct {
	store *EtcdStore
	cache *Cache
	sync  *Sync
	revs  *revFollower
	key   chan []byte
}

// startNode opens a node on endpoint under prefix.
func startNode(t *testing.T, endpoint, prefix string, timeout time.Duration) *node {
	t.Helper()
	ctx := context.Background()
	s, err := OpenEtcd(ctx, EtcdConfig{Endpoints: []string{endpoint}, Prefix: prefix,
		RequestTimeout: timeout, DialTimeout: timeout, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("OpenEtcd = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	n := &node{store: s, revs: &revFollower{}, key: make(chan []byte, 16)}
	if n.cache, err = NewCache(ctx, s); err != nil {
		t.Fatal(err)
	}
	n.sync = NewSync(s, nil)
	n.sync.SetStaleAfter(time.Second)
	n.sync.Follow(n.cache)
	n.sync.Follow(n.revs)
	if err := n.sync.Start(ctx); err != nil {
		t.Fatalf("Sync.Start = %v", err)
	}
	t.Cleanup(n.sync.Stop)
	n.sync.FollowKey("ring", func(v []byte) { n.key <- v })
	return n
}

// eventually waits for a change made on one node to show on another, and
// logs how long it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	t.Logf("%s after %v", what, etcdtest.Within(t, within, what, cond))
}

func TestEtcdWatchKeepsNodesCurrent(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	a := startNode(t, srv.Endpoint, "/watch/", 5*time.Second)
	b := startNode(t, srv.Endpoint, "/watch/", 5*time.Second)
	other := startNode(t, srv.Endpoint, "/watchother/", 5*time.Second) // a prefix that shares nothing

	cl, secret := mustCreate(t, a.cache, &Client{ID: "svc", Owner: "a"})
	eventually(t, etcdtest.Propagation, "client created on A known on B", func() bool {
		got, ok := b.cache.Authenticate("svc", secret)
		return ok && got.Revision == cl.Revision
	})
	if _, err := b.cache.Modify(ctx, "svc", 0, func(c *Client) (*Client, error) { c.Disabled = true; return c, nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, etcdtest.Propagation, "client disabled on B disabled on A", func() bool {
		c, ok := a.cache.Get("svc")
		return ok && c.Disabled
	})
	if err := a.store.Revoke(ctx, "tok", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, etcdtest.Propagation, "revocation on A known on B", func() bool { return b.revs.has("tok") })
	if err := a.store.SwapKey(ctx, "ring", nil, []byte("k2")); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-b.key:
		if string(v) != "k2" {
			t.Fatalf("B followed key %q, want k2", v)
		}
	case <-time.After(etcdtest.Propagation):
		t.Fatalf("key written on A not followed on B within %v", etcdtest.Propagation)
	}
	if err := b.cache.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	eventually(t, etcdtest.Propagation, "client deleted on B gone on A", func() bool { _, ok := a.cache.Get("svc"); return !ok })

	if _, ok := other.cache.Get("svc"); ok || other.revs.has("tok") {
		t.Fatal("a store under another prefix saw this prefix's data")
	}
	if st := b.sync.Status(); !st.Watching || st.Age(time.Now()) > time.Second || st.Revision == 0 {
		t.Errorf("status %+v, want watching, current", st)
	}
}

// A node cut off from etcd while the others write and etcd compacts its
// history cannot resume its watch: it reloads everything instead, and
// misses nothing.
func TestEtcdCompactionForcesResync(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	proxy := etcdtest.NewProxy(t, srv.Endpoint)
	a := startNode(t, srv.Endpoint, "/compact/", 5*time.Second)
	b := startNode(t, proxy.URL(), "/compact/", time.Second)
	_, secret := mustCreate(t, a.cache, &Client{ID: "before"})
	eventually(t, etcdtest.Propagation, "B sees the first client", func() bool { _, ok := b.cache.Authenticate("before", secret); return ok })

	proxy.Cut()
	created, secret2 := mustCreate(t, a.cache, &Client{ID: "during"})
	if err := a.cache.Delete(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if err := a.store.Revoke(ctx, "tok", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv.Compact()
	if _, _, err := b.cache.Create(ctx, &Client{ID: "x"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write on the cut-off node = %v, want ErrUnavailable", err)
	}
	eventually(t, 30*time.Second, "B reports its view stale", func() bool { return b.sync.Status().Age(time.Now()) > time.Second })
	resyncs := b.sync.Status().Resyncs

	proxy.Restore()
	eventually(t, 30*time.Second, "B catches up after the compaction", func() bool {
		got, ok := b.cache.Authenticate("during", secret2)
		_, gone := b.cache.Get("before")
		return ok && got.Revision == created.Revision && !gone && b.revs.has("tok")
	})
	st := b.sync.Status()
	if st.Resyncs <= resyncs {
		t.Errorf("resyncs %d, want more than %d: a compaction must force a full reload", st.Resyncs, resyncs)
	}
	eventually(t, 30*time.Second, "B's view current again", func() bool { return b.sync.Status().Age(time.Now()) < time.Second })
}

// etcd down: reads keep working from memory, writes fail with
// ErrUnavailable within the request timeout; back up: writes work and
// both nodes converge on what was written after the outage.
func TestEtcdUnavailable(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	a := startNode(t, srv.Endpoint, "/down/", time.Second)
	b := startNode(t, srv.Endpoint, "/down/", time.Second)
	_, secret := mustCreate(t, a.cache, &Client{ID: "svc"})
	eventually(t, etcdtest.Propagation, "B sees the client", func() bool { _, ok := b.cache.Authenticate("svc", secret); return ok })

	srv.Stop()
	start := time.Now()
	_, _, err := a.cache.Create(ctx, &Client{ID: "new"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create with etcd down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Create with etcd down took %v, want about the 1s request timeout", d)
	}
	if err := a.store.Revoke(ctx, "tok", time.Now().Add(time.Hour)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Revoke with etcd down = %v, want ErrUnavailable", err)
	}
	if _, ok := b.cache.Authenticate("svc", secret); !ok {
		t.Fatal("reads from memory failed while etcd is down")
	}
	eventually(t, 30*time.Second, "A reports its view stale", func() bool { return a.sync.Status().Age(time.Now()) > time.Second })

	srv.Restart()
	eventually(t, 30*time.Second, "writes work again", func() bool {
		_, _, err := a.cache.Create(ctx, &Client{ID: "after"})
		return err == nil
	})
	eventually(t, 30*time.Second, "B converges", func() bool { _, ok := b.cache.Get("after"); return ok })
	eventually(t, 30*time.Second, "views current again", func() bool {
		return a.sync.Status().Age(time.Now()) < time.Second && b.sync.Status().Age(time.Now()) < time.Second
	})
}

// A node starts while etcd is unreachable from the local snapshot another
// run of it wrote: it serves what the snapshot holds (clients, revoked
// tokens), refuses writes with ErrUnavailable, reports its view as old as
// the snapshot, and once etcd is back takes up the watch from the
// snapshot's revision: what changed meanwhile arrives.
func TestEtcdNodeStartsFromLocalSnapshot(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.Start(t)
	path := filepath.Join(t.TempDir(), "gatehouse", "etcd.snapshot")

	a := startNode(t, srv.Endpoint, "/offline/", time.Second)
	_, secret := mustCreate(t, a.cache, &Client{ID: "svc", Metadata: Metadata{"realm": "r1"}})
	if err := a.store.Revoke(ctx, "revoked-token", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, etcdtest.Propagation, "A's view has the revocation", func() bool { return a.revs.has("revoked-token") })
	snapA := a.sync.Export()
	if err := WriteSnapshotFile(path, snapA); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}

	srv.Stop()
	// B's store client is made without etcd answering; OpenEtcd would fail.
	s, err := NewEtcd(EtcdConfig{Endpoints: []string{srv.Endpoint}, Prefix: "/offline/",
		RequestTimeout: time.Second, DialTimeout: time.Second, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Init(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Init with etcd down = %v, want ErrUnavailable", err)
	}
	if _, err := NewCache(ctx, s); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewCache with etcd down = %v, want ErrUnavailable (a node without a snapshot refuses to start)", err)
	}
	snap, asOf, err := ReadSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != snapA.Revision || snap.Revision == 0 {
		t.Fatalf("snapshot revision %d, want %d", snap.Revision, snapA.Revision)
	}
	b := &node{store: s, revs: &revFollower{}}
	if b.cache, err = NewCache(ctx, FromSnapshot(s, snap)); err != nil {
		t.Fatalf("NewCache from the snapshot = %v", err)
	}
	b.sync = NewSync(s, nil)
	b.sync.SetStaleAfter(time.Second)
	b.sync.Follow(b.cache)
	b.sync.Follow(b.revs)
	if err := b.sync.StartFrom(ctx, snap, asOf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.sync.Stop)

	if cl, ok := b.cache.Authenticate("svc", secret); !ok || cl.Metadata["realm"] != "r1" {
		t.Fatalf("the snapshot's client on B: %+v, %v", cl, ok)
	}
	if !b.revs.has("revoked-token") {
		t.Error("the snapshot's revocation is not in force on B")
	}
	if _, _, err := b.cache.Create(ctx, &Client{ID: "offline-write"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a write on B with etcd down = %v, want ErrUnavailable", err)
	}
	if age := b.sync.Status().Age(time.Now()); age < time.Since(asOf)-time.Second {
		t.Errorf("B's view is %v old, want the snapshot's age %v", age, time.Since(asOf))
	}

	srv.Restart()
	eventually(t, 30*time.Second, "A writes again", func() bool {
		_, _, err := a.cache.Create(ctx, &Client{ID: "while-b-was-away"})
		return err == nil
	})
	eventually(t, 30*time.Second, "B takes up the watch and sees the client created meanwhile", func() bool {
		_, ok := b.cache.Get("while-b-was-away")
		return ok
	})
	eventually(t, 30*time.Second, "B's view current", func() bool { return b.sync.Status().Age(time.Now()) < time.Second })
}
