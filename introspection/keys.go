package introspection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"go.uber.org/zap"
)

// Follow keeps the sealer's ring current with the store's: rotations made
// by other nodes sharing it. An unreadable ring is logged and ignored.
func (s *Sealer) Follow(sync *clientstore.Sync, logger *zap.Logger) {
	sync.FollowKey(sealKeysName, func(raw []byte) {
		if err := s.SetRing(raw); err != nil {
			logger.Error("token-sealing key ring from the store ignored", zap.Error(err))
		}
	})
}

// Follow keeps the signer's ring current with the store's.
func (s *Signer) Follow(sync *clientstore.Sync, logger *zap.Logger) {
	sync.FollowKey(signingKeyName(s.alg), func(raw []byte) {
		if err := s.SetRing(raw); err != nil {
			logger.Error("signing key ring from the store ignored", zap.Error(err))
		}
	})
}

// KeyRotation reports the key rings after a rotation.
type KeyRotation struct {
	// SealingKeyID seals new access tokens; SealingKeyIDs are all keys
	// that still open tokens, the new one first.
	SealingKeyID  uint32   `json:"token_sealing_key_id"`
	SealingKeyIDs []uint32 `json:"token_sealing_key_ids"`
	// SigningKeyID signs new JWTs; SigningKeyIDs are the kids the JWKS
	// publishes, the new one first.
	SigningKeyID  string   `json:"signing_kid"`
	SigningKeyIDs []string `json:"jwks_kids"`
}

// RotateKeys adds a new token-sealing key and a new signing key to their
// rings in store, for every node sharing it. New tokens and JWTs use the
// new keys at once; the replaced keys stay in the rings, so tokens sealed
// and JWTs signed before keep working and the JWKS keeps publishing the
// old public key. A replaced key is dropped at a later rotation once it
// has been replaced for longer than retain (at least the token and
// identity-JWT lifetimes: nothing it made can still be valid). The write is
// a compare-and-swap per ring: a concurrent rotation elsewhere is built
// upon, never lost.
func RotateKeys(ctx context.Context, store clientstore.Store, sealer *Sealer, signer *Signer, retain time.Duration, now time.Time) (KeyRotation, error) {
	now = now.UTC()
	err := rotateStored(ctx, store, sealKeysName, sealer.ring.Load().raw, sealer.SetRing, func(raw []byte) ([]byte, error) {
		var list []sealKey
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Created.Before(list[j].Created) })
		list = retained(list, func(k sealKey) time.Time { return k.Created }, retain, now)
		k, err := newSealKey(after(now, list[len(list)-1].Created))
		if err != nil {
			return nil, err
		}
		return json.Marshal(append(list, k))
	})
	if err != nil {
		return KeyRotation{}, fmt.Errorf("rotating the token-sealing keys: %w", err)
	}
	err = rotateStored(ctx, store, signingKeyName(signer.alg), signer.keys().raw, signer.SetRing, func(raw []byte) ([]byte, error) {
		ring, err := parseSigningRing(raw)
		if err != nil {
			return nil, err
		}
		sort.SliceStable(ring, func(i, j int) bool { return ring[i].Created.Before(ring[j].Created) })
		ring = retained(ring, func(k signingKey) time.Time { return k.Created }, retain, now)
		jwk, err := newSigningJWK(signer.alg)
		if err != nil {
			return nil, err
		}
		ring = append(ring, signingKey{JWK: jwk, Created: after(now, ring[len(ring)-1].Created)})
		return json.Marshal(signingRing{Keys: ring})
	})
	if err != nil {
		return KeyRotation{}, fmt.Errorf("rotating the signing keys: %w", err)
	}
	return KeyRotation{
		SealingKeyID: sealer.activeID(), SealingKeyIDs: sealer.KeyIDs(),
		SigningKeyID: signer.KeyID(), SigningKeyIDs: signer.KeyIDs(),
	}, nil
}

// after is now, or just after last if another node's clock is ahead: the
// newest key is the active one on every node, so creation times of a ring
// must increase.
func after(now, last time.Time) time.Time {
	if now.After(last) {
		return now
	}
	return last.Add(time.Second)
}

// retained keeps the keys of a ring (oldest first) that are still needed
// once a new key is added: the current one (replaced now) and every key
// replaced less than retain ago.
func retained[K any](ring []K, created func(K) time.Time, retain time.Duration, now time.Time) []K {
	var out []K
	for i, k := range ring {
		if i == len(ring)-1 || created(ring[i+1]).Add(retain).After(now) {
			out = append(out, k)
		}
	}
	return out
}

// rotateStored writes next(current) in place of the ring stored under
// name, reloading and recomputing if another writer changed it first, and
// applies the result locally.
func rotateStored(ctx context.Context, store clientstore.Store, name string, raw []byte, apply func([]byte) error, next func([]byte) ([]byte, error)) error {
	for attempt := 0; ; attempt++ {
		nr, err := next(raw)
		if err != nil {
			return err
		}
		err = store.SwapKey(ctx, name, raw, nr)
		if err == nil {
			return apply(nr)
		}
		if !errors.Is(err, clientstore.ErrKeyChanged) || attempt == 3 {
			return err
		}
		raw, err = store.LoadOrCreateKey(ctx, name, func() ([]byte, error) { return nil, errors.New("key ring missing") })
		if err != nil {
			return err
		}
		if err := apply(raw); err != nil {
			return err
		}
	}
}

// MergeKeyRings is the clientstore.KeyMerger of a restore: the key rings
// of the restored store and of the target are united, so tokens and JWTs
// of both verify and the JWKS publishes both sides' keys; the newest key
// signs and seals. Other key material is the restored one.
func MergeKeyRings(name string, current, restored []byte) ([]byte, error) {
	switch {
	case name == sealKeysName:
		var cur, res []sealKey
		if err := json.Unmarshal(current, &cur); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(restored, &res); err != nil {
			return nil, err
		}
		seen := map[uint32]bool{}
		for _, k := range cur {
			seen[k.ID] = true
		}
		for _, k := range res {
			if !seen[k.ID] {
				cur = append(cur, k)
			}
		}
		return json.Marshal(cur)
	case strings.HasPrefix(name, signingKeyName("")):
		cur, err := parseSigningRing(current)
		if err != nil {
			return nil, err
		}
		res, err := parseSigningRing(restored)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, k := range cur {
			seen[k.JWK.KeyID] = true
		}
		for _, k := range res {
			if !seen[k.JWK.KeyID] {
				cur = append(cur, k)
			}
		}
		return json.Marshal(signingRing{Keys: cur})
	}
	return restored, nil
}

// Interface guard.
var _ clientstore.KeyMerger = MergeKeyRings
