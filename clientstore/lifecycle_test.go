package clientstore

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Rotation with a grace period: both secrets work until it ends, then only
// the new one; tokens are not revoked (the generation stays).
func TestRotateSecretWithGrace(t *testing.T) {
	ctx := context.Background()
	c, s, clock := newTestCache(t)
	created, oldSecret := mustCreate(t, c, &Client{ID: "svc", Scope: "read"})
	start := clock.Now()

	rotated, newSecret, err := c.RotateSecret(ctx, "svc", time.Hour, 0)
	if err != nil {
		t.Fatalf("RotateSecret = %v", err)
	}
	if newSecret == oldSecret || len(newSecret) != 43 {
		t.Fatalf("new secret %q, want a fresh 256-bit secret", newSecret)
	}
	if rotated.Generation != created.Generation {
		t.Errorf("Generation %d after a rotation with grace, want %d kept (tokens stay valid)", rotated.Generation, created.Generation)
	}
	if rotated.Revision <= created.Revision {
		t.Errorf("Revision %d after rotation, want more than %d", rotated.Revision, created.Revision)
	}
	for _, sec := range []string{oldSecret, newSecret} {
		if _, ok := c.Authenticate("svc", sec); !ok {
			t.Errorf("secret %.6s… refused during the grace period", sec)
		}
	}
	// The grace period is persisted: a restart keeps it.
	stored, err := s.GetClient(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if stored.PreviousSecretHash != created.SecretHash || !stored.PreviousSecretExpiresAt.Equal(start.Add(time.Hour)) {
		t.Errorf("stored previous secret %q until %v, want the old hash until %v", stored.PreviousSecretHash, stored.PreviousSecretExpiresAt, start.Add(time.Hour))
	}

	clock.Set(start.Add(time.Hour - time.Second))
	if _, ok := c.Authenticate("svc", oldSecret); !ok {
		t.Error("old secret refused one second before the grace period ends")
	}
	clock.Set(start.Add(time.Hour))
	if _, ok := c.Authenticate("svc", oldSecret); ok {
		t.Error("old secret still accepted when the grace period has ended")
	}
	if _, ok := c.Authenticate("svc", newSecret); !ok {
		t.Error("new secret refused after the grace period")
	}

	// The next write drops the expired hash from the record.
	if _, err := c.Update(ctx, &Client{ID: "svc", Scope: "read write"}); err != nil {
		t.Fatal(err)
	}
	if stored, _ := s.GetClient(ctx, "svc"); stored.PreviousSecretHash != "" {
		t.Error("an expired previous secret hash is still stored after the next write")
	}
}

// Rotation with grace 0: the old secret and every token stop at once.
func TestRotateSecretImmediately(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	created, oldSecret := mustCreate(t, c, &Client{ID: "svc"})
	rotated, newSecret, err := c.RotateSecret(ctx, "svc", 0, 0)
	if err != nil {
		t.Fatalf("RotateSecret = %v", err)
	}
	if _, ok := c.Authenticate("svc", oldSecret); ok {
		t.Error("old secret accepted after a rotation with grace 0")
	}
	if _, ok := c.Authenticate("svc", newSecret); !ok {
		t.Error("new secret refused")
	}
	if rotated.Generation == created.Generation {
		t.Error("Generation unchanged after a rotation with grace 0: tokens minted with the old secret would stay valid")
	}
	if rotated.PreviousSecretHash != "" {
		t.Error("a previous secret is kept after a rotation with grace 0")
	}
}

// Only the latest replaced secret keeps its grace period.
func TestRotateSecretTwice(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	_, first := mustCreate(t, c, &Client{ID: "svc"})
	_, second, err := c.RotateSecret(ctx, "svc", time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, third, err := c.RotateSecret(ctx, "svc", time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	for sec, want := range map[string]bool{first: false, second: true, third: true} {
		if _, ok := c.Authenticate("svc", sec); ok != want {
			t.Errorf("Authenticate after two rotations: %.6s… = %v, want %v", sec, ok, want)
		}
	}
}

func TestRotateSecretErrors(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	created, secret := mustCreate(t, c, &Client{ID: "svc"})
	for _, grace := range []time.Duration{-time.Second, MaxSecretGracePeriod + time.Second} {
		_, _, err := c.RotateSecret(ctx, "svc", grace, 0)
		wantFieldError(t, err, "grace_period")
	}
	if _, _, err := c.RotateSecret(ctx, "ghost", time.Hour, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("RotateSecret(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := c.RotateSecret(ctx, "svc", time.Hour, created.Revision+100); !errors.Is(err, ErrRevisionMismatch) {
		t.Errorf("RotateSecret with a stale revision = %v, want ErrRevisionMismatch", err)
	}
	if _, ok := c.Authenticate("svc", secret); !ok {
		t.Error("a refused rotation changed the secret")
	}
}

// Revisions: new on every write, never reused, also not after the id is
// deleted and created again (an old ETag must not match a new client).
func TestRevisions(t *testing.T) {
	ctx := context.Background()
	c, s, _ := newTestCache(t)
	seen := map[uint64]bool{}
	note := func(cl *Client) {
		t.Helper()
		if cl.Revision == 0 || seen[cl.Revision] {
			t.Fatalf("revision %d is zero or reused (seen %v)", cl.Revision, seen)
		}
		seen[cl.Revision] = true
		if stored, err := s.GetClient(ctx, cl.ID); err != nil || stored.Revision != cl.Revision {
			t.Fatalf("stored revision %v (err %v), want %d as in memory", stored, err, cl.Revision)
		}
	}
	a, _ := mustCreate(t, c, &Client{ID: "a"})
	note(a)
	b, _ := mustCreate(t, c, &Client{ID: "b"})
	note(b)
	a, err := c.Update(ctx, &Client{ID: "a", Scope: "x"})
	if err != nil {
		t.Fatal(err)
	}
	note(a)
	old := a.Revision
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a, _ = mustCreate(t, c, &Client{ID: "a"})
	note(a)
	if a.Revision <= old {
		t.Errorf("re-created client has revision %d, want more than the deleted one's %d", a.Revision, old)
	}
}

// Conditional writes (the admin API's If-Match): the expected revision is
// compared in the write's own transaction.
func TestConditionalWrites(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	cl, _ := mustCreate(t, c, &Client{ID: "svc", Owner: "a"})
	rev := cl.Revision
	edit := func(owner string) func(*Client) (*Client, error) {
		return func(cur *Client) (*Client, error) { cur.Owner = owner; return cur, nil }
	}
	next, err := c.Modify(ctx, "svc", rev, edit("b"))
	if err != nil || next.Owner != "b" {
		t.Fatalf("Modify at the current revision = %v, %v; want owner b", next, err)
	}
	if _, err := c.Modify(ctx, "svc", rev, edit("c")); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("Modify at a stale revision = %v, want ErrRevisionMismatch", err)
	}
	if cur, _ := c.Get("svc"); cur.Owner != "b" {
		t.Errorf("owner %q after a refused Modify, want b", cur.Owner)
	}
	if err := c.DeleteIf(ctx, "svc", rev); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("DeleteIf at a stale revision = %v, want ErrRevisionMismatch", err)
	}
	if _, ok := c.Get("svc"); !ok {
		t.Fatal("a refused DeleteIf removed the client")
	}
	if err := c.DeleteIf(ctx, "svc", next.Revision); err != nil {
		t.Fatalf("DeleteIf at the current revision = %v", err)
	}
	if err := c.DeleteIf(ctx, "svc", next.Revision); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteIf of a deleted client = %v, want ErrNotFound", err)
	}
	if _, err := c.Modify(ctx, "ghost", 0, edit("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Modify(unknown) = %v, want ErrNotFound", err)
	}
	mustCreate(t, c, &Client{ID: "svc2"})
	if _, err := c.Modify(ctx, "svc2", 0, func(cur *Client) (*Client, error) { cur.ID = "other"; return cur, nil }); err == nil {
		t.Fatal("Modify that changes the client_id = nil error, want a refusal")
	}
}

// Many writers holding the same revision: exactly one wins, through the
// cache and directly against the store (where nothing but the
// transaction's own check serializes them).
func TestConcurrentConditionalWrites(t *testing.T) {
	ctx := context.Background()
	c, s, _ := newTestCache(t)
	cl, _ := mustCreate(t, c, &Client{ID: "svc"})

	run := func(name string, n int, lost error, write func(i int) error) {
		t.Helper()
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				errs[i] = write(i)
			}(i)
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, lost):
				t.Errorf("%s: writer %d = %v, want nil or %v", name, i, err, lost)
			}
		}
		if wins != 1 {
			t.Fatalf("%s: %d of %d writers with the same revision won, want exactly 1", name, wins, n)
		}
	}

	rev := cl.Revision
	run("Cache.Modify", 16, ErrRevisionMismatch, func(i int) error {
		_, err := c.Modify(ctx, "svc", rev, func(cur *Client) (*Client, error) {
			cur.Owner = string(rune('a' + i))
			return cur, nil
		})
		return err
	})
	cur, _ := c.Get("svc")
	rev = cur.Revision
	run("BoltStore.UpdateClientIf", 16, ErrRevisionMismatch, func(i int) error {
		next := cur.Clone()
		next.Owner = "store"
		return s.UpdateClientIf(ctx, next, rev)
	})
	stored, _ := s.GetClient(ctx, "svc")
	rev = stored.Revision
	// The losers of a delete find the client gone.
	run("BoltStore.DeleteClientIf", 8, ErrNotFound, func(int) error { return s.DeleteClientIf(ctx, "svc", rev) })
}

