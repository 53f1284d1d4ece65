package clientstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
)

// newTestCache opens a fresh store and a Cache on it with a fake clock.
func newTestCache(t *testing.T) (*Cache, *BoltStore, *clocktest.Clock) {
	t.Helper()
	s := openTestBolt(t, testDBPath(t))
	c, err := NewCache(context.Background(), s)
	if err != nil {
		t.Fatalf("NewCache = %v", err)
	}
	// Not in UTC and not on a whole second, to see Cache normalize both.
	clock := clocktest.New(time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 5*3600)))
	c.SetClock(clock.Now)
	return c, s, clock
}

func mustCreate(t *testing.T, c *Cache, cl *Client) (*Client, string) {
	t.Helper()
	got, secret, err := c.Create(context.Background(), cl)
	if err != nil {
		t.Fatalf("Create(%s) = %v, want nil", cl.ID, err)
	}
	return got, secret
}

func TestCacheCreateAndAuthenticate(t *testing.T) {
	c, s, clock := newTestCache(t)
	in := &Client{ID: "svc", Scope: " read  write "}
	created, secret := mustCreate(t, c, in)

	if len(secret) != 43 {
		t.Errorf("Create returned secret of %d chars, want 43", len(secret))
	}
	wantTime := clock.Now().UTC().Truncate(time.Second)
	if created.Generation == 0 {
		t.Errorf("Generation = 0, want a random non-zero first generation")
	}
	if !created.CreatedAt.Equal(wantTime) || !created.UpdatedAt.Equal(wantTime) || created.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v, want both %v (UTC, whole seconds)", created.CreatedAt, created.UpdatedAt, wantTime)
	}
	if created.Scope != "read write" || !reflect.DeepEqual(created.GrantTypes, []string{GrantClientCredentials}) ||
		created.TokenEndpointAuthMethod != AuthMethodBasic {
		t.Errorf("Create did not normalize: scope %q, grants %q, method %q", created.Scope, created.GrantTypes, created.TokenEndpointAuthMethod)
	}
	if created.SecretHash == "" || created.SecretHash == secret {
		t.Errorf("SecretHash = %q, want a hash distinct from the secret", created.SecretHash)
	}
	// The caller's value is not modified.
	if in.GrantTypes != nil || in.Scope != " read  write " || in.SecretHash != "" {
		t.Errorf("Create modified its argument: %+v", in)
	}

	got, ok := c.Get("svc")
	if !ok || got.SecretHash != created.SecretHash {
		t.Fatalf("Get(svc) = (%v, %v), want the created client", got, ok)
	}
	stored, err := s.GetClient(context.Background(), "svc")
	if err != nil || stored.SecretHash != created.SecretHash || stored.Generation != created.Generation {
		t.Fatalf("store has (%+v, %v), want the created client with its hash and generation 1", stored, err)
	}

	other, otherSecret := mustCreate(t, c, &Client{ID: "other"})
	tests := []struct {
		name   string
		id     string
		secret string
		want   *Client
	}{
		{"right secret", "svc", secret, created},
		{"wrong secret", "svc", "wrong", nil},
		{"empty secret", "svc", "", nil},
		{"secret with a trailing byte", "svc", secret + "x", nil},
		{"another client's secret", "svc", otherSecret, nil},
		{"the stored hash as secret", "svc", created.SecretHash, nil},
		{"other client, own secret", "other", otherSecret, other},
		{"unknown id", "nobody", secret, nil},
		{"unknown id, empty secret", "nobody", "", nil},
		{"empty id", "", secret, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, ok := c.Authenticate(tt.id, tt.secret)
			if ok != (tt.want != nil) {
				t.Fatalf("Authenticate(%q, …) ok = %v, want %v", tt.id, ok, tt.want != nil)
			}
			if ok && cl.ID != tt.want.ID {
				t.Fatalf("Authenticate(%q, …) returned client %q, want %q", tt.id, cl.ID, tt.want.ID)
			}
			if tt.id == "nobody" && cl != nil {
				t.Fatalf("Authenticate for unknown id returned client %+v, want nil", cl)
			}
		})
	}
}

// Whatever hash or generation a caller passes in, Create sets its own: the
// secret is always server-generated.
func TestCacheCreateIgnoresCallerSecretFields(t *testing.T) {
	c, _, _ := newTestCache(t)
	in := &Client{ID: "svc", SecretHash: c.hasher().Hash("chosen-by-caller"), Generation: 42,
		CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(0, 0)}
	created, _ := mustCreate(t, c, in)
	if _, ok := c.Authenticate("svc", "chosen-by-caller"); ok {
		t.Fatal("Authenticate accepted a secret whose hash the caller supplied to Create")
	}
	if created.Generation == 42 || created.CreatedAt.Equal(time.Unix(0, 0)) {
		t.Fatalf("Create kept caller's Generation=%d CreatedAt=%v, want its own and now", created.Generation, created.CreatedAt)
	}
}

