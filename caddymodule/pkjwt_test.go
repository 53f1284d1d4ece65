package caddymodule

// End-to-end tests of the token endpoint's JWT features and of client
// authentication's brute-force protection, over real HTTP against the
// in-process gateway:
//   - private_key_jwt client authentication (RFC 7523 §2.2, §3) with a
//     client registered through the admin API and golang.org/x/oauth2;
//   - JWT access tokens (RFC 9068) from issuance to the backend;
//   - slowing down repeated failed authentication (RFC 6749 §2.3.1,
//     RFC 6819 §5.1.4.2.3) with 429 and Retry-After.

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
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const jwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientKey is a private_key_jwt client's signing key.
type clientKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	kid  string
}

func newClientKey(t *testing.T, alg jose.SignatureAlgorithm) clientKey {
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
	}
	if err != nil || priv == nil {
		t.Fatalf("generating a %s key: %v", alg, err)
	}
	return clientKey{alg: alg, priv: priv, kid: "k-" + strings.ToLower(string(alg))}
}

// jwks is the public JWK Set a client registers.
func (k clientKey) jwks(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertion signs RFC 7523 §3 claims for client id: iss = sub = id, the
// given aud, exp two minutes ahead, a fresh jti; edit may change them.
func (k clientKey) assertion(t *testing.T, id, aud string, edit func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	jti := make([]byte, 12)
	rand.Read(jti)
	claims := map[string]any{
		"iss": id, "sub": id, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	}
	if edit != nil {
		edit(claims)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// createPKJWTClient registers a private_key_jwt client with k's public key
// inline, plus the given extra JSON members ("" for none).
func createPKJWTClient(t *testing.T, k clientKey, extra string) createdClientJSON {
	t.Helper()
	body := `{"client_name":"signing service","scope":"orders:read orders:write",
		"audience":["http://localhost:9081"],"owner":"team-k","metadata":{"tier":"gold"},
		"token_endpoint_auth_method":"private_key_jwt","jwks":` + k.jwks(t)
	if extra != "" {
		body += "," + extra
	}
	return createClient(t, body+"}")
}

// assertionForm is a token request authenticated by assertion a.
func assertionForm(a string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {jwtBearerType},
		"client_assertion":      {a},
	}
}

func TestPrivateKeyJWTEndToEnd(t *testing.T) {
	be, _ := newGateway(t)
	tokenURL := authURL + pathToken

	t.Run("RFC 7523 §2.2 with golang.org/x/oauth2, each allowed algorithm", func(t *testing.T) {
		for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA} {
			t.Run(string(alg), func(t *testing.T) {
				k := newClientKey(t, alg)
				c := createPKJWTClient(t, k, "")
				cfg := clientcredentials.Config{
					ClientID:  c.ClientID,
					TokenURL:  tokenURL,
					AuthStyle: oauth2.AuthStyleInParams,
					Scopes:    []string{"orders:read"},
					EndpointParams: url.Values{
						"client_assertion_type": {jwtBearerType},
						"client_assertion":      {k.assertion(t, c.ClientID, tokenURL, nil)},
					},
				}
				tok, err := cfg.Token(context.Background())
				if err != nil {
					t.Fatalf("x/oauth2 client_credentials with private_key_jwt: %v", err)
				}
				resp, body := callAPI(t, apiURL+"/orders", "Bearer "+tok.AccessToken, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("protected call with the token: %d %s, want 200", resp.StatusCode, body)
				}
				_, claims := verifyIdentity(t, be.last(t).Get("X-Identity-Token"))
				if claims["sub"] != c.ClientID || claims["owner"] != "team-k" || claims["scope"] != "orders:read" {
					t.Errorf("identity sub %v owner %v scope %v; want %s, team-k, orders:read", claims["sub"], claims["owner"], claims["scope"], c.ClientID)
				}
			})
		}
	})

	k := newClientKey(t, jose.ES256)
	c := createPKJWTClient(t, k, `"introspect":true`)
	post := func(t *testing.T, form url.Values, authz, query string) (*http.Response, map[string]any) {
		t.Helper()
		resp, b := endpointRequest(t, http.MethodPost, pathToken, query, formType, authz, form.Encode(), nil)
		return resp, decodeJSON(t, b)
	}
	expect := func(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
		t.Helper()
		if resp.StatusCode != status || m["error"] != code {
			t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, status, code)
		}
	}

	t.Run("RFC 7523 §3 aud may be the issuer; client_id may be left out", func(t *testing.T) {
		resp, m := post(t, assertionForm(k.assertion(t, c.ClientID, "http://localhost:9080", nil)), "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("aud = issuer, no client_id: %d %v, want 200", resp.StatusCode, m)
		}
	})

	t.Run("RFC 7523 §3 item 7 a replayed assertion is refused", func(t *testing.T) {
		form := assertionForm(k.assertion(t, c.ClientID, tokenURL, nil))
		form.Set("client_id", c.ClientID)
		if resp, m := post(t, form, "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: %d %v, want 200", resp.StatusCode, m)
		}
		resp, m := post(t, form, "", "")
		expect(t, resp, m, 401, "invalid_client")
	})

	t.Run("private_key_jwt authenticates at introspection and revocation too", func(t *testing.T) {
		_, m := post(t, assertionForm(k.assertion(t, c.ClientID, tokenURL, nil)), "", "")
		tok, _ := m["access_token"].(string)
		form := url.Values{
			"token":                 {tok},
			"client_assertion_type": {jwtBearerType},
			"client_assertion":      {k.assertion(t, c.ClientID, authURL+pathIntrospect, nil)},
		}
		resp, b := endpointRequest(t, http.MethodPost, pathIntrospect, "", formType, "", form.Encode(), nil)
		if resp.StatusCode != http.StatusOK || decodeJSON(t, b)["active"] != true {
			t.Fatalf("introspection with private_key_jwt: %d %s, want 200 active", resp.StatusCode, b)
		}
		form.Set("client_assertion", k.assertion(t, c.ClientID, authURL+pathRevoke, nil))
		if resp, b := endpointRequest(t, http.MethodPost, pathRevoke, "", formType, "", form.Encode(), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("revocation with private_key_jwt: %d %s, want 200", resp.StatusCode, b)
		}
		if s := apiStatus(t, tok); s != http.StatusUnauthorized {
			t.Errorf("token revoked with private_key_jwt: protected route %d, want 401", s)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		other := newClientKey(t, jose.ES256)
		basic := createClient(t, demoClient)
		off := createPKJWTClient(t, k, `"disabled":true`)
		withSecret := func(form url.Values, id, secret string) url.Values {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
			return form
		}
		wrongType := assertionForm(k.assertion(t, c.ClientID, tokenURL, nil))
		wrongType.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		noType := assertionForm(k.assertion(t, c.ClientID, tokenURL, nil))
		noType.Del("client_assertion_type")
		mismatch := assertionForm(k.assertion(t, c.ClientID, tokenURL, nil))
		mismatch.Set("client_id", basic.ClientID)
		enc := base64.RawURLEncoding.EncodeToString
		none := enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"exp":%d,"jti":"n1"}`,
			c.ClientID, c.ClientID, tokenURL, time.Now().Add(time.Minute).Unix()))) + "."
		cases := []struct {
			name   string
			form   url.Values
			authz  string
			query  string
			status int
			code   string
		}{
			// RFC 6749 §2.3: one authentication method per request.
			{name: "assertion and client_secret together", form: withSecret(assertionForm(k.assertion(t, c.ClientID, tokenURL, nil)), c.ClientID, c.ClientSecret), status: 400, code: "invalid_request"},
			{name: "assertion and Basic together", form: assertionForm(k.assertion(t, c.ClientID, tokenURL, nil)), authz: basicOf(c), status: 400, code: "invalid_request"},
			// RFC 7521 §4.2: client_assertion_type names the format.
			{name: "wrong client_assertion_type", form: wrongType, status: 400, code: "invalid_request"},
			{name: "client_assertion_type missing", form: noType, status: 400, code: "invalid_request"},
			// RFC 6749 §2.3.1 spirit: no credentials in the URL.
			{name: "assertion in the query string", form: url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearerType}},
				query: "client_assertion=" + url.QueryEscape(k.assertion(t, c.ClientID, tokenURL, nil)), status: 400, code: "invalid_request"},
			// RFC 7523 §3: iss, signature, alg, exp.
			{name: "client_id differs from iss", form: mismatch, status: 401, code: "invalid_client"},
			{name: "signed by an unregistered key", form: assertionForm(other.assertion(t, c.ClientID, tokenURL, nil)), status: 401, code: "invalid_client"},
			{name: "alg none", form: assertionForm(none), status: 401, code: "invalid_client"},
			{name: "expired", form: assertionForm(k.assertion(t, c.ClientID, tokenURL, func(m map[string]any) { m["exp"] = time.Now().Add(-time.Hour).Unix() })), status: 401, code: "invalid_client"},
			{name: "aud of another server", form: assertionForm(k.assertion(t, c.ClientID, tokenURL, func(m map[string]any) { m["aud"] = "https://other.example/oauth2/token" })), status: 401, code: "invalid_client"},
			{name: "a client_secret_basic client's assertion", form: assertionForm(k.assertion(t, basic.ClientID, tokenURL, nil)), status: 401, code: "invalid_client"},
			// The method the client registered is the only one it may use.
			{name: "private_key_jwt client using its generated secret", form: url.Values{"grant_type": {"client_credentials"}}, authz: basicOf(c), status: 401, code: "invalid_client"},
			{name: "disabled private_key_jwt client", form: assertionForm(k.assertion(t, off.ClientID, tokenURL, nil)), status: 401, code: "invalid_client"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := post(t, tc.form, tc.authz, tc.query)
				expect(t, resp, m, tc.status, tc.code)
				// RFC 6749 §5.2: the challenge names the scheme the client
				// used; an assertion in the body gets none.
				if got := resp.Header.Get("WWW-Authenticate"); tc.status == 401 && tc.authz == "" && got != "" {
					t.Errorf("401 for an assertion with WWW-Authenticate %q, want none", got)
				}
				if _, ok := m["access_token"]; ok {
					t.Fatal("a refused request got an access token")
				}
			})
		}
	})
}

// RFC 9068 end to end: a client with access_token_strategy jwt gets a JWT
// access token that works on the protected route, the backend still gets
// an identity JWT (not the access token), and introspection reports it.
func TestJWTAccessTokenEndToEnd(t *testing.T) {
	be, _ := newGateway(t)
	rs := createClient(t, `{"client_name":"resource server","introspect":true}`)
	c := createClient(t, strings.Replace(demoClient, `"owner"`, `"access_token_strategy":"jwt","owner"`, 1))

	tok := fetchToken(t, c, "orders:read")
	if tok.TokenType != "Bearer" {
		t.Errorf("token_type %q, want Bearer", tok.TokenType)
	}
	at := tok.AccessToken
	if strings.Count(at, ".") != 2 || strings.HasPrefix(at, "gat_") {
		t.Fatalf("access token %.30q…, want a compact JWT (three parts)", at)
	}

	// RFC 9068 §2.1, §2.2: verifiable with the published JWKS.
	hdr, claims := verifyGatewayJWT(t, at)
	if hdr["typ"] != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt (RFC 9068 §2.1)", hdr["typ"])
	}
	if kid, _ := hdr["kid"].(string); kid == "" {
		t.Errorf("no kid in the header (RFC 9068 §2.1)")
	}
	want := map[string]any{
		"iss": "http://localhost:9080", "sub": c.ClientID, "client_id": c.ClientID,
		"aud": "http://localhost:9081", "scope": "orders:read",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %#v, want %q (RFC 9068 §2.2)", k, claims[k], v)
		}
	}
	if exp, iat := num(t, claims, "exp"), num(t, claims, "iat"); exp-iat != 3600 {
		t.Errorf("exp - iat = %d, want token_ttl 3600", exp-iat)
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		t.Errorf("jti = %#v, want a string (RFC 9068 §2.2)", claims["jti"])
	}

	// The protected route accepts it and hands the backend an identity JWT.
	identity := identityJWTFor(t, be, at)
	if identity == at {
		t.Fatal("the backend's X-Identity-Token is the access token itself")
	}
	typ, idClaims := verifyIdentity(t, identity)
	if typ == "at+jwt" || idClaims["sub"] != c.ClientID || idClaims["owner"] != "team-a" {
		t.Errorf("identity JWT typ %q sub %v owner %v; want a JWT (not at+jwt) for %s with owner team-a", typ, idClaims["sub"], idClaims["owner"], c.ClientID)
	}
	if resp, body := callAPI(t, apiURL, "Bearer "+identity, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the identity JWT as an access token: %d %s, want 401 (RFC 8725 §3.11)", resp.StatusCode, body)
	}
	if resp, _ := callAPI(t, adminRoute, "Bearer "+at, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("JWT access token without orders:admin on the admin route: %d, want 403", resp.StatusCode)
	}

	// RFC 7662: introspection reports it, with the same jti.
	m := activeResponse(t, rs, at)
	if m["jti"] != jti || m["client_id"] != c.ClientID || m["scope"] != "orders:read" || m["token_use"] != "access_token" {
		t.Errorf("introspection = %v; want jti %s, client_id %s, scope orders:read, token_use access_token", m, jti, c.ClientID)
	}

	// A tampered copy (scope escalated, signature kept) is refused.
	parts := strings.Split(at, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"orders:read"`, `"orders:read orders:admin"`, 1))) + "." + parts[2]
	if resp, _ := callAPI(t, adminRoute, "Bearer "+forged, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("JWT with an escalated scope: %d, want 401", resp.StatusCode)
	}
	resp, b := introspect(t, rs, forged, "")
	requireOnlyInactive(t, resp, b)
}

