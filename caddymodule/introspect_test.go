package caddymodule

// Conformance tests of POST /oauth2/introspect over real HTTP against the
// in-process gateway: RFC 7662 (§2.1 request, §2.2 response, §4 security),
// RFC 9701 (signed responses), and what Ory Oathkeeper's
// oauth2_introspection authenticator expects of a response. Helpers shared
// by introspect_test.go, revoke_test.go, metadata_test.go and
// pkjwt_test.go live here.

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/go-jose/go-jose/v4"
)

// endpointRequest sends a request to one of the authorization server's
// endpoints (path) with the given query, content type, Authorization
// header value, body and extra headers; "" leaves each out.
func endpointRequest(t *testing.T, method, path, query, contentType, authz, body string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	u := authURL + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response of %s %s: %v", method, u, err)
	}
	return resp, b
}

// basicOf is the client_secret_basic Authorization value of c.
func basicOf(c createdClientJSON) string { return basicAuthz(c.ClientID, c.ClientSecret) }

// refusedRequest is a request an endpoint must refuse with an RFC 6749
// §5.2 error. method defaults to POST, contentType to a form for a POST.
type refusedRequest struct {
	name, method, query, contentType, authz, body string
	status                                        int
	errCode                                       string
}

// requireRefusals sends each request to the endpoint at path and checks
// its status, its error code, the Basic challenge of a 401 and the Allow
// header of a 405; check, if not nil, looks at each response too.
func requireRefusals(t *testing.T, path string, cases []refusedRequest, check func(t *testing.T, body []byte, m map[string]any)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, ct := cmp.Or(tc.method, http.MethodPost), tc.contentType
			if ct == "" && method == http.MethodPost {
				ct = formType
			}
			resp, b := endpointRequest(t, method, path, tc.query, ct, tc.authz, tc.body, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tc.status)
			}
			m := decodeJSON(t, b)
			if m["error"] != tc.errCode {
				t.Errorf("error %v, want %s (RFC 6749 §5.2)", m["error"], tc.errCode)
			}
			switch tc.status {
			case 401:
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("WWW-Authenticate %q, want a Basic challenge (RFC 6749 §5.2)", resp.Header.Get("WWW-Authenticate"))
				}
			case 405:
				if allow := resp.Header.Get("Allow"); allow != "POST" {
					t.Errorf("Allow %q, want POST", allow)
				}
			}
			if check != nil {
				check(t, b, m)
			}
		})
	}
}

// introspect asks the introspection endpoint about token as caller
// (client_secret_basic), with the given Accept header ("" for none).
func introspect(t *testing.T, caller createdClientJSON, token, accept string) (*http.Response, []byte) {
	t.Helper()
	var hdr http.Header
	if accept != "" {
		hdr = http.Header{"Accept": {accept}}
	}
	return endpointRequest(t, http.MethodPost, pathIntrospect, "", formType, basicOf(caller),
		url.Values{"token": {token}}.Encode(), hdr)
}

// activeResponse introspects token and requires an active answer.
func activeResponse(t *testing.T, caller createdClientJSON, token string) map[string]any {
	t.Helper()
	resp, b := introspect(t, caller, token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: %d %s, want 200", resp.StatusCode, b)
	}
	m := decodeJSON(t, b)
	if m["active"] != true {
		t.Fatalf("introspection of a valid token: %s, want active true", b)
	}
	return m
}

// requireOnlyInactive asserts the RFC 7662 §2.2/§4 answer for a token that
// is not active: HTTP 200 and exactly {"active":false}, nothing that could
// tell a scanner why.
func requireOnlyInactive(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d (%s), want 200 (RFC 7662 §2.2: an inactive token is not an error)", resp.StatusCode, body)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if buf.String() != `{"active":false}` {
		t.Fatalf("body %s, want exactly {\"active\":false} (RFC 7662 §2.2, §4)", buf.Bytes())
	}
}

