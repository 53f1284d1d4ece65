package clientauth

// Conformance tests of private_key_jwt client authentication, written from
// RFC 7523 §3 (the assertion's claims), RFC 7521 §4.2 / RFC 7523 §2.2 (the
// assertion type) and RFC 8725 (§2.1 algorithm confusion, §3.1 allow-list,
// §3.10 no jku/x5u). Each case names the section it checks.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/go-jose/go-jose/v4"
)

const testTokenEndpoint = testIssuer + "/oauth2/token"

// assertionKey is a client's key pair for one signature algorithm.
type assertionKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	kid  string
}

// public is the JWK a client registers: public half only, with kid, alg
// and use set as a careful client would.
func (k assertionKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func generateAssertionKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) assertionKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		t.Fatalf("generating a %s key: %v", alg, err)
	}
	return assertionKey{alg: alg, priv: priv, kid: kid}
}

// Keys of every allowed algorithm, generated once: RSA generation is slow
// and the keys are read-only fixtures.
var (
	allowedKeysOnce sync.Once
	allowedKeys     []assertionKey
)

func keysOfEachAlg(t testing.TB) []assertionKey {
	allowedKeysOnce.Do(func() {
		for _, alg := range AssertionAlgs() {
			allowedKeys = append(allowedKeys, generateAssertionKey(t, alg, "kid-"+string(alg)))
		}
	})
	if len(allowedKeys) != len(assertionAlgs) {
		t.Fatal("assertion key fixtures were not generated")
	}
	return allowedKeys
}

func jwksOf(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatalf("marshalling JWKS: %v", err)
	}
	return b
}

// assertionEnv is an env with an Assertions verifier whose clock is frozen
// at a real instant (Revocations.UseOnce judges expiry by the wall clock,
// so the assertion clock must not drift far from it).
type assertionEnv struct {
	*env
	v     *Assertions
	clock *clocktest.Clock
}

func newAssertionEnv(t testing.TB) *assertionEnv {
	t.Helper()
	ae := &assertionEnv{env: newEnv(t), clock: clocktest.New(time.Now().Truncate(time.Second))}
	ae.rebuild(NewRemoteKeys(nil))
	return ae
}

// rebuild makes a verifier over the env's current cache and revocations
// (after a reopen), accepting the issuer and the token endpoint as aud.
func (ae *assertionEnv) rebuild(keys *RemoteKeys) {
	ae.v = NewAssertions(ae.cache, ae.rev, keys, testIssuer, testTokenEndpoint)
	ae.v.now = ae.clock.Now
}

// pkjwtClient registers a private_key_jwt client with the given JWKS.
func (ae *assertionEnv) pkjwtClient(id string, jwks []byte) *clientstore.Client {
	ae.t.Helper()
	cl, _, err := ae.cache.Create(context.Background(), &clientstore.Client{
		ID: id, Scope: testScope, Audience: []string{testAudience},
		TokenEndpointAuthMethod: clientstore.AuthMethodPrivateKeyJWT, JWKS: jwks,
	})
	if err != nil {
		ae.t.Fatalf("creating private_key_jwt client %q: %v", id, err)
	}
	return cl
}

var jtiCounter atomic.Int64

// claimsFor are valid RFC 7523 §3 claims for client id at now: iss = sub =
// client_id, aud = the token endpoint, exp five minutes ahead, a fresh jti.
func claimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id,
		"sub": id,
		"aud": testTokenEndpoint,
		"exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"jti": fmt.Sprintf("jti-%d-%d", now.UnixNano(), jtiCounter.Add(1)),
	}
}

// signAssertion signs claims (any JSON value) as a compact JWS with k,
// naming kid (none if empty) and typ JWT.
func signAssertion(t testing.TB, k assertionKey, kid string, claims any, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: kid}}, opts.WithType("JWT"))
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", k.alg, err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("signing assertion: %v", err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact
}

