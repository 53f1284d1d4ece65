package introspection

// Conformance tests of JWT access tokens, written from RFC 9068 (§2.1 the
// header, §2.2 the claims, §4 validation by a resource server) and RFC 8725
// (§3.1 algorithm allow-list, §3.11 explicit typing), plus the Gatehouse
// promises that a JWT access token is revocable like an opaque one.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
)

// jwtClient creates a client whose access_token_strategy is strategy.
func (e *env) jwtClient(id, strategy string) *clientstore.Client {
	e.t.Helper()
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{
		ID: id, Name: "Client " + id, Scope: testScope, Audience: []string{testAudience},
		Owner: "team-a", Metadata: clientstore.Metadata{"tier": "gold"},
		AccessTokenStrategy: strategy,
	})
	if err != nil {
		e.t.Fatalf("creating client %q (access_token_strategy %q): %v", id, strategy, err)
	}
	return cl
}

// jwtPayload decodes the (unverified) claims of a compact JWT.
func jwtPayload(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("%.40q… has %d parts, want a compact JWS of 3", jwt, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload is not base64url: %v", err)
	}
	// Numbers stay exact (the generation is a 64-bit integer), so that a
	// re-signed copy differs only where a test changes it.
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("JWT payload %s is not a JSON object: %v", raw, err)
	}
	return m
}

// forge signs payload with key under alg, with exactly the header members
// given (besides alg): no kid or typ unless listed.
func forge(t testing.TB, alg jose.SignatureAlgorithm, key any, header map[string]any, payload any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", alg, err)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// privateKey is the raw private key of the env's signer, to forge tokens
// the way only the authority itself could.
func (e *env) privateKey() any { return e.signer.keys().private.Key }

// RFC 9068 §2.1 and §2.2, for each signing algorithm Gatehouse offers: a
// client with access_token_strategy "jwt" gets a JWT with typ at+jwt, alg
// and kid of the published key, and the claims iss, sub = client_id, aud,
// exp, iat, jti, client_id, scope; it verifies with the JWKS and Check
// accepts it.
func TestJWTAccessTokenFormat(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256, AlgPS256} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, withAlg(alg))
			cl := e.jwtClient("svc", clientstore.TokenStrategyJWT)
			tok := e.issue(cl)
			if strings.HasPrefix(tok.AccessToken, TokenPrefix) || strings.Count(tok.AccessToken, ".") != 2 {
				t.Fatalf("access token %.20q… is not a compact JWS", tok.AccessToken)
			}
			v := verifyJWT(t, e.signer.JWKS(), tok.AccessToken, alg)
			if v.header["typ"] != "at+jwt" {
				t.Errorf("header typ = %v, want at+jwt (RFC 9068 §2.1)", v.header["typ"])
			}
			if v.header["alg"] != alg {
				t.Errorf("header alg = %v, want %s", v.header["alg"], alg)
			}
			if v.kid == "" || v.kid != e.signer.KeyID() {
				t.Errorf("header kid = %q, want the JWKS key %q", v.kid, e.signer.KeyID())
			}
			want := map[string]string{
				"iss": testIssuer, "sub": "svc", "client_id": "svc", "aud": testAudience, "scope": testScope,
			}
			for k, w := range want {
				if got, _ := v.claims[k].(string); got != w {
					t.Errorf("claim %s = %#v, want %q (RFC 9068 §2.2)", k, v.claims[k], w)
				}
			}
			// No number a JSON reader with IEEE 754 doubles would round
			// (RFC 7493 §2.2): the generation is a decimal string.
			for k, c := range v.claims {
				if n, ok := c.(json.Number); ok {
					if i, err := n.Int64(); err != nil || i > 1<<53 || i < -(1<<53) {
						t.Errorf("claim %s = %s, beyond ±2^53", k, n)
					}
				}
			}
			if gen, _ := v.claims["gen"].(string); gen != strconv.FormatUint(cl.Generation, 10) {
				t.Errorf("gen = %#v, want the client's generation %d as a string", v.claims["gen"], cl.Generation)
			}
			if iat := v.num(t, "iat"); iat != fixedNow.Unix() {
				t.Errorf("iat = %d, want %d", iat, fixedNow.Unix())
			}
			if exp := v.num(t, "exp"); exp != fixedNow.Add(DefaultTokenTTL).Unix() || exp-fixedNow.Unix() != tok.ExpiresIn {
				t.Errorf("exp = %d, want iat + token_ttl = %d (and expires_in %d)", exp, fixedNow.Add(DefaultTokenTTL).Unix(), tok.ExpiresIn)
			}
			jti, _ := v.claims["jti"].(string)
			if jti == "" {
				t.Fatalf("claim jti = %#v, want a non-empty string (RFC 9068 §2.2)", v.claims["jti"])
			}
			// RFC 9068 §2.2 is silent on private claims, but an identity
			// JWT's members must not leak into an access token.
			for _, k := range []string{"owner", "ext"} {
				if _, ok := v.claims[k]; ok {
					t.Errorf("access token carries %q; client metadata belongs in identity JWTs and introspection", k)
				}
			}

			r := e.check(t, tok.AccessToken)
			if r.Client.ID != "svc" || r.Claims.Scope != testScope || r.Claims.ID.String() != jti {
				t.Errorf("Check = client %s scope %q jti %s; want svc, %q, %s", r.Client.ID, r.Claims.Scope, r.Claims.ID, testScope, jti)
			}
			resp := r.Response()
			if !resp.Active || resp.Jti != jti || resp.Iss != testIssuer || resp.Sub != "svc" || resp.TokenUse != "access_token" {
				t.Errorf("introspection of the JWT = %+v; want active, jti %s, iss, sub svc, token_use access_token", resp, jti)
			}
			// A restart keeps the signing key: tokens stay valid.
			e.reopen(withAlg(alg))
			e.check(t, tok.AccessToken)
		})
	}
}