// A write the cache did not see (another node on a shared store, here a
// direct store write) is not overwritten with stale data: an unconditional
// change is recomputed on the fresh state, a conditional one refused.
func TestCacheRecoversFromStaleMemory(t *testing.T) {
	ctx := context.Background()
	c, s, _ := newTestCache(t)
	cl, secret := mustCreate(t, c, &Client{ID: "svc", Owner: "a"})

	// Behind the cache's back: another writer rotates the secret.
	behind := cl.Clone()
	behind.SecretHash = c.hasher().Hash("rotated-elsewhere")
	if err := s.UpdateClient(ctx, behind); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Modify(ctx, "svc", cl.Revision, func(cur *Client) (*Client, error) { return cur, nil }); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("conditional Modify on stale memory = %v, want ErrRevisionMismatch", err)
	}
	if _, ok := c.Authenticate("svc", "rotated-elsewhere"); !ok {
		t.Fatal("the cache did not reload the client after the store reported a newer revision")
	}

	behind = behind.Clone()
	behind.Owner = "b"
	if err := s.UpdateClient(ctx, behind); err != nil {
		t.Fatal(err)
	}
	got, err := c.Update(ctx, &Client{ID: "svc", Owner: "c", Scope: "x"})
	if err != nil {
		t.Fatalf("unconditional Update on stale memory = %v, want it recomputed and applied", err)
	}
	if got.Owner != "c" || got.SecretHash != behind.SecretHash {
		t.Fatalf("Update on stale memory kept secret %v, owner %q; want the store's newer secret kept and owner c", got.SecretHash == behind.SecretHash, got.Owner)
	}
	if _, ok := c.Authenticate("svc", secret); ok {
		t.Fatal("a stale secret came back after the cache recomputed the update")
	}

	// Deleted behind the cache's back.
	if err := s.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(ctx, &Client{ID: "svc"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a client deleted behind the cache = %v, want ErrNotFound", err)
	}
	if _, ok := c.Get("svc"); ok {
		t.Fatal("the cache still serves a client the store no longer has")
	}
}

