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
//
// mu guards memory only and is never held across a call to the store (an
// etcd round trip when clustered): a slow store delays only the caller
// waiting for it, not other writers, nor the store's watch applying what
// other nodes changed.
type Revocations struct {
	store     clientstore.Store
	mu        sync.Mutex                        // serializes writers of memory
	ids       atomic.Pointer[map[TokenID]int64] // → the token's exp, Unix seconds
	used      map[string]int64                  // one-time id → its expiry; under mu
	recording map[string]struct{}               // one-time ids being recorded in the store; under mu
}

// ErrReplay is returned by UseOnce for an id already used.
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

// Export implements clientstore.Exporter: the revoked token ids and the
// one-time ids, under their store names.
func (r *Revocations) Export(snap *clientstore.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, until := range *r.ids.Load() {
		snap.Revocations[id.String()] = time.Unix(until, 0)
	}
	for once, until := range r.used {
		snap.Revocations[oneTimePrefix+once] = time.Unix(until, 0)
	}
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
	r := &Revocations{store: store, used: make(map[string]int64), recording: make(map[string]struct{})}
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
// it effective in memory. The store is written without holding mu:
// recording a revocation twice, or in either order with another one, ends
// in the same set.
func (r *Revocations) Revoke(ctx context.Context, c Claims) error {
	if err := r.store.Revoke(ctx, c.ID.String(), time.Unix(c.ExpiresAt, 0)); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(func(ids map[TokenID]int64) { ids[c.ID] = c.ExpiresAt })
	return nil
}

// UseOnce records the one-time id as used until its expiry, durably, or
// returns ErrReplay if it was used before and has not expired yet: the
// replay guard of one-time ids such as the jti of client assertions (RFC
// 7523 §3, package clientauth).
//
// An id is accepted at most once: across nodes because the store records
// it atomically (clientstore.OnceRecorder), and on this node also because
// an id being recorded is reserved in memory first, so a second request
// with it is refused at once rather than racing the first one to the
// store. No lock is held while the store is called.
func (r *Revocations) UseOnce(ctx context.Context, id string, until time.Time) error {
	now := time.Now()
	r.mu.Lock()
	if exp, ok := r.used[id]; ok && exp >= now.Unix() {
		r.mu.Unlock()
		return ErrReplay
	}
	if _, busy := r.recording[id]; busy {
		r.mu.Unlock()
		return ErrReplay
	}
	r.recording[id] = struct{}{}
	r.mu.Unlock()

	err := r.record(ctx, id, until, now)

	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recording, id)
	if err != nil {
		return err
	}
	r.used[id] = until.Unix()
	return nil
}

// record writes the one-time id to the store: ErrReplay if the store
// already holds it unexpired.
func (r *Revocations) record(ctx context.Context, id string, until, now time.Time) error {
	once, ok := r.store.(clientstore.OnceRecorder)
	if !ok {
		// Not atomic across processes; the reservation in UseOnce still
		// keeps this node from accepting the id twice.
		return r.store.Revoke(ctx, oneTimePrefix+id, until)
	}
	// Atomic in the store, so two nodes sharing it cannot both accept the
	// same id.
	err := once.RecordOnce(ctx, oneTimePrefix+id, until, now)
	if errors.Is(err, clientstore.ErrUsed) {
		err = ErrReplay
	}
	return err
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
var (
	_ clientstore.Follower = (*Revocations)(nil)
	_ clientstore.Exporter = (*Revocations)(nil)
)
