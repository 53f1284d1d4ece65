package clientauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/go-jose/go-jose/v4"
)

// ClientAssertionType is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the signature algorithms accepted in client assertions
// (RFC 8725 §3.1: an allow-list; `none` and HMAC are never accepted). It
// is never modified; AssertionAlgs hands out copies.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// AssertionAlgs returns the signature algorithms accepted in client
// assertions, e.g. for RFC 8414 metadata. The slice is a copy: changing it
// does not change what Verify accepts.
func AssertionAlgs() []jose.SignatureAlgorithm {
	return slices.Clone(assertionAlgs)
}

// Limits on client assertions.
const (
	MaxAssertionLength   = 8 << 10
	MaxAssertionLifetime = 10 * time.Minute // exp may be at most this far ahead
	assertionLeeway      = 30 * time.Second // clock skew allowed on exp/nbf/iat
)

// ErrAssertion is wrapped by every refusal of a client assertion.
var ErrAssertion = errors.New("invalid client assertion")

func assertionErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAssertion, fmt.Sprintf(format, args...))
}

// Assertions verifies private_key_jwt client assertions (RFC 7523 §3) and
// keeps their jti from being replayed until they expire.
type Assertions struct {
	clients   *clientstore.Cache
	audiences []string // accepted `aud` values: the issuer and endpoint URLs
	replay    *introspection.Revocations
	keys      *RemoteKeys
	now       func() time.Time
}

// NewAssertions returns a verifier that accepts assertions whose `aud`
// names one of audiences (the issuer and the endpoint URLs). Used jti are
// recorded in rev, which persists them until the assertion expires.
func NewAssertions(clients *clientstore.Cache, rev *introspection.Revocations, keys *RemoteKeys, audiences ...string) *Assertions {
	return &Assertions{clients: clients, audiences: audiences, replay: rev, keys: keys, now: time.Now}
}

type assertionClaims struct {
	Iss string                 `json:"iss"`
	Sub string                 `json:"sub"`
	Aud introspection.Audience `json:"aud"`
	Exp *int64                 `json:"exp"`
	Nbf *int64                 `json:"nbf"`
	Iat *int64                 `json:"iat"`
	Jti string                 `json:"jti"`
}

// Verify checks a client assertion and returns the client it
// authenticates. clientID, if not empty, is the client_id the request also
// named, which must match.
func (v *Assertions) Verify(ctx context.Context, assertion, clientID string) (*clientstore.Client, error) {
	if len(assertion) > MaxAssertionLength {
		return nil, assertionErr("too long")
	}
	jws, err := jose.ParseSigned(assertion, assertionAlgs)
	if err != nil {
		return nil, assertionErr("not a compact JWS with an allowed algorithm (RS256, PS256, ES256, EdDSA)")
	}
	if len(jws.Signatures) != 1 {
		return nil, assertionErr("exactly one signature expected")
	}
	// Who claims to be speaking decides which keys may verify it; nothing
	// is trusted until the signature checks out with those keys.
	var unverified assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, assertionErr("claims are not a JSON object")
	}
	id := unverified.Iss
	if id == "" || (clientID != "" && clientID != id) {
		return nil, assertionErr("iss must be the client_id")
	}
	client, ok := v.clients.Get(id)
	if !ok || client.TokenEndpointAuthMethod != clientstore.AuthMethodPrivateKeyJWT {
		return nil, assertionErr("no client registered for private_key_jwt under this iss")
	}
	set, err := v.keySet(ctx, client, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	payload, err := verifyWithSet(jws, set)
	if err != nil {
		return nil, err
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, assertionErr("claims are not a JSON object")
	}
	if err := v.checkClaims(&c, id); err != nil {
		return nil, err
	}
	// Length-prefixed, so no client's jti can stand for another's:
	// client ids may contain ':'.
	once := strconv.Itoa(len(id)) + ":" + id + ":" + c.Jti
	if err := v.replay.UseOnce(ctx, once, time.Unix(*c.Exp, 0).Add(assertionLeeway)); err != nil {
		if errors.Is(err, introspection.ErrReplay) {
			return nil, assertionErr("jti was already used (RFC 7523 §3)")
		}
		return nil, err
	}
	return client, nil
}

func (v *Assertions) checkClaims(c *assertionClaims, id string) error {
	now := v.now()
	switch {
	case c.Iss != id || c.Sub != id:
		return assertionErr("iss and sub must both be the client_id")
	case !v.audienceOK(c.Aud):
		return assertionErr("aud must name this authorization server (its issuer or endpoint URL)")
	case c.Exp == nil:
		return assertionErr("exp is required")
	case now.After(time.Unix(*c.Exp, 0).Add(assertionLeeway)):
		return assertionErr("expired")
	case time.Unix(*c.Exp, 0).After(now.Add(MaxAssertionLifetime)):
		return assertionErr("exp is more than %s ahead", MaxAssertionLifetime)
	case c.Nbf != nil && time.Unix(*c.Nbf, 0).After(now.Add(assertionLeeway)):
		return assertionErr("not yet valid")
	case c.Iat != nil && time.Unix(*c.Iat, 0).After(now.Add(assertionLeeway)):
		return assertionErr("issued in the future")
	case c.Jti == "" || len(c.Jti) > 256:
		return assertionErr("jti is required (at most 256 characters)")
	}
	return nil
}

func (v *Assertions) audienceOK(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(v.audiences, a) {
			return true
		}
	}
	return false
}

// keySet returns the client's registered public keys.
func (v *Assertions) keySet(ctx context.Context, c *clientstore.Client, kid string) (*jose.JSONWebKeySet, error) {
	if c.JWKSURI != "" {
		return v.keys.Get(ctx, c.JWKSURI, kid)
	}
	return ParseJWKS(c.JWKS)
}

// verifyWithSet verifies jws with the key its kid names, or, without a kid,
// with any key of the set.
func verifyWithSet(jws *jose.JSONWebSignature, set *jose.JSONWebKeySet) ([]byte, error) {
	hdr := jws.Signatures[0].Header
	candidates := set.Keys
	if hdr.KeyID != "" {
		candidates = set.Key(hdr.KeyID)
	}
	for _, k := range candidates {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if payload, err := jws.Verify(k); err == nil {
			return payload, nil
		}
	}
	return nil, assertionErr("signature does not verify with the client's registered keys")
}