// hmacAssertion signs claims with HS256 under secret: the key-confusion
// forgery of RFC 8725 §2.1 when secret is public key material.
func hmacAssertion(t testing.TB, secret []byte, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts)
	if err != nil {
		t.Fatalf("NewSigner(HS256): %v", err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("signing HS256: %v", err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact
}

// unsignedJWT hand-crafts an `alg: none` JWT (RFC 7519 §6): the header
// given, the claims, and an empty signature.
func unsignedJWT(t testing.TB, header string, claims any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "."
}

// refused asserts that Verify refused the assertion as invalid (never with
// a client, always with an error wrapping ErrAssertion).
func refused(t *testing.T, c *clientstore.Client, err error, why string) {
	t.Helper()
	if err == nil || c != nil {
		t.Fatalf("%s: Verify authenticated client %v (err %v); want a refusal", why, clientID(c), err)
	}
	if !errors.Is(err, ErrAssertion) {
		t.Fatalf("%s: Verify error %v does not wrap ErrAssertion (it would become a 5xx, not invalid_client)", why, err)
	}
}

func clientID(c *clientstore.Client) string {
	if c == nil {
		return "<nil>"
	}
	return c.ID
}

// RFC 7523 §3 with keys of each algorithm of the allow-list (RFC 8725 §3.1):
// a correctly signed assertion with iss = sub = client_id authenticates the
// client, whichever accepted aud it names.
func TestAssertionEachAllowedAlgorithm(t *testing.T) {
	ae := newAssertionEnv(t)
	ctx := context.Background()
	for _, k := range keysOfEachAlg(t) {
		t.Run(string(k.alg), func(t *testing.T) {
			id := "svc-" + strings.ToLower(string(k.alg))
			ae.pkjwtClient(id, jwksOf(t, k.public()))
			auds := map[string]any{
				"the token endpoint as a string":          testTokenEndpoint,
				"the issuer as a string":                  testIssuer,
				"an array naming the issuer among others": []string{"https://other.example", testIssuer},
			}
			for name, aud := range auds {
				c := claimsFor(id, ae.clock.Now())
				c["aud"] = aud
				got, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, c, nil), "")
				if err != nil || got == nil || got.ID != id {
					t.Fatalf("aud %s: Verify = %v, %v; want client %s", name, clientID(got), err, id)
				}
			}
			// The client_id form parameter may accompany the assertion
			// (RFC 7523 §2.2) when it names the same client.
			got, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, claimsFor(id, ae.clock.Now()), nil), id)
			if err != nil || got.ID != id {
				t.Fatalf("with matching client_id: Verify = %v, %v; want client %s", clientID(got), err, id)
			}
			// Without kid, any registered key may verify it.
			got, err = ae.v.Verify(ctx, signAssertion(t, k, "", claimsFor(id, ae.clock.Now()), nil), "")
			if err != nil || got.ID != id {
				t.Fatalf("without kid: Verify = %v, %v; want client %s", clientID(got), err, id)
			}
		})
	}
}

// The allow-list cannot be changed from outside (RFC 8725 §3.1): what
// AssertionAlgs returns is a copy, and writing to it or appending to it
// leaves the algorithms Verify accepts as they were.
func TestAssertionAlgsIsACopy(t *testing.T) {
	want := []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}
	got := AssertionAlgs()
	if !slices.Equal(got, want) {
		t.Fatalf("AssertionAlgs() = %v, want %v", got, want)
	}
	for i := range got {
		got[i] = jose.HS256
	}
	_ = append(got[:1], jose.HS384)
	if again := AssertionAlgs(); !slices.Equal(again, want) {
		t.Errorf("after the caller changed its copy, AssertionAlgs() = %v, want %v", again, want)
	}
	if !slices.Equal(assertionAlgs, want) {
		t.Errorf("after the caller changed its copy, the allow-list is %v, want %v", assertionAlgs, want)
	}
}

