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
	"strings"
	"sync/atomic"
	"time"

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

// AccessTokenType is the `typ` header of JWT access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// Signer signs JWTs with the active private key of a key ring kept in the
// store, and publishes the public halves of the whole ring as a JWKS, so
// JWTs signed before a rotation keep verifying. The ring can change while
// the Signer serves (a rotation here or on another node).
type Signer struct {
	alg string
	cur atomic.Pointer[signerKeys]
}

// signerKeys is one version of the signing ring.
type signerKeys struct {
	signer   jose.Signer // identity JWTs, typ JWT
	atSigner jose.Signer // RFC 9068 access tokens, typ at+jwt
	private  jose.JSONWebKey
	public   jose.JSONWebKey
	kid      string
	verify   map[string]jose.JSONWebKey // every key of the ring, by kid
	jwks     []byte
	ring     []signingKey
	raw      []byte // as stored
}

// signingKey is one key of a stored signing ring. A ring that never
// rotated is stored as the bare private JWK, as before rotation existed.
type signingKey struct {
	JWK     jose.JSONWebKey `json:"jwk"`
	Created time.Time       `json:"created"`
}

type signingRing struct {
	Keys []signingKey `json:"keys"`
}

// SupportedAlg reports whether alg is a signing algorithm Gatehouse offers.
func SupportedAlg(alg string) bool {
	switch alg {
	case AlgES256, AlgEdDSA, AlgRS256, AlgPS256:
		return true
	}
	return false
}

// signingKeyName names the signing ring of alg in the store.
func signingKeyName(alg string) string { return "identity-signing-" + alg }

// LoadSigner loads the signing key ring for alg from store, creating it on
// first use, so that every restart signs with the key the JWKS already
// published.
func LoadSigner(ctx context.Context, store clientstore.Store, alg string) (*Signer, error) {
	if !SupportedAlg(alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %q (supported: ES256, EdDSA, RS256, PS256)", alg)
	}
	raw, err := store.LoadOrCreateKey(ctx, signingKeyName(alg), func() ([]byte, error) {
		jwk, err := newSigningJWK(alg)
		if err != nil {
			return nil, err
		}
		return jwk.MarshalJSON()
	})
	if err != nil {
		return nil, err
	}
	s := &Signer{alg: alg}
	return s, s.SetRing(raw)
}

func newSigningJWK(alg string) (jose.JSONWebKey, error) {
	key, err := generateKey(alg)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	jwk := jose.JSONWebKey{Key: key, Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// parseSigningRing reads a stored ring: {"keys":[…]} or a bare JWK.
func parseSigningRing(raw []byte) ([]signingKey, error) {
	var probe struct {
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, err
	}
	if probe.Keys == nil {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		return []signingKey{{JWK: jwk}}, nil
	}
	var ring signingRing
	if err := json.Unmarshal(raw, &ring); err != nil {
		return nil, err
	}
	return ring.Keys, nil
}

// SetRing switches to the signing ring stored as raw: on load, after a
// rotation, and when the store reports that another node rotated.
func (s *Signer) SetRing(raw []byte) error {
	ring, err := parseSigningRing(raw)
	if err != nil || len(ring) == 0 {
		return fmt.Errorf("identity signing key for %s unreadable", s.alg)
	}
	active := 0
	verify := make(map[string]jose.JSONWebKey, len(ring))
	for i, k := range ring {
		if k.JWK.IsPublic() || k.JWK.Algorithm != s.alg || k.JWK.KeyID == "" {
			return fmt.Errorf("identity signing key for %s unreadable", s.alg)
		}
		verify[k.JWK.KeyID] = k.JWK.Public()
		if k.Created.After(ring[active].Created) {
			active = i
		}
	}
	keys, err := newSignerKeys(ring[active].JWK)
	if err != nil {
		return err
	}
	// The JWKS: the active key first, then the keys it replaced.
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{keys.public}}
	for i := len(ring) - 1; i >= 0; i-- {
		if i != active {
			set.Keys = append(set.Keys, ring[i].JWK.Public())
		}
	}
	if keys.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	keys.verify, keys.ring, keys.raw = verify, ring, raw
	s.cur.Store(keys)
	return nil
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

func newSignerKeys(jwk jose.JSONWebKey) (*signerKeys, error) {
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk},
		(&jose.SignerOptions{}).WithType(IdentityType))
	if err != nil {
		return nil, fmt.Errorf("identity signer: %w", err)
	}
	atSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk},
		(&jose.SignerOptions{}).WithType(AccessTokenType))
	if err != nil {
		return nil, fmt.Errorf("access-token signer: %w", err)
	}
	return &signerKeys{signer: signer, atSigner: atSigner, private: jwk, public: jwk.Public(), kid: jwk.KeyID}, nil
}

// newSigner is a Signer with a ring of one key.
func newSigner(jwk jose.JSONWebKey) (*Signer, error) {
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	s := &Signer{alg: jwk.Algorithm}
	return s, s.SetRing(raw)
}

func (s *Signer) keys() *signerKeys { return s.cur.Load() }

// Alg is the signing algorithm.
func (s *Signer) Alg() string { return s.alg }

// KeyID is the `kid` of the key that signs now.
func (s *Signer) KeyID() string { return s.keys().kid }

// HasKey reports whether kid names a key of the ring: the signing key or
// one it replaced that the JWKS still publishes.
func (s *Signer) HasKey(kid string) bool {
	_, ok := s.keys().verify[kid]
	return ok
}

// KeyIDs lists the kids of the JWKS, the signing key first.
func (s *Signer) KeyIDs() []string {
	k := s.keys()
	ids := []string{k.kid}
	for i := len(k.ring) - 1; i >= 0; i-- {
		if id := k.ring[i].JWK.KeyID; id != k.kid {
			ids = append(ids, id)
		}
	}
	return ids
}

// JWKS is the JSON Web Key Set document with the public keys.
func (s *Signer) JWKS() []byte { return s.keys().jwks }

// Sign signs the JSON payload as an identity JWT and returns the compact
// JWS.
func (s *Signer) Sign(payload []byte) (string, error) {
	return compactSign(s.keys().signer, payload)
}

// SignAccessToken signs the JSON payload as an RFC 9068 access token
// (typ at+jwt).
func (s *Signer) SignAccessToken(payload []byte) (string, error) {
	return compactSign(s.keys().atSigner, payload)
}

// SignTyped signs the JSON payload with the given `typ` header, e.g.
// RFC 9701's token-introspection+jwt.
func (s *Signer) SignTyped(payload []byte, typ string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.alg), Key: s.keys().private},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	return compactSign(signer, payload)
}

func compactSign(signer jose.Signer, payload []byte) (string, error) {
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Verify checks a compact JWS made by this signer with the expected typ
// (case-insensitive, with or without the "application/" prefix, RFC 9068
// §4) and returns its payload. Only this signer's algorithm and the keys
// of its ring are accepted: the token's alg chooses nothing, and its kid
// only which key of the ring to try (RFC 8725 §3.1).
func (s *Signer) Verify(compact, typ string) ([]byte, error) {
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(s.alg)})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	hdr := jws.Signatures[0].Header
	got, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
	got = strings.TrimPrefix(strings.ToLower(got), "application/")
	pub, ok := s.keys().verify[hdr.KeyID]
	if got != strings.ToLower(typ) || !ok {
		return nil, ErrMalformed
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, ErrTampered
	}
	return payload, nil
}
