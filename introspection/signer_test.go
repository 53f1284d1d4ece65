package introspection

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
)

// Every algorithm Gatehouse offers signs identity JWTs that verify against
// its own JWKS, with the header naming that algorithm.
func TestSignerAlgorithms(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256, AlgPS256} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, withAlg(alg))
			if e.signer.Alg() != alg {
				t.Errorf("Alg() = %q, want %q", e.signer.Alg(), alg)
			}
			_, v := e.identity(t, e.route(testAudience, 0), e.issue(e.newClient("svc")).AccessToken)
			if v.header["alg"] != alg {
				t.Errorf("header alg = %v, want %s", v.header["alg"], alg)
			}
			if v.kid != e.signer.KeyID() {
				t.Errorf("header kid = %q, want %q", v.kid, e.signer.KeyID())
			}
			if v.header["typ"] != IdentityType {
				t.Errorf("header typ = %v, want %q", v.header["typ"], IdentityType)
			}
			if v.claims["sub"] != "svc" {
				t.Errorf("sub = %v, want svc", v.claims["sub"])
			}
			checkJWKS(t, e.signer, alg)
		})
	}
}

// checkJWKS checks the JWKS document: one public signing key, named by the
// signer's kid and algorithm, with no private member.
func checkJWKS(t *testing.T, s *Signer, alg string) {
	t.Helper()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &doc); err != nil {
		t.Fatalf("JWKS %s: %v", s.JWKS(), err)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", len(doc.Keys), s.JWKS())
	}
	k := doc.Keys[0]
	for member, want := range map[string]string{"kid": s.KeyID(), "alg": alg, "use": "sig"} {
		if k[member] != want {
			t.Errorf("JWKS key %s = %v, want %q", member, k[member], want)
		}
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := k[private]; ok {
			t.Errorf("JWKS key has the private member %q: %s", private, s.JWKS())
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.JWKS(), &set); err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS does not parse as one public go-jose key (err %v)", err)
	}
}

// RFC 8725 §3.1: `none` and HMAC are never offered.
func TestLoadSignerRefusesUnsupportedAlgorithms(t *testing.T) {
	ctx := context.Background()
	st, err := clientstore.OpenBolt(t.TempDir()+"/g.db", 0)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	defer st.Close()
	for _, alg := range []string{"none", "HS256", "HS512", "", "es256", "ES384", "RS512", "EdDSA "} {
		if SupportedAlg(alg) {
			t.Errorf("SupportedAlg(%q) = true, want false", alg)
		}
		if s, err := LoadSigner(ctx, st, alg); err == nil {
			t.Errorf("LoadSigner(%q): got a signer with alg %q, want an error", alg, s.Alg())
		}
	}
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256, AlgPS256} {
		if !SupportedAlg(alg) {
			t.Errorf("SupportedAlg(%q) = false, want true", alg)
		}
	}
	if DefaultAlg != AlgES256 {
		t.Errorf("DefaultAlg = %q, want ES256", DefaultAlg)
	}
}

// The signing key lives in the store: after a restart the gateway signs
// with the key the JWKS already published, and old JWTs still verify.
func TestSignerPersistsAcrossReopen(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, withAlg(alg))
			tok := e.issue(e.newClient("svc")).AccessToken
			jwt, _ := e.identity(t, e.route(testAudience, 0), tok)
			kid, jwks := e.signer.KeyID(), string(e.signer.JWKS())

			e.reopen(withAlg(alg))
			if e.signer.KeyID() != kid {
				t.Errorf("kid after reopen = %q, want %q", e.signer.KeyID(), kid)
			}
			if string(e.signer.JWKS()) != jwks {
				t.Errorf("JWKS after reopen = %s, want %s", e.signer.JWKS(), jwks)
			}
			verifyJWT(t, e.signer.JWKS(), jwt, alg) // a JWT from before the restart
			e.identity(t, e.route(testAudience, 0), tok)
		})
	}
}

// Each algorithm has its own key: switching the configured algorithm does
// not reuse a key of another type.
func TestSignerKeyPerAlgorithm(t *testing.T) {
	e := newEnv(t)
	es := e.signer
	ed, err := LoadSigner(context.Background(), e.store, AlgEdDSA)
	if err != nil {
		t.Fatalf("LoadSigner(EdDSA): %v", err)
	}
	if ed.KeyID() == es.KeyID() {
		t.Errorf("EdDSA and ES256 signers share kid %q, want distinct keys", ed.KeyID())
	}
	jwt, err := ed.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	verifyJWT(t, ed.JWKS(), jwt, AlgEdDSA)
}

func TestLoadSignerRefusesUnusableStoredKey(t *testing.T) {
	ctx := context.Background()
	// A public key only (e.g. a JWKS entry pasted in by mistake).
	e := newEnv(t)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.signer.JWKS(), &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	public, err := set.Keys[0].MarshalJSON()
	if err != nil {
		t.Fatalf("marshalling the public key: %v", err)
	}
	for name, stored := range map[string][]byte{
		"public key only": public,
		"not JSON":        []byte("not json"),
		"empty object":    []byte("{}"),
	} {
		t.Run(name, func(t *testing.T) {
			st, err := clientstore.OpenBolt(t.TempDir()+"/g.db", 0)
			if err != nil {
				t.Fatalf("OpenBolt: %v", err)
			}
			defer st.Close()
			if _, err := st.LoadOrCreateKey(ctx, "identity-signing-"+AlgES256, func() ([]byte, error) { return stored, nil }); err != nil {
				t.Fatalf("storing the key: %v", err)
			}
			if s, err := LoadSigner(ctx, st, AlgES256); err == nil {
				t.Errorf("LoadSigner with a stored %s: got a signer (kid %q), want an error", name, s.KeyID())
			}
		})
	}
}
