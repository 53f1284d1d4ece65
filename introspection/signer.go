package introspection

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
)

// Signing algorithms for identity JWTs.
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
	AlgPS256 = "PS256"
)

// DefaultAlg is the identity-JWT algorithm unless configured otherwise.
const DefaultAlg = AlgES256

// IdentityType is the `typ` header of identity JWTs. It is deliberately not
// RFC 9068's "at+jwt": an identity JWT is not an access token, and a
// resource server must not accept one as such.
const IdentityType = "JWT"

// Signer signs JWTs with one private key kept in the store, and publishes
// its public half as a JWKS.
type Signer struct {
	signer jose.Signer
	alg    string
	kid    string
	jwks   []byte
}

// SupportedAlg reports whether alg is a signing algorithm Gatehouse offers.
func SupportedAlg(alg string) bool {
	switch alg {
	case AlgES256, AlgEdDSA, AlgRS256, AlgPS256:
		return true
	}
	return false
}

// LoadSigner loads the signing key for alg from store, creating it on first
// use, so that every restart signs with the key the JWKS already published.
func LoadSigner(ctx context.Context, store clientstore.Store, alg string) (*Signer, error) {
	if !SupportedAlg(alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %q (supported: ES256, EdDSA, RS256, PS256)", alg)
	}
	raw, err := store.LoadOrCreateKey(ctx, "identity-signing-"+alg, func() ([]byte, error) {
		key, err := generateKey(alg)
		if err != nil {
			return nil, err
		}
		jwk := jose.JSONWebKey{Key: key, Algorithm: alg, Use: "sig"}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
		return jwk.MarshalJSON()
	})
	if err != nil {
		return nil, err
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil || jwk.IsPublic() {
		return nil, fmt.Errorf("identity signing key for %s unreadable", alg)
	}
	return newSigner(jwk)
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default: // RS256, PS256
		return rsa.GenerateKey(rand.Reader, 2048)
	}
}

func newSigner(jwk jose.JSONWebKey) (*Signer, error) {
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk},
		(&jose.SignerOptions{}).WithType(IdentityType))
	if err != nil {
		return nil, fmt.Errorf("identity signer: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	if err != nil {
		return nil, err
	}
	return &Signer{signer: signer, alg: jwk.Algorithm, kid: jwk.KeyID, jwks: jwks}, nil
}

// Alg is the signing algorithm.
func (s *Signer) Alg() string { return s.alg }

// KeyID is the `kid` of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// JWKS is the JSON Web Key Set document with the public key.
func (s *Signer) JWKS() []byte { return s.jwks }

// Sign signs the JSON payload and returns the compact JWS.
func (s *Signer) Sign(payload []byte) (string, error) {
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
