package clientstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTestBolt opens a store at path and closes it when the test ends
// (closing twice is harmless, so tests may close it earlier to reopen).
func openTestBolt(t *testing.T, path string) *BoltStore {
	t.Helper()
	s, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatalf("OpenBolt(%s) = %v, want nil", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testDBPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "clients.db")
}

// storedClient returns a fully populated client as a store would hold it.
// Metadata comes from JSON so that it compares equal after a round trip.
func storedClient(t *testing.T, id string) *Client {
	t.Helper()
	var md Metadata
	if err := json.Unmarshal([]byte(`{"big":12345678901234567890,"realm":{"id":"r1"}}`), &md); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	return &Client{
		ID:                      id,
		Name:                    "Client " + id,
		GrantTypes:              []string{GrantClientCredentials},
		Scope:                   "read write",
		Audience:                []string{"https://api.example.com", "urn:other"},
		Owner:                   "team",
		Metadata:                md,
		TokenEndpointAuthMethod: AuthMethodPost,
		Disabled:                true,
		Introspect:              true,
		CreatedAt:               ts,
		UpdatedAt:               ts.Add(time.Hour),
		SecretHash:              hmacPrefix + "hash-of-" + id,
		Generation:              3,
	}
}

func wantSameClient(t *testing.T, got, want *Client) {
	t.Helper()
	// Compared as copies: a cache snapshot keeps its metadata as JSON.
	if !reflect.DeepEqual(got.Clone(), want.Clone()) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("client differs:\n got %s SecretHash=%q Generation=%d\nwant %s SecretHash=%q Generation=%d",
			gj, got.SecretHash, got.Generation, wj, want.SecretHash, want.Generation)
	}
}

func TestBoltClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))

	c := storedClient(t, "alpha")
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatalf("CreateClient = %v, want nil", err)
	}
	got, err := s.GetClient(ctx, "alpha")
	if err != nil {
		t.Fatalf("GetClient = %v, want nil", err)
	}
	wantSameClient(t, got, c)
	if v, _ := got.Metadata.Lookup("big"); v != json.Number("12345678901234567890") {
		t.Errorf("stored metadata big = %#v, want exact json.Number 12345678901234567890", v)
	}

	upd := c.Clone()
	upd.Scope = "read"
	upd.SecretHash = hmacPrefix + "rotated"
	upd.Generation = 4
	upd.Disabled = false
	if err := s.UpdateClient(ctx, upd); err != nil {
		t.Fatalf("UpdateClient = %v, want nil", err)
	}
	got, err = s.GetClient(ctx, "alpha")
	if err != nil {
		t.Fatalf("GetClient after update = %v, want nil", err)
	}
	wantSameClient(t, got, upd)

	var listed []*Client
	if err := s.ForEachClient(ctx, func(c *Client) error { listed = append(listed, c); return nil }); err != nil {
		t.Fatalf("ForEachClient = %v", err)
	}
	if len(listed) != 1 {
		t.Fatalf("ForEachClient saw %d clients, want 1", len(listed))
	}
	wantSameClient(t, listed[0], upd)

	if err := s.DeleteClient(ctx, "alpha"); err != nil {
		t.Fatalf("DeleteClient = %v, want nil", err)
	}
	if _, err := s.GetClient(ctx, "alpha"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetClient after delete = %v, want ErrNotFound", err)
	}
	n := 0
	_ = s.ForEachClient(ctx, func(*Client) error { n++; return nil })
	if n != 0 {
		t.Fatalf("ForEachClient after delete saw %d clients, want 0", n)
	}
}

// The store's JSON record carries the secret hash (it must, to persist it),
// but decoding must keep it out of the client's own JSON form.
func TestBoltRecordKeepsHashOutOfClientJSON(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	c := storedClient(t, "a")
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(got)
	if bytes.Contains(out, []byte(c.SecretHash)) {
		t.Fatalf("JSON of a client read from the store contains its secret hash: %s", out)
	}
}

