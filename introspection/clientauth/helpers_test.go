package clientauth

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
)

const (
	testIssuer   = "https://auth.example.com"
	testAudience = "https://api.example.com"
	testScope    = "orders:read orders:write"
)

// fixedNow is the instant time-frozen tests start at, so that time only
// moves when a test moves it (never by sleeping).
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is a client cache and the revocations (the replay guard) on a real
// bbolt file.
type env struct {
	t     testing.TB
	path  string
	store *clientstore.BoltStore
	cache *clientstore.Cache
	rev   *introspection.Revocations
}

// newEnv opens a fresh bbolt store in t.TempDir().
func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "gatehouse.db")}
	e.open()
	t.Cleanup(func() {
		if e.store != nil {
			e.store.Close()
		}
	})
	return e
}

// open (re)loads the cache and the revocations from the bbolt file at
// e.path.
func (e *env) open() {
	e.t.Helper()
	ctx := context.Background()
	st, err := clientstore.OpenBolt(e.path, 0)
	if err != nil {
		e.t.Fatalf("OpenBolt(%s): %v", e.path, err)
	}
	e.store = st
	if e.cache, err = clientstore.NewCache(ctx, st); err != nil {
		e.t.Fatalf("NewCache: %v", err)
	}
	if e.rev, err = introspection.LoadRevocations(ctx, st); err != nil {
		e.t.Fatalf("LoadRevocations: %v", err)
	}
}

// reopen closes the bbolt file and loads everything from it again, as a
// restart would.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatalf("closing store: %v", err)
	}
	e.store = nil
	e.open()
}
