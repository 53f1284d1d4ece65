package introspection

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
)

const (
	testIssuer   = "https://auth.example.com"
	testAudience = "https://api.example.com"
	testScope    = "orders:read orders:write"
)

// fixedNow is the instant every test starts at, so that time only moves
// when a test moves it (never by sleeping).
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is an Authority built from real parts on a real bbolt file.
type env struct {
	t      testing.TB
	path   string
	store  *clientstore.BoltStore
	cache  *clientstore.Cache
	sealer *Sealer
	signer *Signer
	rev    *Revocations
	auth   *Authority
	clock  *clocktest.Clock
}

type envOption func(*Config, *string)

func withConfig(f func(*Config)) envOption {
	return func(c *Config, _ *string) { f(c) }
}

func withAlg(alg string) envOption {
	return func(_ *Config, a *string) { *a = alg }
}

// newEnv opens a fresh bbolt store in t.TempDir() and builds an Authority on
// it, with its clock frozen at fixedNow.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "gatehouse.db")}
	e.open(opts...)
	t.Cleanup(func() {
		if e.store != nil {
			e.store.Close()
		}
	})
	return e
}

// open (re)builds every part from the bbolt file at e.path.
func (e *env) open(opts ...envOption) {
	e.t.Helper()
	ctx := context.Background()
	cfg := Config{Issuer: testIssuer}
	alg := AlgES256
	for _, o := range opts {
		o(&cfg, &alg)
	}
	st, err := clientstore.OpenBolt(e.path, 0)
	if err != nil {
		e.t.Fatalf("OpenBolt(%s): %v", e.path, err)
	}
	e.store = st
	if e.cache, err = clientstore.NewCache(ctx, st); err != nil {
		e.t.Fatalf("NewCache: %v", err)
	}
	if e.sealer, err = LoadSealer(ctx, st); err != nil {
		e.t.Fatalf("LoadSealer: %v", err)
	}
	if e.signer, err = LoadSigner(ctx, st, alg); err != nil {
		e.t.Fatalf("LoadSigner(%s): %v", alg, err)
	}
	if e.rev, err = LoadRevocations(ctx, st); err != nil {
		e.t.Fatalf("LoadRevocations: %v", err)
	}
	e.auth = NewAuthority(cfg, e.cache, e.sealer, e.signer, e.rev)
	if e.clock == nil {
		e.clock = clocktest.New(fixedNow)
	}
	e.auth.now = e.clock.Now
}

// reopen closes the bbolt file and loads every part from it again, as a
// restart would.
func (e *env) reopen(opts ...envOption) {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatalf("closing store: %v", err)
	}
	e.store = nil
	e.open(opts...)
}

// newClient creates a client with the standard test fields; id must be
// unique per env.
func (e *env) newClient(id string) *clientstore.Client {
	e.t.Helper()
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{
		ID:       id,
		Name:     "Client " + id,
		Scope:    testScope,
		Audience: []string{testAudience},
		Owner:    "team-a",
		Metadata: clientstore.Metadata{"realm": map[string]any{"id": "r1"}},
	})
	if err != nil {
		e.t.Fatalf("creating client %q: %v", id, err)
	}
	return cl
}

// issue mints a token for cl with all its scopes and audiences.
func (e *env) issue(cl *clientstore.Client) Token {
	e.t.Helper()
	tok, err := e.auth.Issue(cl, "", nil)
	if err != nil {
		e.t.Fatalf("Issue(%s): %v", cl.ID, err)
	}
	return tok
}

// check checks tok and fails t if it is refused.
func (e *env) check(t testing.TB, tok string) Result {
	t.Helper()
	r, err := e.auth.Check(tok)
	if err != nil {
		t.Fatalf("Check of a fresh token: got error %v, want a valid result", err)
	}
	return r
}

// testSealer is a Sealer with one deterministic key, without a store.
func testSealer(t testing.TB, id uint32, created time.Time) *Sealer {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(int(id)*31 + i)
	}
	s, err := newSealer([]sealKey{{ID: id, Key: key, Created: created}})
	if err != nil {
		t.Fatalf("newSealer: %v", err)
	}
	return s
}
