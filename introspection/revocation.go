package introspection

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Revocations is the in-memory set of revoked token ids, persisted in the
// store so a revocation survives restarts. It stays small: an entry is
// only needed until the token would have expired anyway. Every protected
// request reads it, so reads take no lock: writers, which are rare, copy
// the map and publish the copy.
type Revocations struct {
	store clientstore.Store
	mu    sync.Mutex                        // serializes writers
	ids   atomic.Pointer[map[TokenID]int64] // → the token's exp, Unix seconds
	used  map[string]int64                  // one-time id → its expiry; under mu
}

// ErrReplay is returned by Use for an id already used.
var ErrReplay = errors.New("already used")

// oneTimePrefix marks one-time ids in the store, apart from token ids.
const oneTimePrefix = "once:"

// Reset implements clientstore.Follower: the revocations of a snapshot
// are added to what memory holds. Nothing is dropped: the store only ever
// removes revocations that have expired (pruning), which memory prunes by
// itself, so a snapshot older than a revocation just made here cannot undo
// it.
func (r *Revocations) Reset(snap *clientstore.Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(func(ids map[TokenID]int64) {
		for key, until := range snap.Revocations {
			r.add(ids, key, until)
		}
	})
	return nil
}

// Apply implements clientstore.Follower: revocations and one-time ids
// recorded by any node are in force here as soon as the store reports
// them.
func (r *Revocations) Apply(changes []clientstore.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(func(ids map[TokenID]int64) {
		for _, ch := range changes {
			switch ch.Kind {
			case clientstore.RevocationPut:
				r.add(ids, ch.Name, ch.Until)
			case clientstore.RevocationDeleted:
				if once, ok := strings.CutPrefix(ch.Name, oneTimePrefix); ok {
					delete(r.used, once)
				} else if id, ok := ParseTokenID(ch.Name); ok {
					delete(ids, id)
				}
			}
		}
	})
	return nil
}

// add records one stored revocation; callers hold mu.
func (r *Revocations) add(ids map[TokenID]int64, key string, until time.Time) {
	if once, ok := strings.CutPrefix(key, oneTimePrefix); ok {
		r.used[once] = until.Unix()
	} else if id, ok := ParseTokenID(key); ok {
		ids[id] = until.Unix()
	}
}

// LoadRevocations reads the persisted revocations of store.
func LoadRevocations(ctx context.Context, store clientstore.Store) (*Revocations, error) {
	r := &Revocations{store: store, used: make(map[string]int64)}
	ids := make(map[TokenID]int64)
	err := store.ForEachRevocation(ctx, func(key string, until time.Time) error {
		r.add(ids, key, until)
		return nil
	})
	r.ids.Store(&ids)
	return r, err
}

// Has reports whether the token id is revoked.
func (r *Revocations) Has(id TokenID) bool {
	ids := *r.ids.Load()
	if len(ids) == 0 {
		return false
	}
	_, ok := ids[id]
	return ok
}

// update publishes a modified copy of the revoked ids; callers hold mu.
func (r *Revocations) update(edit func(map[TokenID]int64)) {
	old := *r.ids.Load()
	ids := make(map[TokenID]int64, len(old)+1)
	for k, v := range old {
		ids[k] = v
	}
	edit(ids)
	r.ids.Store(&ids)
}

// Revoke durably records the token as revoked until its expiry, then makes
// it effective in memory.
func (r *Revocations) Revoke(ctx context.Context, c Claims) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.Revoke(ctx, c.ID.String(), time.Unix(c.ExpiresAt, 0)); err != nil {
		return err
	}
	r.update(func(ids map[TokenID]int64) { ids[c.ID] = c.ExpiresAt })
	return nil
}

// Use records the one-time id as used until its expiry, durably, or
// returns ErrReplay if it was used before and has not expired yet. It also
// serves the jti of client assertions (RFC 7523 §3).
func (r *Revocations) Use(ctx context.Context, id string, until time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if exp, ok := r.used[id]; ok && exp >= now.Unix() {
		return ErrReplay
	}
	var err error
	if once, ok := r.store.(clientstore.OnceRecorder); ok {
		// Atomic in the store, so two nodes sharing it cannot both accept
		// the same id.
		err = once.RecordOnce(ctx, oneTimePrefix+id, until, now)
		if errors.Is(err, clientstore.ErrUsed) {
			err = ErrReplay
		}
	} else {
		err = r.store.Revoke(ctx, oneTimePrefix+id, until)
	}
	if err != nil {
		return err
	}
	r.used[id] = until.Unix()
	return nil
}

// Prune forgets revocations of tokens that have expired by now, in memory
// and in the store.
func (r *Revocations) Prune(ctx context.Context, now time.Time) error {
	if err := r.store.PruneRevocations(ctx, now); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(func(ids map[TokenID]int64) {
		for id, exp := range ids {
			if exp < now.Unix() {
				delete(ids, id)
			}
		}
	})
	for id, exp := range r.used {
		if exp < now.Unix() {
			delete(r.used, id)
		}
	}
	return nil
}

// Interface guard.
var _ clientstore.Follower = (*Revocations)(nil)