// Every way an assertion can be wrong is refused with ErrAssertion, never
// authenticating anyone.
func TestAssertionRefusals(t *testing.T) {
	ae := newAssertionEnv(t)
	ctx := context.Background()
	keys := keysOfEachAlg(t)
	var es256 assertionKey
	for _, k := range keys {
		if k.alg == jose.ES256 {
			es256 = k
		}
	}
	const id = "svc"
	jwks := jwksOf(t, es256.public())
	ae.pkjwtClient(id, jwks)
	ae.pkjwtClient("other", jwksOf(t, generateAssertionKey(t, jose.ES256, "other-kid").public()))
	// A client_secret_basic client that also has keys on record: its keys
	// must not make an assertion acceptable.
	if _, _, err := ae.cache.Create(ctx, &clientstore.Client{ID: "basic", Scope: testScope, JWKS: jwks}); err != nil {
		t.Fatalf("creating client_secret_basic client with jwks: %v", err)
	}
	attacker := generateAssertionKey(t, jose.ES256, es256.kid)

	pubDER, err := x509.MarshalPKIXPublicKey(es256.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK, err := json.Marshal(es256.public())
	if err != nil {
		t.Fatal(err)
	}

	now := ae.clock.Now()
	valid := func() map[string]any { return claimsFor(id, now) }
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	sign := func(c any) string { return signAssertion(t, es256, es256.kid, c, nil) }

	twoSigs := func() string {
		other := keys[0]
		signer, err := jose.NewMultiSigner([]jose.SigningKey{
			{Algorithm: es256.alg, Key: jose.JSONWebKey{Key: es256.priv, KeyID: es256.kid}},
			{Algorithm: other.alg, Key: jose.JSONWebKey{Key: other.priv, KeyID: other.kid}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(valid())
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return jws.FullSerialize()
	}

	cases := []struct {
		name      string
		assertion string
		clientID  string // the client_id form parameter, if any
	}{
		// RFC 8725 §3.1, RFC 7518 §3.6: an unsecured JWT is never accepted.
		{name: "alg none (RFC 8725 §3.1)", assertion: unsignedJWT(t, `{"alg":"none"}`, valid())},
		{name: "alg none with typ and kid (RFC 8725 §3.1)", assertion: unsignedJWT(t, `{"alg":"none","typ":"JWT","kid":"`+es256.kid+`"}`, valid())},
		{name: "alg None, other case (RFC 8725 §3.1)", assertion: unsignedJWT(t, `{"alg":"None"}`, valid())},
		{name: "alg none with a copied signature (RFC 8725 §3.1)", assertion: func() string {
			good := sign(valid())
			return unsignedJWT(t, `{"alg":"none"}`, valid()) + good[strings.LastIndex(good, ".")+1:]
		}()},
		// RFC 8725 §2.1: the classic confusion, the public key used as an
		// HMAC secret, in every encoding a verifier might hold it in.
		{name: "HS256 keyed with the registered JWKS document (RFC 8725 §2.1)", assertion: hmacAssertion(t, jwks, es256.kid, valid())},
		{name: "HS256 keyed with the registered JWK (RFC 8725 §2.1)", assertion: hmacAssertion(t, pubJWK, es256.kid, valid())},
		{name: "HS256 keyed with the public key PEM (RFC 8725 §2.1)", assertion: hmacAssertion(t, pubPEM, es256.kid, valid())},
		{name: "HS256 keyed with the public key DER (RFC 8725 §2.1)", assertion: hmacAssertion(t, pubDER, "", valid())},
		// RFC 7523 §3 item 9: verified with the client's registered keys only.
		{name: "signed by another key under the registered kid (RFC 7523 §3)", assertion: signAssertion(t, attacker, es256.kid, valid(), nil)},
		{name: "signed by another key without kid (RFC 7523 §3)", assertion: signAssertion(t, attacker, "", valid(), nil)},
		{name: "another key embedded as jwk header (RFC 8725 §3.10)", assertion: signAssertion(t, attacker, "", valid(), &jose.SignerOptions{EmbedJWK: true})},
		{name: "signed by an allowed-alg key the client never registered (RFC 7523 §3)", assertion: signAssertion(t, keys[0], keys[0].kid, valid(), nil)},
		// RFC 7523 §3 items 1, 2: iss and sub are the client_id.
		{name: "iss is another registered client (RFC 7523 §3 item 1)", assertion: sign(with("iss", "other"))},
		{name: "iss missing (RFC 7523 §3 item 1)", assertion: sign(with("iss", nil))},
		{name: "client_id parameter differs from iss (RFC 7523 §3 item 2)", assertion: sign(valid()), clientID: "other"},
		{name: "sub differs from iss (RFC 7523 §3 item 2)", assertion: sign(with("sub", "other"))},
		{name: "sub missing (RFC 7523 §3 item 2)", assertion: sign(with("sub", nil))},
		// RFC 7523 §3 item 3: aud identifies this authorization server.
		{name: "aud is another server (RFC 7523 §3 item 3)", assertion: sign(with("aud", "https://evil.example/oauth2/token"))},
		{name: "aud is a resource server (RFC 7523 §3 item 3)", assertion: sign(with("aud", testAudience))},
		{name: "aud is a prefix of the issuer (RFC 7523 §3 item 3)", assertion: sign(with("aud", strings.TrimSuffix(testIssuer, ".com")))},
		{name: "aud missing (RFC 7523 §3 item 3)", assertion: sign(with("aud", nil))},
		{name: "aud empty array (RFC 7523 §3 item 3)", assertion: sign(with("aud", []string{}))},
		{name: "aud not a string (RFC 7523 §3 item 3)", assertion: sign(with("aud", 42))},
		// RFC 7523 §3 item 4: exp required, not past; bounded by policy.
		{name: "exp missing (RFC 7523 §3 item 4)", assertion: sign(with("exp", nil))},
		{name: "exp as a string (RFC 7519 §2 NumericDate)", assertion: sign(with("exp", fmt.Sprint(now.Add(time.Minute).Unix())))},
		{name: "expired beyond the leeway (RFC 7523 §3 item 4)", assertion: sign(with("exp", now.Add(-assertionLeeway-time.Second).Unix()))},
		{name: "exp more than MaxAssertionLifetime ahead (RFC 7523 §3 item 4)", assertion: sign(with("exp", now.Add(MaxAssertionLifetime+time.Second).Unix()))},
		{name: "exp years ahead (RFC 7523 §3 item 4)", assertion: sign(with("exp", now.AddDate(10, 0, 0).Unix()))},
		// RFC 7523 §3 items 5, 6: nbf, iat.
		{name: "nbf in the future (RFC 7523 §3 item 5)", assertion: sign(with("nbf", now.Add(assertionLeeway+time.Second).Unix()))},
		{name: "iat in the future (RFC 7523 §3 item 6)", assertion: sign(with("iat", now.Add(assertionLeeway+time.Second).Unix()))},
		// RFC 7523 §3 item 7: jti (required by Gatehouse to stop replay).
		{name: "jti missing (RFC 7523 §3 item 7)", assertion: sign(with("jti", nil))},
		{name: "jti empty (RFC 7523 §3 item 7)", assertion: sign(with("jti", ""))},
		{name: "jti over 256 characters (RFC 7523 §3 item 7)", assertion: sign(with("jti", strings.Repeat("j", 257)))},
		// The client must be registered for private_key_jwt.
		{name: "iss names no client", assertion: signAssertion(t, es256, es256.kid, claimsFor("ghost", now), nil)},
		{name: "client registered for client_secret_basic, even with jwks", assertion: signAssertion(t, es256, es256.kid, claimsFor("basic", now), nil)},
		// Shape.
		{name: "two signatures (JSON serialization)", assertion: twoSigs()},
		{name: "claims are an array", assertion: sign([]string{id})},
		{name: "claims are a string", assertion: sign("svc")},
		{name: "longer than MaxAssertionLength", assertion: sign(with("pad", strings.Repeat("p", MaxAssertionLength)))},
		{name: "empty", assertion: ""},
		{name: "three empty segments", assertion: ".."},
		{name: "not a JWS", assertion: "a.b.c"},
		{name: "an opaque access token", assertion: introspection.TokenPrefix + "AAAA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ae.v.Verify(ctx, tc.assertion, tc.clientID)
			refused(t, c, err, tc.name)
		})
	}
	// None of the refusals may have burned a jti or changed anything: a
	// correct assertion still works.
	if c, err := ae.v.Verify(ctx, sign(valid()), ""); err != nil || c.ID != id {
		t.Fatalf("a valid assertion after the refusals: %v, %v; want client %s", clientID(c), err, id)
	}
}

// The clock checks of RFC 7523 §3 items 4–6 allow a bounded skew and no
// more: the edges of the allowed window are accepted.
func TestAssertionTimeBoundaries(t *testing.T) {
	ae := newAssertionEnv(t)
	k := keysOfEachAlg(t)[0]
	ae.pkjwtClient("svc", jwksOf(t, k.public()))
	now := ae.clock.Now()
	cases := []struct {
		name  string
		claim string
		value time.Time
	}{
		{"exp just within the leeway (RFC 7523 §3 item 4)", "exp", now.Add(-assertionLeeway)},
		{"exp exactly MaxAssertionLifetime ahead", "exp", now.Add(MaxAssertionLifetime)},
		{"nbf within the leeway (RFC 7523 §3 item 5)", "nbf", now.Add(assertionLeeway)},
		{"iat within the leeway (RFC 7523 §3 item 6)", "iat", now.Add(assertionLeeway)},
		{"iat long ago (RFC 7523 §3 item 6 allows rejecting, not required)", "iat", now.Add(-time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := claimsFor("svc", now)
			c[tc.claim] = tc.value.Unix()
			got, err := ae.v.Verify(context.Background(), signAssertion(t, k, k.kid, c, nil), "")
			if err != nil || got.ID != "svc" {
				t.Fatalf("%s = %v (now %v): Verify = %v, %v; want accepted", tc.claim, tc.value, now, clientID(got), err)
			}
		})
	}
	// nbf and iat are optional (RFC 7523 §3 items 5, 6).
	c := claimsFor("svc", now)
	delete(c, "nbf")
	delete(c, "iat")
	if got, err := ae.v.Verify(context.Background(), signAssertion(t, k, k.kid, c, nil), ""); err != nil || got.ID != "svc" {
		t.Fatalf("without nbf and iat: Verify = %v, %v; want accepted", clientID(got), err)
	}
}

// RFC 7523 §3 item 7: a jti is used once; the record survives a restart
// and is dropped only once the assertion has expired anyway.
func TestAssertionReplay(t *testing.T) {
	ae := newAssertionEnv(t)
	ctx := context.Background()
	k := keysOfEachAlg(t)[0]
	jwks := jwksOf(t, k.public())
	ae.pkjwtClient("svc", jwks)
	ae.pkjwtClient("svc2", jwks)

	claims := claimsFor("svc", ae.clock.Now())
	assertion := signAssertion(t, k, k.kid, claims, nil)
	if c, err := ae.v.Verify(ctx, assertion, ""); err != nil || c.ID != "svc" {
		t.Fatalf("first use: %v, %v; want client svc", clientID(c), err)
	}
	c, err := ae.v.Verify(ctx, assertion, "")
	refused(t, c, err, "the same assertion a second time")

	// A fresh assertion with the same jti is a replay too: it is the jti
	// that is single-use, not the string.
	again := claimsFor("svc", ae.clock.Now())
	again["jti"] = claims["jti"]
	again["iat"] = ae.clock.Now().Unix() - 1
	c, err = ae.v.Verify(ctx, signAssertion(t, k, "", again, nil), "")
	refused(t, c, err, "a new assertion reusing the jti")

	// jti uniqueness is per issuer: another client may use the same value.
	other := claimsFor("svc2", ae.clock.Now())
	other["jti"] = claims["jti"]
	if c, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, other, nil), ""); err != nil || c.ID != "svc2" {
		t.Fatalf("another client using the same jti: %v, %v; want client svc2", clientID(c), err)
	}

	// Persisted: a restart does not open a replay window.
	ae.reopen()
	ae.rebuild(NewRemoteKeys(nil))
	c, err = ae.v.Verify(ctx, assertion, "")
	refused(t, c, err, "the used assertion after a restart")

	exp := time.Unix(claims["exp"].(int64), 0)
	onceKey := "once:3:svc:" + claims["jti"].(string) // the store's one-time prefix, then the length-prefixed client id
	stored := func() bool {
		t.Helper()
		found := false
		err := ae.store.ForEachRevocation(ctx, func(key string, _ time.Time) error {
			found = found || key == onceKey
			return nil
		})
		if err != nil {
			t.Fatalf("ForEachRevocation: %v", err)
		}
		return found
	}
	if !stored() {
		t.Fatalf("used jti %q is not in the store", onceKey)
	}

	// Pruning before the assertion (plus leeway) expired keeps the record.
	if err := ae.rev.Prune(ctx, exp); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if !stored() {
		t.Fatal("Prune at the assertion's exp dropped its jti, though exp+leeway has not passed")
	}
	c, err = ae.v.Verify(ctx, assertion, "")
	refused(t, c, err, "the used assertion after an early prune")

	// Once exp + leeway has passed, the record goes, in memory and on disk:
	// the assertion itself is refused as expired by then.
	after := exp.Add(assertionLeeway + time.Second)
	if err := ae.rev.Prune(ctx, after); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if stored() {
		t.Fatal("Prune after exp+leeway kept the jti record; the replay set would grow forever")
	}
	ae.clock.Set(after)
	c, err = ae.v.Verify(ctx, assertion, "")
	refused(t, c, err, "the pruned assertion after it expired")
	// The in-memory record went too: the id can be recorded afresh.
	if err := ae.rev.UseOnce(ctx, "svc:"+claims["jti"].(string), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("UseOnce of the pruned jti: %v; Prune kept it in memory", err)
	}
}

// RFC 7515 §4.1.4 and RFC 8725 §3.1: kid chooses among the client's keys,
// and a key's own alg and use restrict what it verifies.
func TestAssertionKeySelection(t *testing.T) {
	ae := newAssertionEnv(t)
	ctx := context.Background()
	keys := keysOfEachAlg(t)
	var rs, ps, es, ed assertionKey
	for _, k := range keys {
		switch k.alg {
		case jose.RS256:
			rs = k
		case jose.PS256:
			ps = k
		case jose.ES256:
			es = k
		case jose.EdDSA:
			ed = k
		}
	}
	es2 := generateAssertionKey(t, jose.ES256, "es-second")
	encKey := es2.public()
	encKey.KeyID, encKey.Use = "es-enc", "enc"
	noAlg := ed.public()
	noAlg.KeyID, noAlg.Algorithm = "ed-noalg", ""
	ae.pkjwtClient("svc", jwksOf(t, rs.public(), es.public(), es2.public(), encKey, noAlg))

	now := ae.clock.Now()
	psWithRSKey := assertionKey{alg: jose.PS256, priv: rs.priv}
	cases := []struct {
		name      string
		assertion string
		ok        bool
	}{
		{"kid names the signing key", signAssertion(t, es2, "es-second", claimsFor("svc", now), nil), true},
		{"kid names the first key", signAssertion(t, es, es.kid, claimsFor("svc", now), nil), true},
		{"RSA key under its kid", signAssertion(t, rs, rs.kid, claimsFor("svc", now), nil), true},
		{"no kid: any registered signing key", signAssertion(t, es2, "", claimsFor("svc", now), nil), true},
		{"key without alg member verifies its own kind", signAssertion(t, ed, "ed-noalg", claimsFor("svc", now), nil), true},
		{"kid names another registered key", signAssertion(t, es2, es.kid, claimsFor("svc", now), nil), false},
		{"kid names no registered key", signAssertion(t, es, "nope", claimsFor("svc", now), nil), false},
		{"key registered for RS256 used with PS256", signAssertion(t, psWithRSKey, rs.kid, claimsFor("svc", now), nil), false},
		{"key registered for RS256 used with PS256, no kid", signAssertion(t, psWithRSKey, "", claimsFor("svc", now), nil), false},
		{"key registered with use enc", signAssertion(t, es2, "es-enc", claimsFor("svc", now), nil), false},
		{"an unregistered key of an allowed alg", signAssertion(t, ps, ps.kid, claimsFor("svc", now), nil), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ae.v.Verify(ctx, tc.assertion, "")
			if tc.ok {
				if err != nil || c.ID != "svc" {
					t.Fatalf("Verify = %v, %v; want client svc", clientID(c), err)
				}
				return
			}
			refused(t, c, err, tc.name)
		})
	}
}