// Imported Hydra clients keep their secrets: PBKDF2 and bcrypt hashes
// authenticate through Cache.Authenticate, as the token endpoint calls it.
func TestImportKeepsHydraSecrets(t *testing.T) {
	ctx := context.Background()
	c, _, clock := newTestCache(t)
	const pbSecret, bcSecret = "pbkdf2-client-secret", "bcrypt-client-secret"
	created := time.Date(2022, 2, 3, 4, 5, 6, 0, time.UTC)

	pb, secret, err := c.Import(ctx, &Client{ID: "pb", CreatedAt: created}, hydraPBKDF2(t, pbSecret, 25000))
	if err != nil || secret != "" {
		t.Fatalf("Import with a PBKDF2 hash = %v, secret %q; want nil and no new secret", err, secret)
	}
	if !pb.CreatedAt.Equal(created) || !pb.UpdatedAt.Equal(clock.Now().UTC().Truncate(time.Second)) {
		t.Errorf("imported created_at %v updated_at %v, want Hydra's creation time and now", pb.CreatedAt, pb.UpdatedAt)
	}
	if _, _, err := c.Import(ctx, &Client{ID: "bc"}, hydraBcrypt(t, bcSecret, bcrypt.MinCost)); err != nil {
		t.Fatalf("Import with a bcrypt hash = %v", err)
	}
	gen, genSecret, err := c.Import(ctx, &Client{ID: "gen"}, "")
	if err != nil || len(genSecret) != 43 {
		t.Fatalf("Import without a hash = %v, secret %q; want a generated secret", err, genSecret)
	}
	if !gen.CreatedAt.Equal(clock.Now().UTC().Truncate(time.Second)) {
		t.Errorf("created_at of an import without one = %v, want now", gen.CreatedAt)
	}

	for _, tt := range []struct {
		id, secret string
		want       bool
	}{
		{"pb", pbSecret, true}, {"pb", bcSecret, false}, {"bc", bcSecret, true},
		{"bc", pbSecret, false}, {"gen", genSecret, true},
	} {
		if _, ok := c.Authenticate(tt.id, tt.secret); ok != tt.want {
			t.Errorf("Authenticate(%s, %s) = %v, want %v", tt.id, tt.secret, ok, tt.want)
		}
	}

	if _, _, err := c.Import(ctx, &Client{ID: "pb"}, ""); !errors.Is(err, ErrExists) {
		t.Errorf("Import of an existing id = %v, want ErrExists", err)
	}
	_, _, err = c.Import(ctx, &Client{ID: "bad"}, "$md5$x")
	wantFieldError(t, err, "client_secret_hash")

	// Rotating an imported client moves it to Gatehouse's own hash; the
	// Hydra secret keeps working through the grace period.
	_, fresh, err := c.RotateSecret(ctx, "pb", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{pbSecret, fresh} {
		if _, ok := c.Authenticate("pb", sec); !ok {
			t.Errorf("after rotating an imported client, %q is refused during the grace period", sec)
		}
	}
	if cur, _ := c.Get("pb"); !strings.HasPrefix(cur.SecretHash, hmacPrefix) {
		t.Error("a rotated imported client does not use Gatehouse's HMAC hash")
	}
}

func TestPage(t *testing.T) {
	c, _, _ := newTestCache(t)
	owners := map[string]string{"a": "x", "b": "y", "c": "x", "d": "x", "e": ""}
	for _, id := range []string{"e", "d", "c", "b", "a"} {
		mustCreate(t, c, &Client{ID: id, Owner: owners[id]})
	}
	ids := func(cl []*Client) (out []string) {
		for _, v := range cl {
			out = append(out, v.ID)
		}
		return out
	}
	x, none := "x", ""
	tests := []struct {
		name  string
		opts  ListOptions
		want  []string
		more  bool
		total int
	}{
		{"all", ListOptions{}, []string{"a", "b", "c", "d", "e"}, false, 5},
		{"first page", ListOptions{Limit: 2}, []string{"a", "b"}, true, 5},
		{"middle page", ListOptions{After: "b", Limit: 2}, []string{"c", "d"}, true, 5},
		{"last page", ListOptions{After: "d", Limit: 2}, []string{"e"}, false, 5},
		{"exactly full last page", ListOptions{After: "c", Limit: 2}, []string{"d", "e"}, false, 5},
		{"after a deleted or unknown id", ListOptions{After: "bb", Limit: 1}, []string{"c"}, true, 5},
		{"past the end", ListOptions{After: "z", Limit: 2}, nil, false, 5},
		{"owner filter", ListOptions{Owner: &x}, []string{"a", "c", "d"}, false, 3},
		{"owner filter, paged", ListOptions{Owner: &x, After: "a", Limit: 1}, []string{"c"}, true, 3},
		{"empty owner", ListOptions{Owner: &none}, []string{"e"}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, more, total := c.Page(tt.opts)
			if !reflect.DeepEqual(ids(page), tt.want) || more != tt.more || total != tt.total {
				t.Fatalf("Page = %q more=%v total=%d, want %q more=%v total=%d", ids(page), more, total, tt.want, tt.more, tt.total)
			}
		})
	}
}

