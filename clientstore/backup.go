package clientstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// KeyMerger combines key material a restore brings with what the target
// store already holds under the same name (key rings: keep both keys, so
// tokens of either side verify). It returns the material to store.
type KeyMerger func(name string, current, restored []byte) ([]byte, error)

// RestoreReport says what a Restore wrote.
type RestoreReport struct {
	Clients     int `json:"clients"`
	Keys        int `json:"keys"`
	Revocations int `json:"revocations"`
}

// Restore copies a snapshot (a backup, or the bbolt file of a node moving
// to a cluster; see ReadBackup) into dst, which must have no clients
// (ErrNotEmpty): clients keep their secret hashes, generations and
// creation times, so their secrets and the tokens they hold stay valid;
// revocations still in force come along; the secret-hashing key becomes
// the snapshot's (the restored hashes need it), and other keys are merged
// with dst's by merge (nil: the snapshot's replace them). Clients get new
// revisions. Followers of dst must be refreshed afterwards (Sync.Refresh),
// except through a watch, which brings the changes by itself.
func Restore(ctx context.Context, dst Store, snap *Snapshot, merge KeyMerger) (RestoreReport, error) {
	var rep RestoreReport
	empty := errors.New("not empty")
	err := dst.ForEachClient(ctx, func(*Client) error { return empty })
	switch {
	case errors.Is(err, empty):
		return rep, ErrNotEmpty
	case err != nil:
		return rep, err
	}
	for name, restored := range snap.Keys {
		if err := restoreKey(ctx, dst, name, restored, merge); err != nil {
			return rep, fmt.Errorf("restoring key %s: %w", name, err)
		}
		rep.Keys++
	}
	now := time.Now()
	for id, until := range snap.Revocations {
		if until.Before(now) {
			continue
		}
		if err := dst.Revoke(ctx, id, until); err != nil {
			return rep, err
		}
		rep.Revocations++
	}
	for _, c := range snap.Clients {
		c = c.Clone()
		if err := dst.CreateClient(ctx, c); err != nil {
			return rep, fmt.Errorf("restoring client %s: %w", c.ID, err)
		}
		rep.Clients++
	}
	return rep, nil
}

func restoreKey(ctx context.Context, dst Store, name string, restored []byte, merge KeyMerger) error {
	for attempt := 0; ; attempt++ {
		cur, err := dst.LoadOrCreateKey(ctx, name, func() ([]byte, error) { return restored, nil })
		if err != nil || bytes.Equal(cur, restored) {
			return err
		}
		next := restored
		if merge != nil && name != secretKeyName {
			if next, err = merge(name, cur, restored); err != nil {
				return err
			}
		}
		err = dst.SwapKey(ctx, name, cur, next)
		if !errors.Is(err, ErrKeyChanged) || attempt == 3 {
			return err
		}
	}
}
