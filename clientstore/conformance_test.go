package clientstore

// Conformance: the behaviours callers rely on, run against every Store
// implementation — the embedded bbolt file and a real etcd (Debian's
// etcd-server on loopback; skipped without it unless
// GATEHOUSE_REQUIRE_ETCD=1).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

var prefixSeq atomic.Int64

// openTestEtcd opens an EtcdStore on srv under a prefix of its own.
func openTestEtcd(t *testing.T, endpoint string, timeout time.Duration) *EtcdStore {
	t.Helper()
	s, err := OpenEtcd(context.Background(), EtcdConfig{
		Endpoints: []string{endpoint},
		Prefix:    fmt.Sprintf("/gatehouse-test-%d/", prefixSeq.Add(1)),
		// Short, so the tests of an unreachable etcd are quick.
		RequestTimeout: timeout, DialTimeout: timeout, Heartbeat: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("OpenEtcd = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachBackend runs fn as a subtest per backend. The etcd server lives as
// long as the calling test.
func eachBackend(t *testing.T, fn func(t *testing.T, open func(t *testing.T) Store)) {
	var srv *etcdtest.Server
	var startErr bool
	for _, b := range []string{"bolt", "etcd"} {
		t.Run(b, func(t *testing.T) {
			if b == "bolt" {
				fn(t, func(t *testing.T) Store { return openTestBolt(t, testDBPath(t)) })
				return
			}
			if srv == nil && !startErr {
				startErr = true
				srv = startForParent(t)
				startErr = srv == nil
			}
			if srv == nil {
				t.Skip("etcd not available")
			}
			fn(t, func(t *testing.T) Store { return openTestEtcd(t, srv.Endpoint, 5*time.Second) })
		})
	}
}

// startForParent starts etcd in a subtest; it is stopped with the subtest.
func startForParent(t *testing.T) *etcdtest.Server { return etcdtest.Start(t) }

func TestStoreConformance(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()

		t.Run("client round trip and errors", func(t *testing.T) {
			s := open(t)
			in := storedClient(t, "svc")
			if err := s.CreateClient(ctx, in); err != nil {
				t.Fatalf("CreateClient = %v", err)
			}
			got, err := s.GetClient(ctx, "svc")
			if err != nil {
				t.Fatalf("GetClient = %v", err)
			}
			wantSameClient(t, got, in)
			if got.Revision == 0 || got.Revision != in.Revision {
				t.Errorf("stored revision %d, in memory %d; want equal and non-zero", got.Revision, in.Revision)
			}
			if err := s.CreateClient(ctx, storedClient(t, "svc")); !errors.Is(err, ErrExists) {
				t.Errorf("CreateClient(existing) = %v, want ErrExists", err)
			}
			if err := s.UpdateClient(ctx, storedClient(t, "ghost")); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateClient(missing) = %v, want ErrNotFound", err)
			}
			if err := s.DeleteClient(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteClient(missing) = %v, want ErrNotFound", err)
			}
			if _, err := s.GetClient(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetClient(missing) = %v, want ErrNotFound", err)
			}
		})

		t.Run("revisions are new on every write, also after delete and re-create", func(t *testing.T) {
			s := open(t)
			c := storedClient(t, "a")
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			r1 := c.Revision
			if err := s.UpdateClient(ctx, c); err != nil || c.Revision <= r1 {
				t.Fatalf("UpdateClient = %v, revision %d after %d; want higher", err, c.Revision, r1)
			}
			r2 := c.Revision
			if err := s.DeleteClient(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			c = storedClient(t, "a")
			if err := s.CreateClient(ctx, c); err != nil || c.Revision <= r2 {
				t.Fatalf("re-create = %v, revision %d; want more than %d", err, c.Revision, r2)
			}
		})

		t.Run("conditional writes compare the revision in the write", func(t *testing.T) {
			s := open(t)
			c := storedClient(t, "svc")
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			rev := c.Revision
			next := c.Clone()
			if err := s.UpdateClientIf(ctx, next, rev); err != nil {
				t.Fatalf("UpdateClientIf(current) = %v", err)
			}
			if err := s.UpdateClientIf(ctx, c.Clone(), rev); !errors.Is(err, ErrRevisionMismatch) {
				t.Errorf("UpdateClientIf(stale) = %v, want ErrRevisionMismatch", err)
			}
			if err := s.DeleteClientIf(ctx, "svc", rev); !errors.Is(err, ErrRevisionMismatch) {
				t.Errorf("DeleteClientIf(stale) = %v, want ErrRevisionMismatch", err)
			}
			if err := s.UpdateClientIf(ctx, storedClient(t, "ghost"), 7); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateClientIf(missing) = %v, want ErrNotFound", err)
			}
			// Sixteen writers holding the same revision: exactly one wins.
			rev = next.Revision
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 16; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := s.UpdateClientIf(ctx, c.Clone(), rev)
					if err == nil {
						wins.Add(1)
					} else if !errors.Is(err, ErrRevisionMismatch) {
						t.Errorf("concurrent UpdateClientIf = %v, want nil or ErrRevisionMismatch", err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d of 16 writers with the same revision won, want 1", wins.Load())
			}
			cur, _ := s.GetClient(ctx, "svc")
			if err := s.DeleteClientIf(ctx, "svc", cur.Revision); err != nil {
				t.Fatalf("DeleteClientIf(current) = %v", err)
			}
		})

		t.Run("ForEachClient in client_id order", func(t *testing.T) {
			s := open(t)
			for _, id := range []string{"m", "a", "z", "b"} {
				if err := s.CreateClient(ctx, storedClient(t, id)); err != nil {
					t.Fatal(err)
				}
			}
			var ids []string
			if err := s.ForEachClient(ctx, func(c *Client) error { ids = append(ids, c.ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ids) != "[a b m z]" {
				t.Errorf("ForEachClient order %v, want [a b m z]", ids)
			}
		})

		t.Run("a key is created once, whoever asks first", func(t *testing.T) {
			s := open(t)
			var wg sync.WaitGroup
			got := make([][]byte, 8)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { return []byte(fmt.Sprint("key-", i)), nil })
					if err != nil {
						t.Errorf("LoadOrCreateKey = %v", err)
					}
					got[i] = k
				}()
			}
			wg.Wait()
			for i := range got {
				if !bytes.Equal(got[i], got[0]) {
					t.Fatalf("concurrent creators got different keys %q and %q: keys must be created once per store", got[0], got[i])
				}
			}
			again, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { t.Error("create called for an existing key"); return nil, nil })
			if err != nil || !bytes.Equal(again, got[0]) {
				t.Fatalf("LoadOrCreateKey(existing) = %q, %v; want %q", again, err, got[0])
			}
		})

		t.Run("SwapKey replaces only what the caller read", func(t *testing.T) {
			s := open(t)
			if err := s.SwapKey(ctx, "ring", nil, []byte("v1")); err != nil {
				t.Fatalf("SwapKey(absent → v1) = %v", err)
			}
			if err := s.SwapKey(ctx, "ring", nil, []byte("v1b")); !errors.Is(err, ErrKeyChanged) {
				t.Errorf("SwapKey(expecting absent, present) = %v, want ErrKeyChanged", err)
			}
			if err := s.SwapKey(ctx, "ring", []byte("v0"), []byte("v2")); !errors.Is(err, ErrKeyChanged) {
				t.Errorf("SwapKey(stale) = %v, want ErrKeyChanged", err)
			}
			if err := s.SwapKey(ctx, "ring", []byte("v1"), []byte("v2")); err != nil {
				t.Errorf("SwapKey(current) = %v", err)
			}
			if k, _ := s.LoadOrCreateKey(ctx, "ring", nil); string(k) != "v2" {
				t.Errorf("key after swaps = %q, want v2", k)
			}
		})

		t.Run("revocations are kept until they expire, then pruned", func(t *testing.T) {
			s := open(t)
			now := time.Now().Truncate(time.Second)
			if err := s.Revoke(ctx, "live", now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.Revoke(ctx, "once:jti", now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := s.PruneRevocations(ctx, now); err != nil {
				t.Fatal(err)
			}
			got := map[string]time.Time{}
			if err := s.ForEachRevocation(ctx, func(id string, until time.Time) error { got[id] = until; return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !got["live"].Equal(now.Add(time.Hour)) {
				t.Fatalf("revocations after prune = %v, want only live until %v", got, now.Add(time.Hour))
			}
		})

		t.Run("snapshot and backup hold everything, as a bbolt file", func(t *testing.T) {
			s := open(t)
			c := storedClient(t, "svc")
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { return []byte("material"), nil }); err != nil {
				t.Fatal(err)
			}
			until := time.Now().Add(time.Hour).Truncate(time.Second)
			if err := s.Revoke(ctx, "tok", until); err != nil {
				t.Fatal(err)
			}
			snap, err := s.(Snapshotter).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Clients) != 1 || string(snap.Keys["k"]) != "material" || !snap.Revocations["tok"].Equal(until) {
				t.Fatalf("snapshot = %d clients, keys %v, revocations %v", len(snap.Clients), snap.Keys, snap.Revocations)
			}
			wantSameClient(t, snap.Clients[0], c)
			path := filepath.Join(t.TempDir(), "backup.db")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			n, err := s.(Backuper).Backup(f, func(sz int64) { size = sz })
			f.Close()
			if err != nil || n != size || n == 0 {
				t.Fatalf("Backup = %d bytes (announced %d), %v", n, size, err)
			}
			if info, err := InspectBackup(path); err != nil || info.Clients != 1 {
				t.Fatalf("InspectBackup = %+v, %v; want 1 client", info, err)
			}
			back, err := ReadBackup(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Clients) != 1 || back.Clients[0].SecretHash != c.SecretHash || string(back.Keys["k"]) != "material" || !back.Revocations["tok"].Equal(until) {
				t.Fatalf("backup content differs: %+v", back)
			}
			// The copy opens as a BoltStore that never reuses a revision.
			bs := openTestBolt(t, path)
			next := storedClient(t, "next")
			if err := bs.CreateClient(ctx, next); err != nil || next.Revision <= c.Revision {
				t.Fatalf("create on the restored copy: %v, revision %d; want more than %d", err, next.Revision, c.Revision)
			}
		})

		t.Run("cache over the store recovers from writes it did not see", func(t *testing.T) {
			s := open(t)
			c, err := NewCache(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			cl, secret := mustCreate(t, c, &Client{ID: "svc", Owner: "a"})
			behind := cl.Clone()
			behind.Owner = "b"
			if err := s.UpdateClient(ctx, behind); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Modify(ctx, "svc", cl.Revision, func(cur *Client) (*Client, error) { return cur, nil }); !errors.Is(err, ErrRevisionMismatch) {
				t.Fatalf("conditional Modify on stale memory = %v, want ErrRevisionMismatch", err)
			}
			got, err := c.Update(ctx, &Client{ID: "svc", Owner: "c"})
			if err != nil || got.Owner != "c" {
				t.Fatalf("Update on stale memory = %v, %v", got, err)
			}
			if _, ok := c.Authenticate("svc", secret); !ok {
				t.Fatal("the secret stopped working after an update")
			}
		})
	})
}

// Moving a node: the bbolt file of a single node restored into another
// store (etcd for a cluster) keeps secrets, generations and revocations.
func TestRestoreIntoEachBackend(t *testing.T) {
	ctx := context.Background()
	src := openTestBolt(t, testDBPath(t))
	sc, err := NewCache(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	cl, secret := mustCreate(t, sc, &Client{ID: "svc", Scope: "read", Metadata: Metadata{"tier": "gold"}})
	if _, err := src.LoadOrCreateKey(ctx, "ring", func() ([]byte, error) { return []byte("old"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := src.Revoke(ctx, "tok", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	merge := func(name string, cur, restored []byte) ([]byte, error) {
		return append(append(cur, '+'), restored...), nil
	}

	eachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		dst := open(t)
		dc, err := NewCache(ctx, dst) // a fresh node: its own secret key already exists
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.LoadOrCreateKey(ctx, "ring", func() ([]byte, error) { return []byte("new"), nil }); err != nil {
			t.Fatal(err)
		}
		rep, err := Restore(ctx, dst, snap, merge)
		if err != nil || rep.Clients != 1 || rep.Revocations != 1 {
			t.Fatalf("Restore = %+v, %v", rep, err)
		}
		if _, err := Restore(ctx, dst, snap, merge); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("second Restore = %v, want ErrNotEmpty", err)
		}
		fresh, err := dst.(Snapshotter).Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dc.Reset(fresh) // what Sync.Refresh (or the watch) does
		got, ok := dc.Authenticate("svc", secret)
		if !ok {
			t.Fatal("the restored client's secret does not authenticate")
		}
		if got.Generation != cl.Generation || got.Metadata["tier"] != "gold" {
			t.Errorf("restored client generation %d metadata %v, want %d and the original metadata", got.Generation, got.Metadata, cl.Generation)
		}
		if string(fresh.Keys["ring"]) != "new+old" {
			t.Errorf("merged key = %q, want the merger's new+old", fresh.Keys["ring"])
		}
		if _, ok := fresh.Revocations["tok"]; !ok {
			t.Error("the revocation did not come along")
		}
	})
}
