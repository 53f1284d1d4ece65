package clientstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RFC 7523 §3: a client assertion's jti must not be accepted twice before
// it expires — also when several nodes race for it.
func TestRecordOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		now := time.Unix(1_900_000_000, 0)
		s := open(t).(OnceRecorder)
		if err := s.RecordOnce(ctx, "once:1:a:x", now.Add(time.Minute), now); err != nil {
			t.Fatalf("first RecordOnce: %v", err)
		}
		if err := s.RecordOnce(ctx, "once:1:a:x", now.Add(time.Minute), now.Add(30*time.Second)); !errors.Is(err, ErrUsed) {
			t.Fatalf("second RecordOnce before expiry: %v, want ErrUsed", err)
		}
		if err := s.RecordOnce(ctx, "once:1:a:x", now.Add(3*time.Minute), now.Add(2*time.Minute)); err != nil {
			t.Fatalf("RecordOnce after the first expired: %v, want it recorded again", err)
		}
		if err := s.RecordOnce(ctx, "once:1:a:y", now.Add(time.Minute), now); err != nil {
			t.Fatalf("another id: %v", err)
		}
	})
}

func TestRecordOnceAcrossNodes(t *testing.T) {
	srv := startForParent(t)
	if srv == nil {
		t.Skip("etcd not available")
	}
	a := openTestEtcd(t, srv.Endpoint, 5*time.Second)
	b, err := OpenEtcd(context.Background(), EtcdConfig{Endpoints: []string{srv.Endpoint}, Prefix: a.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now()
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := OnceRecorder(a)
			if i%2 == 1 {
				node = b
			}
			if err := node.RecordOnce(context.Background(), "once:3:svc:jti-1", now.Add(time.Minute), now); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrUsed) {
				t.Errorf("RecordOnce: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d of 16 concurrent recordings on two nodes succeeded, want exactly 1", n)
	}
}