// gatewayJWKS fetches the gateway's published keys.
func gatewayJWKS(t *testing.T) jose.JSONWebKeySet {
	t.Helper()
	resp, b := endpointRequest(t, http.MethodGet, pathJWKS, "", "", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", pathJWKS, resp.StatusCode, b)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	return set
}

// verifyGatewayJWT verifies a JWT the gateway signed against its JWKS,
// allowing only the JWKS key's own algorithm, and returns the protected
// header and the claims (numbers as json.Number).
func verifyGatewayJWT(t *testing.T, jwt string) (map[string]any, map[string]any) {
	t.Helper()
	set := gatewayJWKS(t)
	if len(set.Keys) == 0 {
		t.Fatal("the JWKS has no keys")
	}
	var algs []jose.SignatureAlgorithm
	for _, k := range set.Keys {
		algs = append(algs, jose.SignatureAlgorithm(k.Algorithm))
	}
	jws, err := jose.ParseSigned(jwt, algs)
	if err != nil {
		t.Fatalf("%.60q… is not a JWS signed with %v: %v", jwt, algs, err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("JWS has %d signatures, want 1", len(jws.Signatures))
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys for kid %q, want 1", len(keys), jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the JWKS: %v", err)
	}
	rawHdr, err := base64.RawURLEncoding.DecodeString(strings.SplitN(jwt, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(rawHdr, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr, decodeJSON(t, payload)
}

// sealFor mints an opaque token with the running gateway's own keys for
// any client id, existing or not.
func sealFor(t *testing.T, clientID string, gen uint64) string {
	t.Helper()
	now := time.Now()
	tok, err := runningGatehouse(t).state.sealer.Seal(&introspection.Claims{
		ClientID: clientID, Generation: gen, Scope: "orders:read", Audience: []string{apiURL},
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// num reads an integer member of a decodeJSON map.
func num(t *testing.T, m map[string]any, k string) int64 {
	t.Helper()
	n, ok := m[k].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, want a JSON number", k, m[k])
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s = %v, want an integer (NumericDate, RFC 7519 §2): %v", k, n, err)
	}
	return i
}

func randomB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// identityJWTFor calls the protected API with token and returns the
// identity JWT the backend received.
func identityJWTFor(t *testing.T, be *backend, token string) string {
	t.Helper()
	resp, body := callAPI(t, apiURL+"/orders", "Bearer "+token, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("protected call: %d %s, want 200", resp.StatusCode, body)
	}
	jwt := be.last(t).Get("X-Identity-Token")
	if jwt == "" {
		t.Fatal("the backend got no identity JWT")
	}
	return jwt
}

func TestIntrospectionRFC7662(t *testing.T) {
	be, _ := newGateway(t)

	rs := createClient(t, `{"client_name":"resource server","introspect":true}`)
	rsPost := createClient(t, `{"client_name":"resource server (post)","introspect":true,"token_endpoint_auth_method":"client_secret_post"}`)
	noPerm := createClient(t, `{"client_name":"no introspect permission","scope":"orders:read","audience":["http://localhost:9081"]}`)
	rsOff := createClient(t, `{"client_name":"disabled resource server","introspect":true,"disabled":true}`)
	holder := createClient(t, demoClient)
	before := time.Now().Unix()
	tok := fetchToken(t, holder).AccessToken
	after := time.Now().Unix()
	form := url.Values{"token": {tok}}.Encode()

	t.Run("§2.1 the caller must be an authenticated client allowed to introspect", func(t *testing.T) {
		cases := []refusedRequest{
			{name: "no client authentication", body: form, status: 401, errCode: "invalid_client"},
			{name: "wrong secret", authz: basicAuthz(rs.ClientID, "wrong"), body: form, status: 401, errCode: "invalid_client"},
			{name: "unknown client", authz: basicAuthz("nobody", "x"), body: form, status: 401, errCode: "invalid_client"},
			{name: "client without the introspect permission", authz: basicOf(noPerm), body: form, status: 401, errCode: "invalid_client"},
			{name: "a token holder introspecting its own token", authz: basicOf(holder), body: form, status: 401, errCode: "invalid_client"},
			{name: "disabled client with the introspect permission", authz: basicOf(rsOff), body: form, status: 401, errCode: "invalid_client"},
			{name: "bearer token instead of client credentials", authz: "Bearer " + tok, body: form, status: 401, errCode: "invalid_client"},
			{name: "token parameter missing", authz: basicOf(rs), body: "token_type_hint=access_token", status: 400, errCode: "invalid_request"},
			{name: "token parameter empty", authz: basicOf(rs), body: "token=", status: 400, errCode: "invalid_request"},
			{name: "token parameter repeated", authz: basicOf(rs), body: form + "&" + form, status: 400, errCode: "invalid_request"},
			{name: "JSON body instead of a form", contentType: "application/json", authz: basicOf(rs), body: `{"token":"` + tok + `"}`, status: 400, errCode: "invalid_request"},
			{name: "client secret in the query string", query: "client_id=" + url.QueryEscape(rsPost.ClientID) + "&client_secret=" + url.QueryEscape(rsPost.ClientSecret), body: form, status: 400, errCode: "invalid_request"},
			{name: "two authentication methods", authz: basicOf(rs), body: form + "&client_id=" + url.QueryEscape(rsPost.ClientID) + "&client_secret=" + url.QueryEscape(rsPost.ClientSecret), status: 400, errCode: "invalid_request"},
			{name: "GET", method: http.MethodGet, authz: basicOf(rs), status: 405, errCode: "invalid_request"},
			{name: "PUT", method: http.MethodPut, authz: basicOf(rs), body: form, status: 405, errCode: "invalid_request"},
		}
		requireRefusals(t, pathIntrospect, cases, func(t *testing.T, b []byte, m map[string]any) {
			if _, leaked := m["active"]; leaked {
				t.Errorf("a refused request got an introspection answer: %s", b)
			}
		})
	})

	t.Run("§2.2 an active token, with Hydra's and Gatehouse's extensions", func(t *testing.T) {
		resp, b := introspect(t, rs, tok, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d (%s), want 200", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want application/json (RFC 7662 §2.2)", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		m := decodeJSON(t, b)
		strs := map[string]string{
			"scope":      "orders:read orders:write",
			"client_id":  holder.ClientID,
			"sub":        holder.ClientID,
			"iss":        "http://localhost:9080",
			"token_type": "Bearer",
			"token_use":  "access_token",
		}
		if m["active"] != true {
			t.Errorf("active = %v, want true", m["active"])
		}
		for k, want := range strs {
			if m[k] != want {
				t.Errorf("%s = %#v, want %q", k, m[k], want)
			}
		}
		iat, exp, nbf := num(t, m, "iat"), num(t, m, "exp"), num(t, m, "nbf")
		if iat < before || iat > after {
			t.Errorf("iat %d, want the issuance time in [%d, %d]", iat, before, after)
		}
		if exp-iat != 3600 {
			t.Errorf("exp - iat = %d, want token_ttl 3600", exp-iat)
		}
		if nbf != iat {
			t.Errorf("nbf %d, want iat %d", nbf, iat)
		}
		switch aud := m["aud"].(type) {
		case string:
			if aud != "http://localhost:9081" {
				t.Errorf("aud %q, want http://localhost:9081", aud)
			}
		case []any:
			if len(aud) != 1 || aud[0] != "http://localhost:9081" {
				t.Errorf("aud %v, want [http://localhost:9081]", aud)
			}
		default:
			t.Errorf("aud = %#v, want a string or an array of strings (RFC 7519 §4.1.3)", m["aud"])
		}
		jti, _ := m["jti"].(string)
		if jti == "" {
			t.Errorf("jti = %#v, want a non-empty string", m["jti"])
		}
		wantMeta := `{"realm":{"id":"r-42"},"tier":"gold"}`
		if got := string(mustMarshal(t, m["ext"])); got != wantMeta {
			t.Errorf("ext = %s, want the client's metadata %s", got, wantMeta)
		}
		wantClient := `{"client_id":"` + holder.ClientID + `","client_name":"orders service","metadata":` + wantMeta + `,"owner":"team-a"}`
		if got := string(mustMarshal(t, m["client"])); got != wantClient {
			t.Errorf("client = %s, want %s", got, wantClient)
		}
		if bytes.Contains(b, []byte("secret")) || bytes.Contains(b, []byte(holder.ClientSecret)) {
			t.Errorf("the introspection response mentions a secret: %s", b)
		}

		// The jti identifies the token: stable for one token, distinct for
		// another.
		if again := activeResponse(t, rs, tok); again["jti"] != m["jti"] {
			t.Errorf("jti changed between two introspections: %v, %v", m["jti"], again["jti"])
		}
		if other := activeResponse(t, rs, fetchToken(t, holder).AccessToken); other["jti"] == m["jti"] {
			t.Errorf("two tokens share jti %v", m["jti"])
		}
		// Down-scoped tokens report their own scope, not the client's.
		if narrow := activeResponse(t, rs, fetchToken(t, holder, "orders:read").AccessToken); narrow["scope"] != "orders:read" {
			t.Errorf("scope of a down-scoped token = %v, want orders:read", narrow["scope"])
		}
	})

	t.Run("§2.1 client_secret_post caller", func(t *testing.T) {
		body := form + "&client_id=" + url.QueryEscape(rsPost.ClientID) + "&client_secret=" + url.QueryEscape(rsPost.ClientSecret)
		resp, b := endpointRequest(t, http.MethodPost, pathIntrospect, "", formType, "", body, nil)
		if resp.StatusCode != 200 || decodeJSON(t, b)["active"] != true {
			t.Fatalf("client_secret_post introspection: %d %s, want 200 active", resp.StatusCode, b)
		}
	})

	t.Run("§2.1 token_type_hint is a hint: a wrong one still finds the token", func(t *testing.T) {
		for _, hint := range []string{"access_token", "refresh_token", "urn:ietf:params:oauth:token-type:id_token", "bogus"} {
			body := url.Values{"token": {tok}, "token_type_hint": {hint}}.Encode()
			resp, b := endpointRequest(t, http.MethodPost, pathIntrospect, "", formType, basicOf(rs), body, nil)
			if resp.StatusCode != 200 || decodeJSON(t, b)["active"] != true {
				t.Errorf("token_type_hint=%s: %d %s, want 200 active", hint, resp.StatusCode, b)
			}
		}
	})

	t.Run("§2.2 and §4 anything not active is {\"active\":false} and nothing else", func(t *testing.T) {
		revoked := fetchToken(t, holder).AccessToken
		if resp, b := endpointRequest(t, http.MethodPost, pathRevoke, "", formType, basicOf(holder), url.Values{"token": {revoked}}.Encode(), nil); resp.StatusCode != 200 {
			t.Fatalf("revoking: %d %s", resp.StatusCode, b)
		}
		disabled := createClient(t, demoClient)
		disabledTok := fetchToken(t, disabled).AccessToken
		off := strings.Replace(demoClient, `"owner"`, `"disabled":true,"owner"`, 1)
		if resp, b := adminDo(t, http.MethodPut, "/gatehouse/clients/"+disabled.ClientID, off); resp.StatusCode != 200 {
			t.Fatalf("disabling: %d %s", resp.StatusCode, b)
		}
		deleted := createClient(t, demoClient)
		deletedTok := fetchToken(t, deleted).AccessToken
		if resp, b := adminDo(t, http.MethodDelete, "/gatehouse/clients/"+deleted.ClientID, ""); resp.StatusCode != 204 {
			t.Fatalf("deleting: %d %s", resp.StatusCode, b)
		}
		tampered := []byte(tok)
		tampered[len(tampered)/2] ^= 1

		cases := map[string]string{
			"expired":                                   mintExpired(t, holder.ClientID),
			"revoked (RFC 7009)":                        revoked,
			"of a disabled client":                      disabledTok,
			"of a deleted client":                       deletedTok,
			"of a client that never existed":            sealFor(t, "ghost", 1),
			"of the right client, stale generation":     sealFor(t, holder.ClientID, 12345),
			"sealed under a key this gateway never had": introspection.TokenPrefix + randomB64(90),
			"tampered":                                  string(tampered),
			"garbage":                                   "not-a-token",
			"bare prefix":                               introspection.TokenPrefix,
			"JWT-shaped garbage":                        "a.b.c",
			"oversized":                                 strings.Repeat("A", 5000),
			"an identity JWT (RFC 8725 §3.11)":          identityJWTFor(t, be, tok),
		}
		for name, token := range cases {
			t.Run(name, func(t *testing.T) {
				resp, b := introspect(t, rs, token, "")
				requireOnlyInactive(t, resp, b)
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
			})
		}
	})
}

// RFC 9701: Accept: application/token-introspection+jwt gets the answer as
// a JWT signed with the JWKS key, typ token-introspection+jwt, with iss,
// aud (the caller), iat and the RFC 7662 members under
// token_introspection.
func TestIntrospectionSignedRFC9701(t *testing.T) {
	newGateway(t)
	rs := createClient(t, `{"client_name":"resource server","introspect":true}`)
	holder := createClient(t, demoClient)
	tok := fetchToken(t, holder).AccessToken
	plain := activeResponse(t, rs, tok)

	signed := func(t *testing.T, token, accept string) (map[string]any, map[string]any, string) {
		t.Helper()
		before := time.Now().Unix()
		resp, b := introspect(t, rs, token, accept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d (%s), want 200", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/token-introspection+jwt" {
			t.Fatalf("Content-Type %q, want application/token-introspection+jwt (RFC 9701 §5)", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		hdr, claims := verifyGatewayJWT(t, string(b))
		if hdr["typ"] != "token-introspection+jwt" {
			t.Errorf("typ = %v, want token-introspection+jwt (RFC 9701 §5)", hdr["typ"])
		}
		if claims["iss"] != "http://localhost:9080" {
			t.Errorf("iss = %v, want the issuer", claims["iss"])
		}
		if claims["aud"] != rs.ClientID {
			t.Errorf("aud = %v, want the calling resource server %s (RFC 9701 §5)", claims["aud"], rs.ClientID)
		}
		if iat := num(t, claims, "iat"); iat < before || iat > time.Now().Unix() {
			t.Errorf("iat = %d, want the time of the response", iat)
		}
		ti, ok := claims["token_introspection"].(map[string]any)
		if !ok {
			t.Fatalf("token_introspection = %#v, want an object (RFC 9701 §5)", claims["token_introspection"])
		}
		return hdr, ti, string(b)
	}

	t.Run("active", func(t *testing.T) {
		_, ti, _ := signed(t, tok, "application/token-introspection+jwt")
		if got, want := string(mustMarshal(t, ti)), string(mustMarshal(t, plain)); got != want {
			t.Errorf("token_introspection = %s, want the same members as the JSON answer %s", got, want)
		}
	})
	t.Run("inactive", func(t *testing.T) {
		_, ti, _ := signed(t, "not-a-token", "application/token-introspection+jwt")
		if got := string(mustMarshal(t, ti)); got != `{"active":false}` {
			t.Errorf("token_introspection = %s, want exactly {\"active\":false}", got)
		}
	})
	t.Run("among other media types, any case", func(t *testing.T) {
		signed(t, tok, "application/json;q=0.5, Application/Token-Introspection+JWT")
	})
	t.Run("the signed answer is no access token (RFC 8725 §3.11)", func(t *testing.T) {
		_, _, jwt := signed(t, tok, "application/token-introspection+jwt")
		if resp, body := callAPI(t, apiURL, "Bearer "+jwt, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the introspection JWT as a bearer token: %d %s, want 401", resp.StatusCode, body)
		}
		resp, b := introspect(t, rs, jwt, "")
		requireOnlyInactive(t, resp, b)
	})
	for _, accept := range []string{"", "application/json", "*/*", "application/jwt"} {
		t.Run("Accept "+accept+" gets JSON", func(t *testing.T) {
			resp, b := introspect(t, rs, tok, accept)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q (%s), want application/json", ct, b)
			}
		})
	}
}

// oathkeeperRule is the part of an Oathkeeper access rule's
// oauth2_introspection config that judges the introspection response.
type oathkeeperRule struct {
	RequiredScope  []string
	TargetAudience []string
	TrustedIssuers []string
	ScopeStrategy  string // hierarchic, exact, wildcard or none (the default)
}

// oathkeeperResult mirrors the fields Oathkeeper decodes from the response
// (AuthenticatorOAuth2IntrospectionResult in ory/oathkeeper
// pipeline/authn/authenticator_oauth2_introspection.go).
type oathkeeperResult struct {
	Active    bool           `json:"active"`
	Extra     map[string]any `json:"ext"`
	Subject   string         `json:"sub,omitempty"`
	Username  string         `json:"username"`
	Audience  oathkeeperAud  `json:"aud,omitempty"`
	TokenType string         `json:"token_type"`
	Issuer    string         `json:"iss"`
	ClientID  string         `json:"client_id,omitempty"`
	Scope     string         `json:"scope,omitempty"`
	Expires   int64          `json:"exp"`
	TokenUse  string         `json:"token_use"`
}

// oathkeeperAud accepts a string or an array of strings, nothing else, as
// Oathkeeper's Audience does.
type oathkeeperAud []string

func (a *oathkeeperAud) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = oathkeeperAud{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud: only a string or an array of strings")
	}
	*a = l
	return nil
}

// oathkeeperSession is what Oathkeeper hands its mutators.
type oathkeeperSession struct {
	Subject string
	Extra   map[string]any
}

var (
	errOathkeeperUnauthorized = errors.New("oathkeeper: 401")
	errOathkeeperForbidden    = errors.New("oathkeeper: 403")
)

// oathkeeperScopeStrategy returns the matcher of a scope_strategy, or nil
// for "none". They follow fosite's ExactScopeStrategy,
// HierarchicScopeStrategy and WildcardScopeStrategy (ory/fosite
// scope_strategy.go): exact matches equal scopes only; hierarchic lets a
// granted "a.b" cover a required "a.b.c"; wildcard lets "*" stand for one
// dot-separated part, or for the rest when it is the last part.
func oathkeeperScopeStrategy(name string) func(granted []string, required string) bool {
	switch name {
	case "exact":
		return func(granted []string, required string) bool { return slices.Contains(granted, required) }
	case "hierarchic":
		return func(granted []string, required string) bool {
			for _, g := range granted {
				if g == required || strings.HasPrefix(required, g+".") {
					return true
				}
			}
			return false
		}
	case "wildcard":
		return func(granted []string, required string) bool {
			need := strings.Split(required, ".")
			for _, g := range granted {
				have := strings.Split(g, ".")
				if len(have) > len(need) {
					continue
				}
				match := true
				for i, part := range have {
					last := i == len(have)-1
					switch {
					case last && len(have) != len(need) && part != "*":
						match = false
					case part == "*" && need[i] != "":
					case part != need[i]:
						match = false
					}
					if !match {
						break
					}
				}
				if match {
					return true
				}
			}
			return false
		}
	}
	return nil
}

// oathkeeperAuthenticate replays Oathkeeper's oauth2_introspection
// authenticator (AuthenticatorOAuth2Introspection.Authenticate in ory/
// oathkeeper pipeline/authn/authenticator_oauth2_introspection.go) against
// the real endpoint: the same request (a form with `token`, plus `scope`
// when the scope strategy is none; credentials from
// introspection_request_headers), then its checks in its order: token_use
// must be "access_token" if present; active; exp, if set, in the future;
// every target_audience in aud; iss among trusted_issuers; every required
// scope granted under the strategy. `sub` becomes the subject, `ext` the
// extra, with username, client_id, scope and aud added.
func oathkeeperAuthenticate(t *testing.T, rule oathkeeperRule, caller createdClientJSON, token string) (*oathkeeperSession, error) {
	t.Helper()
	ss := oathkeeperScopeStrategy(rule.ScopeStrategy)
	body := url.Values{"token": {token}}
	if ss == nil {
		body.Add("scope", strings.Join(rule.RequiredScope, " "))
	}
	resp, b := endpointRequest(t, http.MethodPost, pathIntrospect, "", "application/x-www-form-urlencoded",
		basicOf(caller), body.Encode(), nil)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oathkeeper: introspection returned status code %d but expected 200", resp.StatusCode)
	}
	var i oathkeeperResult
	if err := json.Unmarshal(b, &i); err != nil {
		return nil, fmt.Errorf("oathkeeper: decoding %s: %w", b, err)
	}
	if i.TokenUse != "" && i.TokenUse != "access_token" {
		return nil, fmt.Errorf("%w: token_use %q is not access_token", errOathkeeperForbidden, i.TokenUse)
	}
	if !i.Active {
		return nil, fmt.Errorf("%w: access token is not active", errOathkeeperUnauthorized)
	}
	if i.Expires > 0 && time.Unix(i.Expires, 0).Before(time.Now()) {
		return nil, fmt.Errorf("%w: access token expired", errOathkeeperUnauthorized)
	}
	for _, aud := range rule.TargetAudience {
		if !slices.Contains(i.Audience, aud) {
			return nil, fmt.Errorf("%w: token audience is not intended for %s", errOathkeeperForbidden, aud)
		}
	}
	if len(rule.TrustedIssuers) > 0 && !slices.Contains(rule.TrustedIssuers, i.Issuer) {
		return nil, fmt.Errorf("%w: token issuer %q is not trusted", errOathkeeperForbidden, i.Issuer)
	}
	if ss != nil {
		for _, scope := range rule.RequiredScope {
			if !ss(strings.Split(i.Scope, " "), scope) {
				return nil, fmt.Errorf("%w: scope %s was not granted", errOathkeeperForbidden, scope)
			}
		}
	}
	if len(i.Extra) == 0 {
		i.Extra = map[string]any{}
	}
	i.Extra["username"] = i.Username
	i.Extra["client_id"] = i.ClientID
	i.Extra["scope"] = i.Scope
	if len(i.Audience) != 0 {
		i.Extra["aud"] = i.Audience
	}
	return &oathkeeperSession{Subject: i.Subject, Extra: i.Extra}, nil
}

// The scope strategies above behave as fosite's on the cases its docs
// give, so the contract test below means what Oathkeeper means.
func TestOathkeeperScopeStrategies(t *testing.T) {
	cases := []struct {
		strategy string
		granted  []string
		required string
		want     bool
	}{
		{"exact", []string{"orders:read"}, "orders:read", true},
		{"exact", []string{"orders"}, "orders.read", false},
		{"hierarchic", []string{"orders"}, "orders.read", true},
		{"hierarchic", []string{"orders.read"}, "orders", false},
		{"hierarchic", []string{"ord"}, "orders.read", false},
		{"wildcard", []string{"orders.*"}, "orders.read", true},
		{"wildcard", []string{"orders.*"}, "orders.read.all", true},
		{"wildcard", []string{"orders.*.all"}, "orders.read.all", true},
		{"wildcard", []string{"orders.*.all"}, "orders.read.some", false},
		{"wildcard", []string{"orders.*"}, "orders", false},
		{"wildcard", []string{"orders:read"}, "orders:read", true},
	}
	for _, tc := range cases {
		if got := oathkeeperScopeStrategy(tc.strategy)(tc.granted, tc.required); got != tc.want {
			t.Errorf("%s(%v, %q) = %v, want %v", tc.strategy, tc.granted, tc.required, got, tc.want)
		}
	}
	if oathkeeperScopeStrategy("none") != nil {
		t.Error(`scope_strategy "none" must leave the scope check to the server`)
	}
}

// Ory Oathkeeper's oauth2_introspection authenticator, pointed at
// Gatehouse's introspection endpoint, accepts a valid token (subject = the
// client, extra = the client's metadata) and refuses an inactive one.
func TestOathkeeperIntrospectionContract(t *testing.T) {
	newGateway(t)
	oathkeeper := createClient(t, `{"client_name":"oathkeeper","introspect":true}`)
	holder := createClient(t, demoClient)
	tok := fetchToken(t, holder, "orders:read").AccessToken
	rule := func(strategy string) oathkeeperRule {
		return oathkeeperRule{
			RequiredScope:  []string{"orders:read"},
			TargetAudience: []string{"http://localhost:9081"},
			TrustedIssuers: []string{"http://localhost:9080"},
			ScopeStrategy:  strategy,
		}
	}

	for _, strategy := range []string{"exact", "hierarchic", "wildcard", "none"} {
		t.Run("valid token, scope_strategy "+strategy, func(t *testing.T) {
			s, err := oathkeeperAuthenticate(t, rule(strategy), oathkeeper, tok)
			if err != nil {
				t.Fatalf("Oathkeeper refuses a valid Gatehouse token: %v", err)
			}
			if s.Subject != holder.ClientID {
				t.Errorf("subject %q, want the client id %q", s.Subject, holder.ClientID)
			}
			realm, _ := s.Extra["realm"].(map[string]any)
			if realm["id"] != "r-42" || s.Extra["tier"] != "gold" {
				t.Errorf("extra = %v, want the client's metadata (realm.id r-42, tier gold)", s.Extra)
			}
			if s.Extra["client_id"] != holder.ClientID || s.Extra["scope"] != "orders:read" {
				t.Errorf("extra client_id %v, scope %v; want %s, orders:read", s.Extra["client_id"], s.Extra["scope"], holder.ClientID)
			}
		})
	}

	revoked := fetchToken(t, holder, "orders:read").AccessToken
	if resp, b := endpointRequest(t, http.MethodPost, pathRevoke, "", formType, basicOf(holder), url.Values{"token": {revoked}}.Encode(), nil); resp.StatusCode != 200 {
		t.Fatalf("revoking: %d %s", resp.StatusCode, b)
	}
	refusals := []struct {
		name  string
		rule  oathkeeperRule
		token string
		want  error
	}{
		{"revoked token", rule("exact"), revoked, errOathkeeperUnauthorized},
		{"expired token", rule("exact"), mintExpired(t, holder.ClientID), errOathkeeperUnauthorized},
		{"garbage token", rule("exact"), "not-a-token", errOathkeeperUnauthorized},
		{"untrusted issuer", func() oathkeeperRule {
			r := rule("exact")
			r.TrustedIssuers = []string{"https://auth.example.com"}
			return r
		}(), tok, errOathkeeperForbidden},
		{"other audience", func() oathkeeperRule {
			r := rule("exact")
			r.TargetAudience = []string{"https://reports.example"}
			return r
		}(), tok, errOathkeeperForbidden},
		{"scope not granted", func() oathkeeperRule { r := rule("exact"); r.RequiredScope = []string{"orders:write"}; return r }(), tok, errOathkeeperForbidden},
		{"scope not granted, wildcard", func() oathkeeperRule { r := rule("wildcard"); r.RequiredScope = []string{"orders:admin"}; return r }(), tok, errOathkeeperForbidden},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			s, err := oathkeeperAuthenticate(t, tc.rule, oathkeeper, tc.token)
			if err == nil {
				t.Fatalf("Oathkeeper admits it as subject %q", s.Subject)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Oathkeeper error %v, want %v", err, tc.want)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
