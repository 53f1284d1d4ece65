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

// Signer signs JWTs with one private key kept in the store, and publishes
// its public half as a JWKS.
type Signer struct {
	signer   jose.Signer // identity JWTs, typ JWT
	atSigner jose.Signer // RFC 9068 access tokens, typ at+jwt
	private  jose.JSONWebKey
	public   jose.JSONWebKey
	alg      string
	kid      string
	jwks     []byte
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
	atSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk},
		(&jose.SignerOptions{}).WithType(AccessTokenType))
	if err != nil {
		return nil, fmt.Errorf("access-token signer: %w", err)
	}
	public := jwk.Public()
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{public}})
	if err != nil {
		return nil, err
	}
	return &Signer{signer: signer, atSigner: atSigner, private: jwk, public: public, alg: jwk.Algorithm, kid: jwk.KeyID, jwks: jwks}, nil
}

// Alg is the signing algorithm.
func (s *Signer) Alg() string { return s.alg }

// KeyID is the `kid` of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// JWKS is the JSON Web Key Set document with the public key.
func (s *Signer) JWKS() []byte { return s.jwks }

// Sign signs the JSON payload as an identity JWT and returns the compact
// JWS.
func (s *Signer) Sign(payload []byte) (string, error) {
	return compactSign(s.signer, payload)
}

// SignAccessToken signs the JSON payload as an RFC 9068 access token
// (typ at+jwt).
func (s *Signer) SignAccessToken(payload []byte) (string, error) {
	return compactSign(s.atSigner, payload)
}

// SignTyped signs the JSON payload with the given `typ` header, e.g.
// RFC 9701's token-introspection+jwt.
func (s *Signer) SignTyped(payload []byte, typ string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.alg), Key: s.private},
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
// §4) and returns its payload. Only this signer's algorithm and key are
// accepted: the token's own alg and kid choose nothing (RFC 8725 §3.1).
func (s *Signer) Verify(compact, typ string) ([]byte, error) {
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(s.alg)})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	hdr := jws.Signatures[0].Header
	got, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
	got = strings.TrimPrefix(strings.ToLower(got), "application/")
	if got != strings.ToLower(typ) || hdr.KeyID != s.kid {
		return nil, ErrMalformed
	}
	payload, err := jws.Verify(s.public)
	if err != nil {
		return nil, ErrTampered
	}
	return payload, nil
}
