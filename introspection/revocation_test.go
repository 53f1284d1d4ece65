package introspection

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

func TestRevocationsPrune(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cl := e.newClient("svc")

	early := e.issue(cl).AccessToken // exp = fixedNow+1h
	e.clock.Advance(2 * time.Hour)
	late := e.issue(cl).AccessToken // exp = fixedNow+3h
	earlyC, _ := e.sealer.Open(early)
	lateC, _ := e.sealer.Open(late)
	// Revoke straight on the set: Authority.Revoke skips expired tokens.
	for _, c := range []Claims{earlyC, lateC} {
		if err := e.rev.Revoke(ctx, c); err != nil {
			t.Fatalf("Revocations.Revoke: %v", err)
		}
	}

	stored := func() map[string]bool {
		m := map[string]bool{}
		if err := e.store.ForEachRevocation(ctx, func(jti string, _ time.Time) error { m[jti] = true; return nil }); err != nil {
			t.Fatalf("ForEachRevocation: %v", err)
		}
		return m
	}

	tests := []struct {
		name            string
		at              time.Time
		wantEarly, want bool // whether early / late stay revoked
	}{
		{"before either exp", time.Unix(earlyC.ExpiresAt, 0).Add(-time.Second), true, true},
		{"exactly at the early exp", time.Unix(earlyC.ExpiresAt, 0), true, true},
		{"past the early exp", time.Unix(earlyC.ExpiresAt, 0).Add(time.Second), false, true},
		{"exactly at the late exp", time.Unix(lateC.ExpiresAt, 0), false, true},
		{"past both", time.Unix(lateC.ExpiresAt, 0).Add(time.Second), false, false},
	}
	for _, tt := range tests {
		if err := e.rev.Prune(ctx, tt.at); err != nil {
			t.Fatalf("%s: Prune: %v", tt.name, err)
		}
		st := stored()
		for _, c := range []struct {
			what string
			c    Claims
			want bool
		}{{"early", earlyC, tt.wantEarly}, {"late", lateC, tt.want}} {
			if got := e.rev.Has(c.c.ID); got != c.want {
				t.Errorf("%s: in-memory revocation of the %s token present = %v, want %v", tt.name, c.what, got, c.want)
			}
			if got := st[c.c.ID.String()]; got != c.want {
				t.Errorf("%s: stored revocation of the %s token present = %v, want %v", tt.name, c.what, got, c.want)
			}
		}
	}
}

// Revocations and one-time ids recorded by another node arrive as store
// changes; a snapshot older than a revocation made here does not undo it.
func TestRevocationsFollowStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	c, err := e.sealer.Open(tok)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Unix(c.ExpiresAt, 0)
	e.rev.Apply([]clientstore.Change{
		{Kind: clientstore.RevocationPut, Name: c.ID.String(), Until: until},
		{Kind: clientstore.RevocationPut, Name: oneTimePrefix + "jti-1", Until: time.Now().Add(time.Hour)},
	})
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("token revoked on another node: Check = %v, want ErrRevoked", err)
	}
	if err := e.rev.UseOnce(ctx, "jti-1", time.Now().Add(time.Hour)); !errors.Is(err, ErrReplay) {
		t.Fatalf("one-time id used on another node: UseOnce = %v, want ErrReplay", err)
	}
	e.rev.Reset(&clientstore.Snapshot{}) // older than the revocation
	if !e.rev.Has(c.ID) {
		t.Fatal("a reset from an older snapshot dropped a revocation")
	}
	e.rev.Apply([]clientstore.Change{{Kind: clientstore.RevocationDeleted, Name: c.ID.String()}})
	if e.rev.Has(c.ID) {
		t.Fatal("a pruned revocation stayed in memory")
	}
}

// Revocations.UseOnce is the replay guard: a live record refuses, an
// expired one does not (it judges expiry by the wall clock).
func TestRevocationsUseOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	live := time.Now().Add(time.Hour)
	if err := e.rev.UseOnce(ctx, "a", live); err != nil {
		t.Fatalf("first UseOnce: %v", err)
	}
	if err := e.rev.UseOnce(ctx, "a", live); !errors.Is(err, ErrReplay) {
		t.Fatalf("second UseOnce of a live id: %v, want ErrReplay", err)
	}
	if err := e.rev.UseOnce(ctx, "b", live); err != nil {
		t.Fatalf("UseOnce of another id: %v", err)
	}
	past := time.Now().Add(-time.Hour)
	if err := e.rev.UseOnce(ctx, "old", past); err != nil {
		t.Fatalf("first UseOnce of an expired id: %v", err)
	}
	if err := e.rev.UseOnce(ctx, "old", past); err != nil {
		t.Fatalf("second UseOnce of an id whose record expired: %v, want nil", err)
	}
	e.reopen()
	if err := e.rev.UseOnce(ctx, "a", live); !errors.Is(err, ErrReplay) {
		t.Fatalf("UseOnce after reopen of a live id: %v, want ErrReplay (persisted)", err)
	}
}

