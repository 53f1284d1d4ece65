package introspection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
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
	maxRemoteJWKSBytes   = 64 << 10
	remoteJWKSTTL        = 5 * time.Minute
	remoteJWKSTimeout    = 5 * time.Second
	remoteJWKSRefetch    = 30 * time.Second // earliest refetch for an unknown kid
	remoteJWKSFailTTL    = 10 * time.Second // a failed fetch is not retried before
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
	replay    *Revocations
	keys      *RemoteKeys
	now       func() time.Time
}

// NewAssertions returns a verifier that accepts assertions whose `aud`
// names one of audiences (the issuer and the endpoint URLs). Used jti are
// recorded in rev, which persists them until the assertion expires.
func NewAssertions(clients *clientstore.Cache, rev *Revocations, keys *RemoteKeys, audiences ...string) *Assertions {
	return &Assertions{clients: clients, audiences: audiences, replay: rev, keys: keys, now: time.Now}
}

type assertionClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud Audience `json:"aud"`
	Exp *int64   `json:"exp"`
	Nbf *int64   `json:"nbf"`
	Iat *int64   `json:"iat"`
	Jti string   `json:"jti"`
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
		if errors.Is(err, ErrReplay) {
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

// ParseJWKS parses a client's JWK Set, keeping only public asymmetric keys:
// a symmetric ("oct") key or a private key is refused outright, so an HMAC
// key can never stand in for a public one (RFC 8725 §2.1).
func ParseJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%w: jwks: %v", ErrAssertion, err)
	}
	if len(set.Keys) == 0 {
		return nil, assertionErr("jwks has no keys")
	}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, assertionErr("jwks may hold only valid public RSA, EC or OKP keys")
		}
	}
	return &set, nil
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

// RemoteKeys fetches and caches clients' jwks_uri documents: bounded in
// time and size, one fetch at a time per URI, never following the JWS's
// own jku/x5u (RFC 8725 §3.10).
type RemoteKeys struct {
	client *http.Client
	group  singleflight.Group
	mu     sync.Mutex
	cache  map[string]remoteEntry
	now    func() time.Time
}

type remoteEntry struct {
	set     *jose.JSONWebKeySet
	err     error // a failed fetch, remembered for remoteJWKSFailTTL
	fetched time.Time
}

// NewRemoteKeys returns a jwks_uri fetcher using client (a client with a
// timeout is made if nil).
func NewRemoteKeys(client *http.Client) *RemoteKeys {
	c := http.Client{Timeout: remoteJWKSTimeout}
	if client != nil {
		c = *client
	}
	// No redirects: the https-only rule would hold for the first hop only,
	// and a redirect could point the fetch at an internal address.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &RemoteKeys{client: &c, cache: make(map[string]remoteEntry), now: time.Now}
}

// Get returns the key set at uri, from cache while fresh. A kid the cached
// set lacks (the client rotated its keys) refetches, at most every
// remoteJWKSRefetch.
func (r *RemoteKeys) Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error) {
	r.mu.Lock()
	e, ok := r.cache[uri]
	r.mu.Unlock()
	age := r.now().Sub(e.fetched)
	switch {
	case ok && e.err != nil && age < remoteJWKSFailTTL:
		return nil, e.err // don't refetch a failing jwks_uri on every assertion
	case ok && e.err == nil && age < remoteJWKSTTL && (kid == "" || len(e.set.Key(kid)) > 0 || age < remoteJWKSRefetch):
		return e.set, nil
	}
	// One fetch per URI at a time, not tied to the first caller's request:
	// its going away must not fail the others.
	ch := r.group.DoChan(uri, func() (any, error) {
		set, err := r.fetch(context.Background(), uri)
		r.mu.Lock()
		r.cache[uri] = remoteEntry{set: set, err: err, fetched: r.now()}
		r.mu.Unlock()
		return set, err
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*jose.JSONWebKeySet), nil
	}
}

func (r *RemoteKeys) fetch(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if !strings.HasPrefix(uri, "https://") {
		return nil, assertionErr("jwks_uri must be https")
	}
	ctx, cancel := context.WithTimeout(ctx, remoteJWKSTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, assertionErr("jwks_uri unusable")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, assertionErr("fetching jwks_uri failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, assertionErr("jwks_uri answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteJWKSBytes+1))
	if err != nil || len(body) > maxRemoteJWKSBytes {
		return nil, assertionErr("jwks_uri document unreadable or over %d bytes", maxRemoteJWKSBytes)
	}
	return ParseJWKS(body)
}