// A client registered with an oct or private key cannot authenticate, even
// with an assertion an HMAC-confused verifier would accept (RFC 8725 §2.1).
func TestAssertionRefusesClientWithSymmetricKeys(t *testing.T) {
	ae := newAssertionEnv(t)
	secret := []byte(strings.Repeat("s", 32))
	ae.pkjwtClient("svc", jwksOf(t, jose.JSONWebKey{Key: secret, KeyID: "oct", Algorithm: "HS256"}))
	c, err := ae.v.Verify(context.Background(), hmacAssertion(t, secret, "oct", claimsFor("svc", ae.clock.Now())), "")
	refused(t, c, err, "HS256 assertion of a client with an oct key")

	k := keysOfEachAlg(t)[2]
	ae.pkjwtClient("svc-priv", jwksOf(t, jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: string(k.alg)}))
	c, err = ae.v.Verify(context.Background(), signAssertion(t, k, k.kid, claimsFor("svc-priv", ae.clock.Now()), nil), "")
	refused(t, c, err, "assertion of a client that registered its private key")
}

// FuzzAssertionVerify: arbitrary assertions never panic the verifier and
// never authenticate a client. The registered client's key signs only
// seeds that are refused for their claims, so no mutation that keeps a
// valid signature can turn into a valid assertion.
func FuzzAssertionVerify(f *testing.F) {
	ae := newAssertionEnv(f)
	k := generateAssertionKey(f, jose.ES256, "k1")
	jwks := jwksOf(f, k.public())
	ae.pkjwtClient("svc", jwks)
	attacker := generateAssertionKey(f, jose.ES256, "k1")
	now := ae.clock.Now()
	expired := claimsFor("svc", now)
	expired["exp"] = now.Add(-time.Hour).Unix()
	wrongAud := claimsFor("svc", now)
	wrongAud["aud"] = "https://evil.example"
	noJTI := claimsFor("svc", now)
	delete(noJTI, "jti")
	good := claimsFor("svc", now)
	for _, seed := range []string{
		signAssertion(f, k, k.kid, expired, nil),
		signAssertion(f, k, "", wrongAud, nil),
		signAssertion(f, k, k.kid, noJTI, nil),
		signAssertion(f, attacker, k.kid, good, nil),
		signAssertion(f, attacker, "", good, &jose.SignerOptions{EmbedJWK: true}),
		hmacAssertion(f, jwks, k.kid, good),
		unsignedJWT(f, `{"alg":"none"}`, good),
		unsignedJWT(f, `{"alg":"ES256","kid":"k1"}`, good),
		`{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AA"}]}`,
		`{"payload":"e30","protected":"eyJhbGciOiJub25lIn0","signature":""}`,
		"eyJhbGciOiJub25lIn0.e30.",
		"..",
		"",
	} {
		f.Add(seed, "")
		f.Add(seed, "svc")
	}
	f.Fuzz(func(t *testing.T, assertion, clientID string) {
		var (
			c   *clientstore.Client
			err error
		)
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Verify(%q, %q) panicked: %v", assertion, clientID, p)
				}
			}()
			c, err = ae.v.Verify(context.Background(), assertion, clientID)
		}()
		if err == nil || c != nil {
			t.Fatalf("Verify(%q, %q) authenticated %v; no input here may", assertion, clientID, c)
		}
		if !errors.Is(err, ErrAssertion) {
			t.Fatalf("Verify(%q, %q): error %v does not wrap ErrAssertion", assertion, clientID, err)
		}
	})
}

// Client ids may contain ':': one client's jti must never count as a use
// of another's (RFC 7523 §3 replay protection is per client).
func TestAssertionReplayKeysDoNotCollide(t *testing.T) {
	ae := newAssertionEnv(t)
	k := keysOfEachAlg(t)[2]
	ae.pkjwtClient("a", jwksOf(t, k.public()))
	ae.pkjwtClient("a:b", jwksOf(t, k.public()))
	c1 := claimsFor("a", ae.clock.Now())
	c1["jti"] = "b:c"
	if _, err := ae.v.Verify(context.Background(), signAssertion(t, k, k.kid, c1, nil), ""); err != nil {
		t.Fatal(err)
	}
	c2 := claimsFor("a:b", ae.clock.Now())
	c2["jti"] = "c"
	if _, err := ae.v.Verify(context.Background(), signAssertion(t, k, k.kid, c2, nil), ""); err != nil {
		t.Fatalf("client a:b's jti c refused after client a used jti b:c: %v", err)
	}
}
