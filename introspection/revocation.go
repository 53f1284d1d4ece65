package introspection

import (
	"context"
	"sync"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Revocations is the in-memory set of revoked token ids, persisted in the
// store so a revocation survives restarts. It stays small: an entry is
// only needed until the token would have expired anyway.
type Revocations struct {
	store clientstore.Store
	mu    sync.RWMutex
	ids   map[TokenID]int64 // → the token's exp, Unix seconds
}

// LoadRevocations reads the persisted revocations of store.
func LoadRevocations(ctx context.Context, store clientstore.Store) (*Revocations, error) {
	r := &Revocations{store: store, ids: make(map[TokenID]int64)}
	err := store.ForEachRevocation(ctx, func(jti string, until time.Time) error {
		if id, ok := ParseTokenID(jti); ok {
			r.ids[id] = until.Unix()
		}
		return nil
	})
	return r, err
}

// Has reports whether the token id is revoked.
func (r *Revocations) Has(id TokenID) bool {
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// Revoke durably records the token as revoked until its expiry, then makes
// it effective in memory.
func (r *Revocations) Revoke(ctx context.Context, c Claims) error {
	if err := r.store.Revoke(ctx, c.ID.String(), time.Unix(c.ExpiresAt, 0)); err != nil {
		return err
	}
	r.mu.Lock()
	r.ids[c.ID] = c.ExpiresAt
	r.mu.Unlock()
	return nil
}

// Prune forgets revocations of tokens that have expired by now, in memory
// and in the store.
func (r *Revocations) Prune(ctx context.Context, now time.Time) error {
	if err := r.store.PruneRevocations(ctx, now); err != nil {
		return err
	}
	r.mu.Lock()
	for id, exp := range r.ids {
		if exp < now.Unix() {
			delete(r.ids, id)
		}
	}
	r.mu.Unlock()
	return nil
}