// retryAfter reads an RFC 9110 §10.2.3 Retry-After given in seconds.
func retryAfter(t *testing.T, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q, want a whole number of seconds ≥ 1", v)
	}
	return n
}

// requireThrottled asserts a 429 with Retry-After at most maxWait seconds
// and an RFC 6749 §5.2-shaped JSON error.
func requireThrottled(t *testing.T, resp *http.Response, b []byte, maxWait int, what string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("%s: %d %s, want 429", what, resp.StatusCode, b)
	}
	if n := retryAfter(t, resp); n > maxWait {
		t.Errorf("%s: Retry-After %d s, want at most %d", what, n, maxWait)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	m := decodeJSON(t, b)
	if code, _ := m["error"].(string); code == "" {
		t.Errorf("%s: body %s, want an RFC 6749 §5.2 error object", what, b)
	}
	if _, ok := m["access_token"]; ok {
		t.Errorf("%s: a throttled request got a token", what)
	}
}

// RFC 6749 §2.3.1: "the authorization server MUST protect any endpoint
// utilizing it against brute force attacks." Failed attempts for one
// client_id, or from one address, are answered 429 with Retry-After; a
// targeted client_id is locked out only briefly. The limits are per
// configuration, so each part starts on a freshly loaded one.
func TestClientAuthenticationBruteForce(t *testing.T) {
	be := newBackend(t)
	const (
		perClient  = 10 // failures tolerated per client_id per minute
		perAddress = 20 // failures tolerated per address per minute
	)
	cc := url.Values{"grant_type": {"client_credentials"}}.Encode()

	t.Run("per client_id: a short block, other clients unaffected", func(t *testing.T) {
		startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
		victim := createClient(t, demoClient)
		bystander := createClient(t, demoClient)
		for i := 1; i <= perClient+1; i++ {
			resp, b := endpointRequest(t, http.MethodPost, pathToken, "", formType, basicAuthz(victim.ClientID, fmt.Sprint("guess-", i)), cc, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failed attempt %d: %d %s, want 401 (blocked too early?)", i, resp.StatusCode, b)
			}
		}
		resp, b := endpointRequest(t, http.MethodPost, pathToken, "", formType, basicOf(victim), cc, nil)
		requireThrottled(t, resp, b, 60, "the right secret after 11 failures")
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q on a 429, want no-store", cc)
		}
		post := url.Values{"grant_type": {"client_credentials"}, "client_id": {victim.ClientID}, "client_secret": {victim.ClientSecret}}.Encode()
		resp, b = endpointRequest(t, http.MethodPost, pathToken, "", formType, "", post, nil)
		requireThrottled(t, resp, b, 60, "the blocked client_id via client_secret_post")

		// The address has not reached its own limit: others get through.
		if resp, b := endpointRequest(t, http.MethodPost, pathToken, "", formType, basicOf(bystander), cc, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("another client from the same address: %d %s, want 200", resp.StatusCode, b)
		}
	})

	t.Run("per address: every endpoint that authenticates clients", func(t *testing.T) {
		startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
		legit := createClient(t, demoClient)
		rs := createClient(t, `{"introspect":true}`)
		tok := fetchToken(t, legit).AccessToken
		for i := 1; i <= perAddress+1; i++ {
			// A different client_id each time, so only the address limit applies.
			resp, b := endpointRequest(t, http.MethodPost, pathToken, "", formType, basicAuthz(fmt.Sprint("guess-", i), "x"), cc, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failed attempt %d: %d %s, want 401 (blocked too early?)", i, resp.StatusCode, b)
			}
		}
		resp, b := endpointRequest(t, http.MethodPost, pathToken, "", formType, basicOf(legit), cc, nil)
		requireThrottled(t, resp, b, 15*60, "token request after 21 failures from this address")
		resp, b = introspect(t, rs, tok, "")
		requireThrottled(t, resp, b, 15*60, "introspection from the blocked address")
		resp, b = revoke(t, legit, tok, nil)
		requireThrottled(t, resp, b, 15*60, "revocation from the blocked address")

		// Bearer checks on protected routes are not client authentication.
		if s := apiStatus(t, tok); s != http.StatusOK {
			t.Errorf("protected route from the blocked address: %d, want 200", s)
		}
	})
}