// A client re-created under a deleted client's id starts a new generation,
// so the deleted client's tokens stay dead.
func TestCacheRecreateStartsNewGeneration(t *testing.T) {
	c, _, _ := newTestCache(t)
	first, _ := mustCreate(t, c, &Client{ID: "svc"})
	if err := c.Delete(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	second, _ := mustCreate(t, c, &Client{ID: "svc"})
	if second.Generation == first.Generation {
		t.Fatalf("re-created client has the deleted one's generation %d; its old tokens would work again", first.Generation)
	}
}

func TestCacheCreateDuplicate(t *testing.T) {
	c, _, _ := newTestCache(t)
	orig, secret := mustCreate(t, c, &Client{ID: "svc", Scope: "read"})
	_, secret2, err := c.Create(context.Background(), &Client{ID: "svc", Scope: "admin"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Create(svc) = %v, want ErrExists", err)
	}
	if secret2 != "" {
		t.Errorf("failed Create returned a secret %q, want none", secret2)
	}
	got, _ := c.Get("svc")
	if got.Revision != orig.Revision || got.Scope != "read" {
		t.Fatalf("Get(svc) after failed duplicate create = %+v, want the original", got)
	}
	if _, ok := c.Authenticate("svc", secret); !ok {
		t.Fatal("original secret no longer authenticates after a failed duplicate create")
	}
}

func TestCacheCreateInvalid(t *testing.T) {
	tests := []struct {
		name      string
		in        *Client
		wantField string
	}{
		{"bad client_id", &Client{ID: "a/b"}, "client_id"},
		{"empty client_id", &Client{}, "client_id"},
		{"RFC 6749 §3.3: bad scope token", &Client{ID: "svc", Scope: `read "x"`}, "scope"},
		{"unsupported grant type", &Client{ID: "svc", GrantTypes: []string{"implicit"}}, "grant_types"},
		{"unsupported auth method", &Client{ID: "svc", TokenEndpointAuthMethod: "none"}, "token_endpoint_auth_method"},
		{"private_key_jwt without keys", &Client{ID: "svc", TokenEndpointAuthMethod: "private_key_jwt"}, "jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _ := newTestCache(t)
			cl, secret, err := c.Create(context.Background(), tt.in)
			wantFieldError(t, err, tt.wantField)
			if cl != nil || secret != "" {
				t.Errorf("failed Create returned (%v, %q), want (nil, \"\")", cl, secret)
			}
			if list := c.List(); len(list) != 0 {
				t.Errorf("cache has %d clients after a rejected Create, want 0", len(list))
			}
			n := 0
			_ = s.ForEachClient(context.Background(), func(*Client) error { n++; return nil })
			if n != 0 {
				t.Errorf("store has %d clients after a rejected Create, want 0", n)
			}
		})
	}
}

func TestCacheUpdate(t *testing.T) {
	ctx := context.Background()
	c, s, clock := newTestCache(t)
	created, secret := mustCreate(t, c, &Client{ID: "svc", Scope: "read", Owner: "a"})

	later := clock.Now().Add(90 * time.Minute)
	clock.Set(later)
	upd := &Client{
		ID:       "svc",
		Scope:    "read  write",
		Owner:    "b",
		Disabled: true,
		// Fields Update must not take from its caller:
		SecretHash: c.hasher().Hash("chosen-by-caller"),
		Generation: 99,
		CreatedAt:  time.Unix(0, 0),
		UpdatedAt:  time.Unix(0, 0),
	}
	got, err := c.Update(ctx, upd)
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	if got.Scope != "read write" || got.Owner != "b" || !got.Disabled {
		t.Errorf("Update result scope=%q owner=%q disabled=%v, want normalized new values", got.Scope, got.Owner, got.Disabled)
	}
	if got.SecretHash != created.SecretHash {
		t.Errorf("Update changed SecretHash, want it kept")
	}
	// Disabling bumps the generation (so re-enabling cannot revive old
	// tokens); the caller's Generation 99 is ignored either way.
	if got.Generation != created.Generation+1 {
		t.Errorf("Update that disables: Generation = %d, want %d", got.Generation, created.Generation+1)
	}
	again, err := c.Update(ctx, upd)
	if err != nil {
		t.Fatalf("second Update = %v", err)
	}
	if again.Generation != got.Generation {
		t.Errorf("Update of an already disabled client: Generation = %d, want %d kept", again.Generation, got.Generation)
	}
	got = again
	if !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v kept", got.CreatedAt, created.CreatedAt)
	}
	wantUpdated := later.UTC().Truncate(time.Second)
	if !got.UpdatedAt.Equal(wantUpdated) || got.UpdatedAt.Location() != time.UTC || !got.UpdatedAt.After(got.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want %v (now, UTC, whole seconds, after CreatedAt %v)", got.UpdatedAt, wantUpdated, got.CreatedAt)
	}

	if _, ok := c.Authenticate("svc", secret); !ok {
		t.Error("original secret no longer authenticates after Update")
	}
	if _, ok := c.Authenticate("svc", "chosen-by-caller"); ok {
		t.Error("Update let the caller set the secret hash")
	}
	if cur, _ := c.Get("svc"); cur.Revision != got.Revision || cur.Scope != got.Scope {
		t.Error("Get after Update does not return the updated client")
	} else {
		wantSameClient(t, cur, got)
	}
	stored, err := s.GetClient(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	wantSameClient(t, stored, got)

	if upd.Scope != "read  write" || upd.Generation != 99 {
		t.Errorf("Update modified its argument: %+v", upd)
	}
}

func TestCacheUpdateErrors(t *testing.T) {
	ctx := context.Background()
	c, s, _ := newTestCache(t)
	orig, _ := mustCreate(t, c, &Client{ID: "svc", Scope: "read"})

	if _, err := c.Update(ctx, &Client{ID: "ghost"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(unknown) = %v, want ErrNotFound", err)
	}
	if _, ok := c.Get("ghost"); ok {
		t.Error("Update(unknown) created the client in the cache")
	}
	if _, err := s.GetClient(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("store GetClient(ghost) after Update(unknown) = %v, want ErrNotFound", err)
	}

	_, err := c.Update(ctx, &Client{ID: "svc", Scope: "bad\\scope"})
	wantFieldError(t, err, "scope")
	if cur, _ := c.Get("svc"); cur.Revision != orig.Revision || cur.Scope != "read" {
		t.Errorf("invalid Update changed the client to %+v, want the original", cur)
	}
}

func TestCacheDelete(t *testing.T) {
	ctx := context.Background()
	c, s, _ := newTestCache(t)
	_, secret := mustCreate(t, c, &Client{ID: "svc"})
	mustCreate(t, c, &Client{ID: "keep"})

	if err := c.Delete(ctx, "svc"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if cl, ok := c.Get("svc"); ok {
		t.Errorf("Get after Delete = %+v, want not found", cl)
	}
	if _, ok := c.Authenticate("svc", secret); ok {
		t.Error("deleted client still authenticates")
	}
	if _, err := s.GetClient(ctx, "svc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("store GetClient after Delete = %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "svc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if list := c.List(); len(list) != 1 || list[0].ID != "keep" {
		t.Errorf("List after Delete = %d clients, want only %q", len(list), "keep")
	}
	if _, err := c.Update(ctx, &Client{ID: "svc"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update after Delete = %v, want ErrNotFound", err)
	}
}

// A *Client from Get is the caller's own: a later Update does not change
// it, so a request holding it sees consistent values, and the caller's
// changes to it reach nothing else.
func TestCacheSnapshotsAreImmutable(t *testing.T) {
	ctx := context.Background()
	c, _, clock := newTestCache(t)
	in := &Client{ID: "svc", Scope: "read", Audience: []string{"aud-1"}, Metadata: Metadata{"tier": "gold"}}
	mustCreate(t, c, in)

	// Changing the caller's value after Create does not reach the cache.
	in.Audience[0] = "changed"
	in.Metadata["tier"] = "changed"
	old, _ := c.Get("svc")
	if old.Audience[0] != "aud-1" || old.Metadata["tier"] != "gold" {
		t.Fatalf("caller's changes after Create reached the cache: audience %q, metadata %v", old.Audience, old.Metadata)
	}
	oldUpdated := old.UpdatedAt

	clock.Set(clock.Now().Add(time.Hour))
	upd := old.Clone()
	upd.Scope = "read write"
	upd.Audience[0] = "aud-2"
	upd.Metadata["tier"] = "silver"
	if _, err := c.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if old.Scope != "read" || old.Audience[0] != "aud-1" || old.Metadata["tier"] != "gold" || !old.UpdatedAt.Equal(oldUpdated) {
		t.Fatalf("old snapshot changed by Update: scope %q audience %q metadata %v updated %v",
			old.Scope, old.Audience, old.Metadata, old.UpdatedAt)
	}
	cur, _ := c.Get("svc")
	if cur.Scope != "read write" || cur.Audience[0] != "aud-2" || cur.Metadata["tier"] != "silver" {
		t.Fatalf("Get after Update = scope %q audience %q metadata %v, want the new values", cur.Scope, cur.Audience, cur.Metadata)
	}

	// Changing the caller's value after Update, or a value Get returned,
	// does not reach the cache.
	upd.Audience[0] = "changed"
	cur.Audience[0], cur.GrantTypes[0] = "changed", "changed"
	if cur, _ := c.Get("svc"); cur.Audience[0] != "aud-2" || cur.GrantTypes[0] != GrantClientCredentials {
		t.Fatalf("caller's changes after Update reached the cache: audience %q, grant types %q", cur.Audience, cur.GrantTypes)
	}
}

func TestCacheListOrdered(t *testing.T) {
	c, _, _ := newTestCache(t)
	if list := c.List(); len(list) != 0 {
		t.Fatalf("List of empty cache = %d clients, want 0", len(list))
	}
	for _, id := range []string{"charlie", "alpha", "bravo", "Bravo", "alpha-2", "0zero"} {
		mustCreate(t, c, &Client{ID: id})
	}
	var ids []string
	for _, cl := range c.List() {
		ids = append(ids, cl.ID)
	}
	if want := []string{"0zero", "Bravo", "alpha", "alpha-2", "bravo", "charlie"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("List order = %q, want client_id order %q", ids, want)
	}
}

// NewCache serves clients that were in the store before it started.
func TestNewCacheLoadsExistingClients(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	stored := map[string]*Client{}
	for _, id := range []string{"b", "a"} {
		stored[id] = storedClient(t, id)
		if err := s.CreateClient(ctx, stored[id]); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewCache(ctx, s)
	if err != nil {
		t.Fatalf("NewCache = %v", err)
	}
	if c.Store() != Store(s) {
		t.Error("Store() does not return the store the cache was built on")
	}
	for _, id := range []string{"a", "b"} {
		got, ok := c.Get(id)
		if !ok {
			t.Fatalf("Get(%q) after NewCache = not found, want the stored client", id)
		}
		if got.Revision == 0 {
			t.Errorf("Get(%q).Revision = 0, want the revision the store assigned", id)
		}
		wantSameClient(t, got, stored[id]) // CreateClient set stored[id].Revision
	}
	if list := c.List(); len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Fatalf("List after NewCache = %d clients, want a, b", len(list))
	}
}

// The HMAC key lives in the store, so a restarted server accepts the
// secrets it handed out before.
func TestCacheSecretSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := testDBPath(t)
	s := openTestBolt(t, path)
	c, err := NewCache(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	created, secret := mustCreate(t, c, &Client{ID: "svc", Scope: "read"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestBolt(t, path)
	c2, err := NewCache(ctx, s)
	if err != nil {
		t.Fatalf("NewCache after reopen = %v", err)
	}
	got, ok := c2.Authenticate("svc", secret)
	if !ok {
		t.Fatal("secret issued before reopen does not authenticate after it")
	}
	if got.Scope != "read" || got.Generation != created.Generation || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("client after reopen = %+v, want %+v", got, created)
	}
	if _, ok := c2.Authenticate("svc", "wrong"); ok {
		t.Fatal("wrong secret authenticates after reopen")
	}
}

// A stored key too short to be an HMAC key is refused rather than used.
func TestNewCacheRefusesShortKey(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	if _, err := s.LoadOrCreateKey(ctx, secretKeyName, func() ([]byte, error) { return make([]byte, 16), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCache(ctx, s); err == nil {
		t.Fatal("NewCache with a 16-byte stored key = nil error, want a refusal")
	}
}

// Concurrent Creates of one id: exactly one wins, the rest get ErrExists.
func TestCacheConcurrentCreateSameID(t *testing.T) {
	c, _, _ := newTestCache(t)
	const n = 4
	errs := make([]error, n)
	secrets := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, secrets[i], errs[i] = c.Create(context.Background(), &Client{ID: "svc"})
		}(i)
	}
	wg.Wait()
	wins := 0
	var winner string
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = secrets[i]
		case !errors.Is(err, ErrExists):
			t.Errorf("Create #%d = %v, want nil or ErrExists", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent Creates of one id succeeded, want exactly 1", wins)
	}
	if _, ok := c.Authenticate("svc", winner); !ok {
		t.Fatal("the winning Create's secret does not authenticate")
	}
}

// Readers never lock and never see a half-written client while a writer
// updates it. Run with -race.
func TestCacheConcurrentGetDuringUpdate(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	created, secret := mustCreate(t, c, &Client{ID: "svc", Scope: "s0", Audience: []string{"a0"}, Metadata: Metadata{"v": "0"}})

	const updates = 30
	const readers = 3
	done := make(chan struct{})
	var wg sync.WaitGroup
	readErrs := make([]error, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			check := func() error {
				cl, ok := c.Get("svc")
				if !ok {
					return errors.New("Get(svc) = not found during updates")
				}
				// Every field of one snapshot comes from the same write.
				want := cl.Scope[1:]
				if md := cl.Metadata; cl.Audience[0] != "a"+want || md["v"] != want {
					return fmt.Errorf("torn snapshot: scope %q audience %q metadata %v", cl.Scope, cl.Audience, md)
				}
				if cl.SecretHash != created.SecretHash || cl.Generation != created.Generation {
					return errors.New("secret hash or generation changed during updates")
				}
				if _, ok := c.Authenticate("svc", secret); !ok {
					return errors.New("secret stopped authenticating during updates")
				}
				if len(c.List()) != 1 {
					return errors.New("List lost or duplicated the client during updates")
				}
				return nil
			}
			// Bounded by the writer's iteration count, plus at least a few
			// reads of our own.
			for i := 0; ; i++ {
				if err := check(); err != nil {
					readErrs[r] = err
					return
				}
				select {
				case <-done:
					if i >= 10 {
						return
					}
				default:
				}
			}
		}(r)
	}

	for i := 1; i <= updates; i++ {
		v := fmt.Sprint(i)
		if _, err := c.Update(ctx, &Client{ID: "svc", Scope: "s" + v, Audience: []string{"a" + v}, Metadata: Metadata{"v": v}}); err != nil {
			t.Errorf("Update #%d = %v", i, err)
			break
		}
	}
	close(done)
	wg.Wait()
	for r, err := range readErrs {
		if err != nil {
			t.Errorf("reader %d: %v", r, err)
		}
	}
	if cl, _ := c.Get("svc"); cl.Scope != fmt.Sprintf("s%d", updates) {
		t.Errorf("final scope = %q, want %q", cl.Scope, fmt.Sprintf("s%d", updates))
	}
}

// fakeWatched is a shared store as Sync sees it: a snapshot, then the
// batches sent on its channel.
type fakeWatched struct {
	snap    *Snapshot
	batches chan WatchBatch
}

func (f *fakeWatched) Snapshot(context.Context) (*Snapshot, error) { return f.snap, nil }

func (f *fakeWatched) Watch(ctx context.Context, _ int64, fn func(WatchBatch)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-f.batches:
			fn(b)
		}
	}
}

// A secret-hashing key that cannot be used is never dropped silently: in
// the snapshot a node starts from, it fails the start; arriving later
// through the watch, it is refused and reported (status and log), and the
// key in use stays.
func TestSyncRefusesUnusableSecretKey(t *testing.T) {
	c, _, _ := newTestCache(t)
	_, secret := mustCreate(t, c, &Client{ID: "svc"})

	bad := &fakeWatched{snap: &Snapshot{Revision: 5, Clients: c.List(), Keys: map[string][]byte{secretKeyName: make([]byte, 7)}}}
	s := NewSync(bad, nil)
	s.Follow(c)
	if err := s.Start(t.Context()); err == nil {
		s.Stop()
		t.Fatal("Start with an unusable secret-hashing key = nil error, want a refusal")
	}

	good := &fakeWatched{snap: &Snapshot{Revision: 5, Clients: c.List()}, batches: make(chan WatchBatch)}
	s = NewSync(good, nil)
	s.Follow(c)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	good.batches <- WatchBatch{Revision: 6, Changes: []Change{{Kind: KeyPut, Name: secretKeyName, Value: make([]byte, 7)}}}
	good.batches <- WatchBatch{Revision: 7} // sent once the one before was handled
	if st := s.Status(); st.LastError == "" {
		t.Error("an unusable key from the watch left no error in the sync status")
	}
	if _, ok := c.Authenticate("svc", secret); !ok {
		t.Error("the secret no longer verifies: the unusable key replaced the one in use")
	}
}