func TestBoltErrors(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	orig := storedClient(t, "taken")
	if err := s.CreateClient(ctx, orig); err != nil {
		t.Fatal(err)
	}
	dup := storedClient(t, "taken")
	dup.Scope = "hijacked"
	dup.SecretHash = hmacPrefix + "attacker"

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"create existing id", func() error { return s.CreateClient(ctx, dup) }, ErrExists},
		{"update unknown id", func() error { return s.UpdateClient(ctx, storedClient(t, "ghost")) }, ErrNotFound},
		{"delete unknown id", func() error { return s.DeleteClient(ctx, "ghost") }, ErrNotFound},
		{"get unknown id", func() error { _, err := s.GetClient(ctx, "ghost"); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}

	// The failed create must not have overwritten the original, and the
	// failed update must not have created the client.
	got, err := s.GetClient(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	wantSameClient(t, got, orig)
	if _, err := s.GetClient(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetClient(ghost) after failed update = %v, want ErrNotFound", err)
	}
}

func TestBoltForEachClientOrderAndStop(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	for _, id := range []string{"c", "a-1", "b", "A", "a"} {
		if err := s.CreateClient(ctx, storedClient(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	if err := s.ForEachClient(ctx, func(c *Client) error { ids = append(ids, c.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"A", "a", "a-1", "b", "c"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ForEachClient order = %q, want client_id byte order %q", ids, want)
	}

	stop := errors.New("stop")
	n := 0
	err := s.ForEachClient(ctx, func(*Client) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("ForEachClient with fn failing on 2nd call = (%v, %d calls), want (stop, 2 calls)", err, n)
	}
}

// A damaged record must be reported, not read as "not found" or skipped:
// one that is not JSON, and JSON that is no valid client.
func TestBoltCorruptRecord(t *testing.T) {
	for name, raw := range map[string]string{
		"not JSON":      "{not json",
		"bad client_id": `{"client_id":"a b","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","revision":1}`,
		"bad metadata":  `{"client_id":"broken","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","metadata":[1],"revision":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			path := testDBPath(t)
			s := openTestBolt(t, path)
			s.Close()
			writeRaw(t, path, "clients", "broken", []byte(raw))

			s = openTestBolt(t, path)
			if _, err := s.GetClient(ctx, "broken"); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("GetClient(corrupt) = %v, want a decoding error", err)
			}
			if err := s.ForEachClient(ctx, func(*Client) error { return nil }); err == nil {
				t.Errorf("ForEachClient over a corrupt record = nil, want a decoding error")
			}
			if _, err := NewCache(ctx, s); err == nil {
				t.Errorf("NewCache over a corrupt record = nil error, want it to refuse to start")
			}
		})
	}
}

func TestBoltSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := testDBPath(t)
	s := openTestBolt(t, path)
	c := storedClient(t, "durable")
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	until := time.Unix(1_900_000_000, 0)
	if err := s.Revoke(ctx, "jti-1", until); err != nil {
		t.Fatal(err)
	}
	key, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}

	s = openTestBolt(t, path)
	got, err := s.GetClient(ctx, "durable")
	if err != nil {
		t.Fatalf("GetClient after reopen = %v, want the client", err)
	}
	wantSameClient(t, got, c)
	revs := revocations(t, s)
	if want := map[string]int64{"jti-1": until.Unix()}; !reflect.DeepEqual(revs, want) {
		t.Fatalf("revocations after reopen = %v, want %v", revs, want)
	}
	key2, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) {
		t.Error("create called after reopen, want the stored key")
		return nil, errors.New("unexpected")
	})
	if err != nil || !bytes.Equal(key2, key) {
		t.Fatalf("LoadOrCreateKey after reopen = (%x, %v), want (%x, nil)", key2, err, key)
	}
}

func TestOpenBoltCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "clients.db")
	s := openTestBolt(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
}

// writeRaw puts one key into a bucket of a closed bbolt file, bypassing
// OpenBolt.
func writeRaw(t *testing.T, path, bucket, key string, val []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open(%s): %v", path, err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		t.Fatalf("writing %s/%s: %v", bucket, key, err)
	}
}

// readRaw reads one key of a closed bbolt file; nil if absent.
func readRaw(t *testing.T, path, bucket, key string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bolt.Open(%s): %v", path, err)
	}
	defer db.Close()
	var out []byte
	_ = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			out = bytes.Clone(b.Get([]byte(key)))
		}
		return nil
	})
	return out
}

func TestBoltRecordsSchemaVersion(t *testing.T) {
	path := testDBPath(t)
	s := openTestBolt(t, path)
	s.Close()
	got := readRaw(t, path, "meta", "schema_version")
	if want := strconv.Itoa(SchemaVersion); string(got) != want {
		t.Fatalf("meta/schema_version = %q, want %q", got, want)
	}
}

func TestBoltSchemaVersionCheck(t *testing.T) {
	tests := []struct {
		name    string
		version string
		wantErr bool
	}{
		{"current version", strconv.Itoa(SchemaVersion), false},
		{"next version", strconv.Itoa(SchemaVersion + 1), true},
		{"far newer version", "99", true},
		{"unreadable version", "one", true},
		{"empty version", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testDBPath(t)
			writeRaw(t, path, "meta", "schema_version", []byte(tt.version))

			s, err := OpenBolt(path, time.Second)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("OpenBolt on schema version %q = %v, want nil", tt.version, err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("OpenBolt on schema version %q = nil error, want it refused", tt.version)
			}
			// Refusing must leave the file as it was and release the lock.
			if got := readRaw(t, path, "meta", "schema_version"); string(got) != tt.version {
				t.Errorf("schema_version after refused open = %q, want it untouched (%q)", got, tt.version)
			}
		})
	}
}

func TestOpenBoltLocked(t *testing.T) {
	path := testDBPath(t)
	s := openTestBolt(t, path)

	s2, err := OpenBolt(path, 100*time.Millisecond)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt of an open file = nil error, want ErrLocked")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenBolt of an open file = %v, want an error wrapping ErrLocked", err)
	}

	// Once the holder closes, the file opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenBolt(path, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("OpenBolt after the holder closed = %v, want nil", err)
	}
	s3.Close()
}

// Reopen (after the startup load) keeps everything: the clients read and
// write as before, and the file is still this process's alone.
func TestBoltReopen(t *testing.T) {
	ctx := context.Background()
	path := testDBPath(t)
	s := openTestBolt(t, path)
	if err := s.CreateClient(ctx, storedClient(t, "before")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(ctx, "before"); err != nil {
		t.Errorf("GetClient after Reopen = %v", err)
	}
	if err := s.CreateClient(ctx, storedClient(t, "after")); err != nil {
		t.Errorf("CreateClient after Reopen = %v", err)
	}
	if s2, err := OpenBolt(path, 100*time.Millisecond); !errors.Is(err, ErrLocked) {
		if err == nil {
			s2.Close()
		}
		t.Errorf("OpenBolt of a reopened file = %v, want ErrLocked", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	ctx := context.Background()
	path := testDBPath(t)
	s := openTestBolt(t, path)

	calls := 0
	create := func() ([]byte, error) {
		calls++
		return []byte(fmt.Sprintf("key-material-%d-padding-to-32-bytes", calls)), nil
	}
	first, err := s.LoadOrCreateKey(ctx, "hmac", create)
	if err != nil {
		t.Fatalf("first LoadOrCreateKey = %v", err)
	}
	if calls != 1 || string(first) != "key-material-1-padding-to-32-bytes" {
		t.Fatalf("first LoadOrCreateKey = %q after %d create calls, want the created key after 1 call", first, calls)
	}
	second, err := s.LoadOrCreateKey(ctx, "hmac", create)
	if err != nil || !bytes.Equal(second, first) || calls != 1 {
		t.Fatalf("second LoadOrCreateKey = (%q, %v) after %d create calls, want (%q, nil) after 1", second, err, calls, first)
	}

	// Changing the returned bytes must not change the stored key.
	second[0] ^= 0xFF
	third, _ := s.LoadOrCreateKey(ctx, "hmac", create)
	if !bytes.Equal(third, first) {
		t.Fatalf("stored key changed after the caller modified a returned copy: %q, want %q", third, first)
	}

	// Another name is another key.
	other, err := s.LoadOrCreateKey(ctx, "other", create)
	if err != nil || calls != 2 || bytes.Equal(other, first) {
		t.Fatalf("LoadOrCreateKey(other) = (%q, %v) after %d calls, want a new key after 2 calls", other, err, calls)
	}

	s.Close()
	s = openTestBolt(t, path)
	again, err := s.LoadOrCreateKey(ctx, "hmac", create)
	if err != nil || !bytes.Equal(again, first) || calls != 2 {
		t.Fatalf("LoadOrCreateKey after reopen = (%q, %v) after %d create calls, want (%q, nil) with no new call",
			again, err, calls, first)
	}
}

func TestLoadOrCreateKeyCreateFails(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	boom := errors.New("no entropy")
	if _, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("LoadOrCreateKey with failing create = %v, want an error wrapping %v", err, boom)
	}
	// Nothing was stored: the next call creates.
	called := false
	key, err := s.LoadOrCreateKey(ctx, "k", func() ([]byte, error) { called = true; return []byte("fresh"), nil })
	if err != nil || !called || string(key) != "fresh" {
		t.Fatalf("LoadOrCreateKey after a failed create = (%q, %v, create called %v), want (fresh, nil, true)", key, err, called)
	}
}

// revocations reads every revocation as token id → until (Unix seconds).
func revocations(t *testing.T, s *BoltStore) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := s.ForEachRevocation(context.Background(), func(id string, until time.Time) error {
		if _, dup := out[id]; dup {
			t.Errorf("ForEachRevocation reported %q twice", id)
		}
		out[id] = until.Unix()
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachRevocation = %v", err)
	}
	return out
}

func TestRevokeAndForEachRevocation(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	t1 := time.Unix(1_800_000_000, 0)
	t2 := time.Unix(1_800_003_600, 0)
	for id, until := range map[string]time.Time{"a": t1, "b": t2, "c": t1} {
		if err := s.Revoke(ctx, id, until); err != nil {
			t.Fatalf("Revoke(%s) = %v", id, err)
		}
	}
	// Revoking again records the new expiry.
	if err := s.Revoke(ctx, "c", t2); err != nil {
		t.Fatal(err)
	}
	got := revocations(t, s)
	want := map[string]int64{"a": t1.Unix(), "b": t2.Unix(), "c": t2.Unix()}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("revocations = %v, want %v", got, want)
	}

	stop := errors.New("stop")
	if err := s.ForEachRevocation(ctx, func(string, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ForEachRevocation with failing fn = %v, want %v", err, stop)
	}
}

// Revocation expiries are kept to the second, like a JWT's exp (RFC 7519
// NumericDate in whole seconds).
func TestRevokeSecondPrecision(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Revoke(ctx, "j", until); err != nil {
		t.Fatal(err)
	}
	err := s.ForEachRevocation(ctx, func(id string, got time.Time) error {
		if !got.Equal(until) {
			t.Errorf("until = %v, want %v", got, until)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPruneRevocations(t *testing.T) {
	ctx := context.Background()
	s := openTestBolt(t, testDBPath(t))
	now := time.Unix(1_700_000_000, 0)

	want := map[string]int64{}
	revoke := func(id string, until time.Time, keep bool) {
		t.Helper()
		if err := s.Revoke(ctx, id, until); err != nil {
			t.Fatalf("Revoke(%s) = %v", id, err)
		}
		if keep {
			want[id] = until.Unix()
		}
	}
	revoke("expired-long-ago", now.Add(-24*time.Hour), false)
	revoke("expired-1s-ago", now.Add(-time.Second), false)
	revoke("expires-now", now, true) // not before now: kept
	revoke("live", now.Add(time.Hour), true)
	// Many alternating entries, in key order, so that a prune deleting under
	// a moving cursor would skip some.
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("tok-%03d", i)
		if i%2 == 0 {
			revoke(id, now.Add(-time.Duration(i+1)*time.Minute), false)
		} else {
			revoke(id, now.Add(time.Duration(i+1)*time.Minute), true)
		}
	}
	// Runs of consecutive expired entries too.
	for i := 0; i < 20; i++ {
		if i < 19 {
			revoke(fmt.Sprintf("run-%02d", i), now.Add(-time.Minute), false)
		} else {
			revoke(fmt.Sprintf("run-%02d", i), now.Add(time.Minute), true)
		}
	}

	if err := s.PruneRevocations(ctx, now); err != nil {
		t.Fatalf("PruneRevocations = %v", err)
	}
	got := revocations(t, s)
	if !reflect.DeepEqual(got, want) {
		var extra, missing []string
		for id := range got {
			if _, ok := want[id]; !ok {
				extra = append(extra, id)
			}
		}
		for id := range want {
			if _, ok := got[id]; !ok {
				missing = append(missing, id)
			}
		}
		sort.Strings(extra)
		sort.Strings(missing)
		t.Fatalf("after prune: %d entries, want %d; expired but kept: %q; live but dropped: %q",
			len(got), len(want), extra, missing)
	}

	// Pruning again at the same time changes nothing.
	if err := s.PruneRevocations(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := revocations(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("second prune changed the set: %d entries, want %d", len(got), len(want))
	}
}

// A store written one client per transaction, as the admin API writes it,
// packs its pages: bbolt's default split fill (half) left them under 40%
// full, so the file and every full load were larger by half again.
func TestBoltPacksClientPages(t *testing.T) {
	s := openTestBolt(t, testDBPath(t))
	for i := range 400 {
		c := storedClient(t, fmt.Sprintf("client-%06d", i))
		if err := s.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	var st bolt.BucketStats
	s.db.View(func(tx *bolt.Tx) error {
		st = tx.Bucket(bucketClients).Stats()
		return nil
	})
	if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.55 {
		t.Errorf("clients' leaf pages %.0f%% full (%d of %d bytes), want ≥ 55%%", 100*fill, st.LeafInuse, st.LeafAlloc)
	}
}