// RFC 9068 §2.2: aud is REQUIRED in a JWT access token, even for a client
// registered without audiences (it then names this authorization server).
func TestJWTAccessTokenAlwaysHasAud(t *testing.T) {
	e := newEnv(t)
	cl, _, err := e.cache.Create(context.Background(), &clientstore.Client{ID: "noaud", Scope: testScope, AccessTokenStrategy: "jwt"})
	if err != nil {
		t.Fatal(err)
	}
	c := jwtPayload(t, e.issue(cl).AccessToken)
	if c["aud"] != e.auth.cfg.Issuer {
		t.Fatalf("aud = %v, want the issuer %q (RFC 9068 §2.2: aud required)", c["aud"], e.auth.cfg.Issuer)
	}
}

// Opaque stays the default; the format follows the client's
// access_token_strategy, else the configured default.
func TestJWTAccessTokenStrategy(t *testing.T) {
	cases := []struct {
		global, client string
		wantJWT        bool
	}{
		{"", "", false},
		{"", clientstore.TokenStrategyOpaque, false},
		{"", clientstore.TokenStrategyJWT, true},
		{clientstore.TokenStrategyJWT, "", true},
		{clientstore.TokenStrategyJWT, clientstore.TokenStrategyOpaque, false},
		{clientstore.TokenStrategyOpaque, clientstore.TokenStrategyJWT, true},
	}
	for _, tc := range cases {
		t.Run("global="+tc.global+",client="+tc.client, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *Config) { c.AccessTokenStrategy = tc.global }))
			tok := e.issue(e.jwtClient("svc", tc.client)).AccessToken
			isJWT := strings.Count(tok, ".") == 2 && !strings.HasPrefix(tok, TokenPrefix)
			if isJWT != tc.wantJWT {
				t.Fatalf("token %.20q…: JWT = %v, want %v", tok, isJWT, tc.wantJWT)
			}
			if !isJWT && !strings.HasPrefix(tok, TokenPrefix) {
				t.Fatalf("opaque token %.20q… lacks the %q prefix", tok, TokenPrefix)
			}
			e.check(t, tok)
		})
	}
}

