package introspection

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
)

func jwksKids(t *testing.T, s *Signer) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key (kid %s)", k.KeyID)
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

// Rotation: new tokens and JWTs use the new keys; tokens, JWT access
// tokens and identity JWTs made before still verify; the JWKS publishes
// both public keys; a restart loads the rotated rings.
func TestRotateKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := e.newClient("svc")
	before := e.issue(cl).AccessToken
	jwtClient := e.jwtClient("jwt", clientstore.TokenStrategyJWT)
	jwtBefore := e.issue(jwtClient).AccessToken
	oldKid, oldSeal := e.signer.KeyID(), e.sealer.activeID()

	rot, err := RotateKeys(ctx, e.store, e.sealer, e.signer, time.Hour, fixedNow)
	if err != nil {
		t.Fatalf("RotateKeys = %v", err)
	}
	if rot.SigningKeyID == oldKid || rot.SealingKeyID == oldSeal {
		t.Fatalf("rotation kept the keys: %+v", rot)
	}
	if kids := jwksKids(t, e.signer); len(kids) != 2 || kids[0] != rot.SigningKeyID || kids[1] != oldKid {
		t.Fatalf("JWKS kids %v, want the new %s then the previous %s", kids, rot.SigningKeyID, oldKid)
	}
	after := e.issue(cl).AccessToken
	if tokenKeyID(t, after) != rot.SealingKeyID {
		t.Errorf("a token minted after the rotation is sealed under %d, want the new key %d", tokenKeyID(t, after), rot.SealingKeyID)
	}
	for name, tok := range map[string]string{"opaque before": before, "opaque after": after, "jwt before": jwtBefore, "jwt after": e.issue(jwtClient).AccessToken} {
		if _, err := e.auth.Check(tok); err != nil {
			t.Errorf("%s the rotation: Check = %v, want valid", name, err)
		}
	}
	if !e.signer.HasKey(oldKid) || e.signer.HasKey("nope") {
		t.Error("HasKey does not know the ring")
	}

	e.reopen()
	if e.signer.KeyID() != rot.SigningKeyID || e.sealer.activeID() != rot.SealingKeyID {
		t.Fatalf("after a restart the active keys are %s/%d, want the rotated %s/%d", e.signer.KeyID(), e.sealer.activeID(), rot.SigningKeyID, rot.SealingKeyID)
	}
	if _, err := e.auth.Check(before); err != nil {
		t.Errorf("token from before the rotation after a restart: %v", err)
	}

	// A later rotation drops keys replaced longer than retain ago: with 0
	// the first keys go, and so do the tokens they made.
	if _, err := RotateKeys(ctx, e.store, e.sealer, e.signer, 0, fixedNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if kids := jwksKids(t, e.signer); len(kids) != 2 || kids[1] != rot.SigningKeyID {
		t.Errorf("JWKS kids %v after a second rotation with retain 0, want the newest two", kids)
	}
	if _, err := e.auth.Check(before); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token sealed under a dropped key: %v, want ErrUnknownKey", err)
	}
	if _, err := e.auth.Check(after); err != nil {
		t.Errorf("token sealed under the retained key: %v", err)
	}
}

// Another node's rotation reaches this one as the stored ring (SetRing):
// both then publish the same JWKS and open each other's tokens.
func TestRotationSeenByAnotherSigner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other, err := LoadSigner(ctx, e.store, AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	otherSealer, err := LoadSealer(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RotateKeys(ctx, e.store, e.sealer, e.signer, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The other node rotates from its stale view: the store's
	// compare-and-swap makes it build on the first rotation.
	if _, err := RotateKeys(ctx, e.store, otherSealer, other, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	snap, err := e.store.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.signer.SetRing(snap.Keys[signingKeyName(AlgES256)]); err != nil {
		t.Fatal(err)
	}
	if err := e.sealer.SetRing(snap.Keys[sealKeysName]); err != nil {
		t.Fatal(err)
	}
	if string(e.signer.JWKS()) != string(other.JWKS()) || len(jwksKids(t, other)) != 3 {
		t.Fatalf("JWKS differ or lost a key:\n%s\n%s", e.signer.JWKS(), other.JWKS())
	}
	if e.sealer.activeID() != otherSealer.activeID() || len(otherSealer.KeyIDs()) != 3 {
		t.Fatalf("sealing rings differ: %v vs %v", e.sealer.KeyIDs(), otherSealer.KeyIDs())
	}
}

// A restore unites the rings: keys of both sides verify.
func TestMergeKeyRings(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	name := signingKeyName(AlgES256)
	ka, _ := a.store.LoadOrCreateKey(context.Background(), name, nil)
	kb, _ := b.store.LoadOrCreateKey(context.Background(), name, nil)
	merged, err := MergeKeyRings(name, ka, kb)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{alg: AlgES256}
	if err := s.SetRing(merged); err != nil {
		t.Fatal(err)
	}
	if !s.HasKey(a.signer.KeyID()) || !s.HasKey(b.signer.KeyID()) {
		t.Fatalf("merged signing ring %v lacks a side", s.KeyIDs())
	}
	sa, _ := a.store.LoadOrCreateKey(context.Background(), sealKeysName, nil)
	sb, _ := b.store.LoadOrCreateKey(context.Background(), sealKeysName, nil)
	mergedSeal, err := MergeKeyRings(sealKeysName, sa, sb)
	if err != nil {
		t.Fatal(err)
	}
	sealer := newEmptySealer()
	if err := sealer.SetRing(mergedSeal); err != nil || len(sealer.KeyIDs()) != 2 {
		t.Fatalf("merged sealing ring %v, %v; want both keys", sealer.KeyIDs(), err)
	}
	if _, err := sealer.Open(b.issue(b.newClient("x")).AccessToken); err != nil {
		t.Errorf("a token of the restored side does not open with the merged ring: %v", err)
	}
}