// A store written before revisions existed gets them on open.
func TestOpenAssignsMissingRevisions(t *testing.T) {
	path := testDBPath(t)
	s := openTestBolt(t, path)
	s.Close()
	legacy := []byte(`{"client_id":"old","grant_types":["client_credentials"],"scope":"","audience":null,"owner":"",` +
		`"metadata":null,"token_endpoint_auth_method":"client_secret_basic","disabled":false,"introspect":false,` +
		`"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z","secret_hash":"$hmac-sha256$x","generation":7}`)
	writeRaw(t, path, "clients", "old", legacy)
	writeRaw(t, path, "clients", "old2", bytes.Replace(legacy, []byte(`"old"`), []byte(`"old2"`), 1))

	s = openTestBolt(t, path)
	a, err := s.GetClient(context.Background(), "old")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.GetClient(context.Background(), "old2")
	if a.Revision == 0 || b.Revision == 0 || a.Revision == b.Revision {
		t.Fatalf("revisions after open: %d, %d; want distinct non-zero", a.Revision, b.Revision)
	}
	if a.Generation != 7 || a.SecretHash != "$hmac-sha256$x" {
		t.Fatalf("migration changed the record: generation %d hash %q", a.Generation, a.SecretHash)
	}
}

// No timing oracle for client ids: a failed authentication takes about as
// long for an unknown id, and for a client with Gatehouse's own (HMAC)
// hash, as for a client whose hash was imported from Hydra, which costs
// milliseconds. Medians of many tries each, side by side, with honest
// slack: without the padding the unknown and HMAC failures take a few
// microseconds against the imported hash's milliseconds.
func TestFailedAuthenticationTakesAsLongForEveryID(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	mustCreate(t, c, &Client{ID: "native"})
	if _, _, err := c.Import(ctx, &Client{ID: "imported"}, hydraPBKDF2(t, "the-secret", 20_000)); err != nil {
		t.Fatal(err)
	}
	median := func(id string) time.Duration {
		const tries = 15
		took := make([]time.Duration, tries)
		for i := range took {
			start := time.Now()
			if _, ok := c.Authenticate(id, "wrong secret"); ok {
				t.Fatalf("%s authenticated with a wrong secret", id)
			}
			took[i] = time.Since(start)
		}
		slices.Sort(took)
		return took[tries/2]
	}
	// Interleaved, so a slow phase of the machine hits all three alike.
	var unknown, native, imported []time.Duration
	for range 3 {
		unknown = append(unknown, median("nobody"))
		native = append(native, median("native"))
		imported = append(imported, median("imported"))
	}
	mid := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	u, n, im := mid(unknown), mid(native), mid(imported)
	t.Logf("median failed authentication: unknown id %v, HMAC client %v, imported PBKDF2 client %v", u, n, im)
	for what, d := range map[string]time.Duration{"an unknown id": u, "a client with an HMAC hash": n} {
		if ratio := float64(d) / float64(im); ratio < 0.5 || ratio > 2 {
			t.Errorf("a failure for %s takes %v, %.2f× the %v of an imported client's: timing tells them apart", what, d, ratio, im)
		}
	}
}