// slowStore is a bbolt store whose RecordOnce and Revoke calls for one key
// wait until the test lets them through.
type slowStore struct {
	*clientstore.BoltStore
	key     string        // the store key whose calls wait
	entered chan struct{} // signalled when such a call starts waiting
	release chan struct{} // closed to let them through
}

func (s *slowStore) wait(key string) {
	if key == s.key {
		s.entered <- struct{}{}
		<-s.release
	}
}

func (s *slowStore) RecordOnce(ctx context.Context, id string, until, now time.Time) error {
	s.wait(id)
	return s.BoltStore.RecordOnce(ctx, id, until, now)
}

func (s *slowStore) Revoke(ctx context.Context, id string, until time.Time) error {
	s.wait(id)
	return s.BoltStore.Revoke(ctx, id, until)
}

// A slow store call (an etcd round trip for a jti or a revocation) holds
// no lock: while it waits, revocation lookups answer, other ids are used
// and revoked, and changes from other nodes are applied. A second use of
// the id being recorded is refused at once.
func TestRevocationsStoreCallsHoldNoLock(t *testing.T) {
	for _, slowOp := range []string{"UseOnce", "Revoke"} {
		t.Run(slowOp, func(t *testing.T) {
			ctx := context.Background()
			bolt, err := clientstore.OpenBolt(filepath.Join(t.TempDir(), "g.db"), 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bolt.Close() })
			exp := time.Now().Add(time.Hour)
			slowTok, revoked, other, fromPeer := TokenID{1}, TokenID{2}, TokenID{3}, TokenID{4}
			st := &slowStore{BoltStore: bolt, key: oneTimePrefix + "slow-jti", entered: make(chan struct{}, 1), release: make(chan struct{})}
			if slowOp == "Revoke" {
				st.key = slowTok.String()
			}
			release := sync.OnceFunc(func() { close(st.release) })
			t.Cleanup(release)
			rev, err := LoadRevocations(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if err := rev.Revoke(ctx, Claims{ID: revoked, ExpiresAt: exp.Unix()}); err != nil {
				t.Fatal(err)
			}

			slowDone := make(chan error, 1)
			go func() {
				if slowOp == "UseOnce" {
					slowDone <- rev.UseOnce(ctx, "slow-jti", exp)
				} else {
					slowDone <- rev.Revoke(ctx, Claims{ID: slowTok, ExpiresAt: exp.Unix()})
				}
			}()
			<-st.entered // the slow call is inside the store now

			othersDone := make(chan struct{})
			go func() {
				defer close(othersDone)
				if !rev.Has(revoked) || rev.Has(other) {
					t.Errorf("Has while the store is slow: revoked %v, other %v; want true, false", rev.Has(revoked), rev.Has(other))
				}
				rev.Apply([]clientstore.Change{{Kind: clientstore.RevocationPut, Name: fromPeer.String(), Until: exp}})
				if !rev.Has(fromPeer) {
					t.Error("a revocation from another node is not in force while the store is slow")
				}
				if err := rev.Revoke(ctx, Claims{ID: other, ExpiresAt: exp.Unix()}); err != nil || !rev.Has(other) {
					t.Errorf("Revoke of another token while the store is slow: %v, Has %v", err, rev.Has(other))
				}
				if err := rev.UseOnce(ctx, "other-jti", exp); err != nil {
					t.Errorf("UseOnce of another id while the store is slow: %v", err)
				}
				if slowOp == "UseOnce" {
					if err := rev.UseOnce(ctx, "slow-jti", exp); !errors.Is(err, ErrReplay) {
						t.Errorf("UseOnce of the id being recorded: %v, want ErrReplay", err)
					}
				}
			}()
			select {
			case <-othersDone:
			case <-time.After(10 * time.Second): // a guard only: the work above takes milliseconds
				t.Error("lookups and writes of other ids waited for the slow store call")
				release()
				<-othersDone
				<-slowDone
				t.FailNow()
			}

			release()
			if err := <-slowDone; err != nil {
				t.Fatalf("the slow %s: %v", slowOp, err)
			}
			if slowOp == "UseOnce" {
				if err := rev.UseOnce(ctx, "slow-jti", exp); !errors.Is(err, ErrReplay) {
					t.Errorf("UseOnce after the slow one was recorded: %v, want ErrReplay", err)
				}
			} else if !rev.Has(slowTok) {
				t.Error("the slow revocation is not in force once stored")
			}
		})
	}
}