// RFC 9068 §4, RFC 8725 §3.1 and §3.11: only a JWT this authority signed,
// with its key and algorithm, typ at+jwt, its issuer and intact claims is
// an access token. Everything else is refused as an invalid token.
func TestJWTAccessTokenRefusals(t *testing.T) {
	e := newEnv(t)
	cl := e.jwtClient("svc", clientstore.TokenStrategyJWT)
	good := e.issue(cl).AccessToken
	claims := jwtPayload(t, good)
	kid := e.signer.KeyID()
	with := func(k string, v any) map[string]any {
		c := make(map[string]any, len(claims))
		for k, v := range claims {
			c[k] = v
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	ours := func(payload any) string {
		return forge(t, jose.ES256, e.privateKey(), map[string]any{"kid": kid, "typ": "at+jwt"}, payload)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	identity, _ := e.identity(t, e.route(testAudience, 0), good)
	asIdentity, err := e.signer.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	var pubJWK []byte
	if pubJWK, err = json.Marshal(e.signer.keys().public); err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(good, ".", 3)
	escalated := base64.RawURLEncoding.EncodeToString(mustJSON(t, with("scope", testScope+" orders:admin")))
	flipped := []byte(parts[2])
	flipped[len(flipped)/2] ^= 1
	enc := base64.RawURLEncoding.EncodeToString

	cases := []struct {
		name  string
		token string
	}{
		// RFC 8725 §3.11, RFC 9068 §4: explicit typing.
		{"an identity JWT of the same client (typ JWT)", identity},
		{"access-token claims signed with typ JWT", asIdentity},
		{"access-token claims signed without typ", forge(t, jose.ES256, e.privateKey(), map[string]any{"kid": kid}, claims)},
		{"typ id_token+jwt", forge(t, jose.ES256, e.privateKey(), map[string]any{"kid": kid, "typ": "id_token+jwt"}, claims)},
		{"typ token-introspection+jwt", forge(t, jose.ES256, e.privateKey(), map[string]any{"kid": kid, "typ": "token-introspection+jwt"}, claims)},
		// RFC 9068 §4, RFC 8725 §3.1: our key, our algorithm.
		{"another key under our kid", forge(t, jose.ES256, otherKey, map[string]any{"kid": kid, "typ": "at+jwt"}, claims)},
		{"another key under its own kid", forge(t, jose.ES256, otherKey, map[string]any{"kid": "attacker", "typ": "at+jwt"}, claims)},
		{"another key embedded as jwk", func() string {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: otherKey},
				(&jose.SignerOptions{EmbedJWK: true}).WithType("at+jwt").WithHeader("kid", kid))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := s.Sign(mustJSON(t, claims))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := jws.CompactSerialize()
			return out
		}()},
		{"our key under another kid", forge(t, jose.ES256, e.privateKey(), map[string]any{"kid": "other", "typ": "at+jwt"}, claims)},
		{"alg none", enc([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + "."},
		{"alg none keeping the signature", enc([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + "." + parts[2]},
		{"HS256 keyed with the JWKS (RFC 8725 §2.1)", forge(t, jose.HS256, e.signer.JWKS(), map[string]any{"kid": kid, "typ": "at+jwt"}, claims)},
		{"HS256 keyed with the public JWK (RFC 8725 §2.1)", forge(t, jose.HS256, pubJWK, map[string]any{"kid": kid, "typ": "at+jwt"}, claims)},
		// RFC 9068 §4: the issuer, and claims that are consistent.
		{"another issuer", ours(with("iss", "https://evil.example"))},
		{"issuer with a trailing slash", ours(with("iss", testIssuer+"/"))},
		{"no issuer", ours(with("iss", nil))},
		{"sub is not the client_id", ours(with("sub", "other"))},
		{"no client_id", ours(with("client_id", nil))},
		{"client_id of another client", ours(with("client_id", "other"))},
		{"jti that is no token id", ours(with("jti", "x"))},
		{"no exp", ours(with("exp", nil))},
		{"exp in the past", ours(with("exp", fixedNow.Add(-time.Second).Unix()))},
		{"generation of another era", ours(with("gen", 1))},
		{"claims not an object", ours([]string{"svc"})},
		// Integrity.
		{"payload swapped for an escalated scope", parts[0] + "." + escalated + "." + parts[2]},
		{"signature flipped", parts[0] + "." + parts[1] + "." + string(flipped)},
		{"signature removed", parts[0] + "." + parts[1] + "."},
		{"four segments", good + ".x"},
	}
	// The forging machinery itself makes acceptable tokens when nothing is
	// wrong, so each refusal below is due to what its case changes.
	if _, err := e.auth.Check(ours(claims)); err != nil {
		t.Fatalf("a re-signed copy of a genuine token's claims is refused (%v): the cases below would prove nothing", err)
	}
	// Tokens minted before the generation became a string carried it as
	// a JSON number: they still verify.
	if gen, ok := claims["gen"].(string); !ok {
		t.Errorf("gen = %#v, want a decimal string", claims["gen"])
	} else if _, err := e.auth.Check(ours(with("gen", json.Number(gen)))); err != nil {
		t.Errorf("a token with gen as a number is refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.auth.Check(tc.token)
			if err == nil {
				t.Fatalf("Check accepted it as client %s's access token", r.Client.ID)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Check error %v does not wrap ErrInvalidToken", err)
			}
		})
	}
	// And the genuine token is still good.
	e.check(t, good)
}

// RFC 9068 §4 names "application/at+jwt" as the other acceptable typ, and
// RFC 7515 §4.1.9 makes media types case-insensitive.
func TestJWTAccessTokenTypVariants(t *testing.T) {
	e := newEnv(t)
	cl := e.jwtClient("svc", clientstore.TokenStrategyJWT)
	payload := mustJSON(t, jwtPayload(t, e.issue(cl).AccessToken))
	for _, typ := range []string{"application/at+jwt", "AT+JWT", "Application/At+Jwt"} {
		tok, err := e.signer.SignTyped(payload, typ)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.auth.Check(tok); err != nil {
			t.Errorf("typ %q: Check refused it (%v), want accepted", typ, err)
		}
	}
}

// RFC 7009 §2.1 for JWT access tokens: the holder revokes it, effective at
// once and after a restart; another client cannot.
func TestJWTAccessTokenRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := e.jwtClient("svc", clientstore.TokenStrategyJWT)
	other := e.jwtClient("other", clientstore.TokenStrategyJWT)
	tok := e.issue(cl).AccessToken
	keep := e.issue(cl).AccessToken

	if err := e.auth.Revoke(ctx, other, tok); !errors.Is(err, ErrNotTokenOwner) {
		t.Fatalf("Revoke by another client: %v, want ErrNotTokenOwner (RFC 7009 §2.1)", err)
	}
	e.check(t, tok)

	if err := e.auth.Revoke(ctx, cl, tok); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check after Revoke: %v, want ErrRevoked", err)
	}
	e.check(t, keep)

	e.reopen()
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check after Revoke and restart: %v, want ErrRevoked", err)
	}
	e.check(t, keep)
}

// Disabling the client revokes its JWT access tokens like its opaque ones
// (the generation they carry), and re-enabling does not bring them back;
// deleting the client kills them, also for a new client under the same id.
func TestJWTAccessTokenFollowsClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := e.jwtClient("svc", clientstore.TokenStrategyJWT)
	tok := e.issue(cl).AccessToken
	e.check(t, tok)

	off := cl.Clone()
	off.Disabled = true
	if _, err := e.cache.Update(ctx, off); err != nil {
		t.Fatalf("disabling: %v", err)
	}
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Check of a disabled client's JWT: %v, want refused", err)
	}
	cur, _ := e.cache.Get("svc")
	on := cur.Clone()
	on.Disabled = false
	if _, err := e.cache.Update(ctx, on); err != nil {
		t.Fatalf("re-enabling: %v", err)
	}
	if _, err := e.auth.Check(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check after re-enabling: %v, want ErrRevoked (the generation moved on)", err)
	}
	fresh := e.issue(mustGet(t, e, "svc")).AccessToken
	e.check(t, fresh)

	if err := e.cache.Delete(ctx, "svc"); err != nil {
		t.Fatalf("deleting: %v", err)
	}
	if _, err := e.auth.Check(fresh); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("Check of a deleted client's JWT: %v, want ErrUnknownClient", err)
	}
	e.jwtClient("svc", clientstore.TokenStrategyJWT)
	if _, err := e.auth.Check(fresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a deleted client's JWT works for the new client under its id: %v", err)
	}
}

// A JWT access token expires at its exp like an opaque one.
func TestJWTAccessTokenExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.issue(e.jwtClient("svc", clientstore.TokenStrategyJWT))
	e.clock.Advance(time.Duration(tok.ExpiresIn-1) * time.Second)
	e.check(t, tok.AccessToken)
	e.clock.Advance(time.Second)
	if _, err := e.auth.Check(tok.AccessToken); !errors.Is(err, ErrExpired) {
		t.Fatalf("Check at exp: %v, want ErrExpired", err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustGet(t testing.TB, e *env, id string) *clientstore.Client {
	t.Helper()
	c, ok := e.cache.Get(id)
	if !ok {
		t.Fatalf("client %q not in the cache", id)
	}
	return c
}
