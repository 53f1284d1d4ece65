package caddymodule

// The token endpoint and the discovery documents, over real HTTP against
// the in-process gateway (see e2e_test.go for the helpers).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// basicAuthz encodes client_secret_basic credentials as RFC 6749 §2.3.1
// asks: form-urlencode id and secret, then base64 as HTTP Basic.
func basicAuthz(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// tokenRequest sends a raw request to the token endpoint.
func tokenRequest(t *testing.T, method, query, contentType, authz, body string) (*http.Response, []byte) {
	t.Helper()
	return endpointRequest(t, method, pathToken, query, contentType, authz, body, nil)
}

// decodeJSON decodes a JSON object keeping numbers as json.Number, so that
// a test can tell 3600 from "3600" or 3600.5.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("response body %.200q is not a JSON object: %v", b, err)
	}
	return m
}

func TestTokenEndpoint(t *testing.T) {
	be, db := newGateway(t)

	basic := createClient(t, demoClient) // orders:read orders:write, aud http://localhost:9081
	post := createClient(t, `{"scope":"orders:read","audience":["http://localhost:9081"],
		"token_endpoint_auth_method":"client_secret_post"}`)
	odd := createClient(t, `{"client_id":"svc:a+b","scope":"orders:read"}`)
	if odd.ClientID != "svc:a+b" {
		t.Fatalf("created client_id %q, want svc:a+b", odd.ClientID)
	}
	twoAud := createClient(t, `{"scope":"orders:read","audience":["http://localhost:9081","https://reports.example"]}`)
	disabled := createClient(t, `{"scope":"orders:read","disabled":true}`)
	secrets := []string{basic.ClientSecret, post.ClientSecret, odd.ClientSecret, twoAud.ClientSecret, disabled.ClientSecret}

	const cc = "grant_type=client_credentials"
	basicOK := basicAuthz(basic.ClientID, basic.ClientSecret)
	postBody := cc + "&client_id=" + url.QueryEscape(post.ClientID) + "&client_secret=" + url.QueryEscape(post.ClientSecret)
	oversized := cc + "&pad=" + strings.Repeat("a", maxFormBytes)

	// callWith calls the protected route (scope orders:read, audience
	// http://localhost:9081) with the issued token.
	callWith := func(t *testing.T, m map[string]any) int {
		t.Helper()
		tok, _ := m["access_token"].(string)
		resp, _ := callAPI(t, apiURL+"/orders", "Bearer "+tok, nil)
		return resp.StatusCode
	}

	cases := []struct {
		name        string
		method      string // default POST
		query       string
		contentType string // default form
		authz       string
		body        string
		status      int
		errCode     string            // RFC 6749 §5.2 error; "" on success
		headers     map[string]string // header → expected prefix
		check       func(t *testing.T, m map[string]any)
		// bodyCredentials: the request authenticates in the body only
		// (client_secret_post, private_key_jwt).
		bodyCredentials bool
	}{
		{
			name: "client_secret_basic success (RFC 6749 §4.4.3, §5.1)", authz: basicOK, body: cc,
			status: 200, headers: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"},
			check: func(t *testing.T, m map[string]any) {
				if tok, _ := m["access_token"].(string); tok == "" {
					t.Errorf("access_token = %v, want a non-empty string", m["access_token"])
				}
				if m["token_type"] != "Bearer" {
					t.Errorf("token_type = %v, want Bearer", m["token_type"])
				}
				if n, ok := m["expires_in"].(json.Number); !ok || n.String() != "3600" {
					t.Errorf("expires_in = %#v, want the JSON number 3600 (token_ttl 1h)", m["expires_in"])
				}
				if m["scope"] != "orders:read orders:write" {
					t.Errorf("scope = %v, want the client's whole scope \"orders:read orders:write\"", m["scope"])
				}
				if _, ok := m["refresh_token"]; ok {
					t.Errorf("a refresh_token was issued; §4.4.3 says it should not be")
				}
				if code := callWith(t, m); code != 200 {
					t.Errorf("the issued token on the protected route: %d, want 200", code)
				}
			},
		},
		{
			name: "down-scoping (RFC 6749 §3.3)", authz: basicOK, body: cc + "&scope=orders%3Aread",
			status: 200, headers: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"},
			check: func(t *testing.T, m map[string]any) {
				if m["scope"] != "orders:read" {
					t.Errorf("scope = %v, want orders:read only", m["scope"])
				}
			},
		},
		{
			name: "client_secret_post success (RFC 6749 §2.3.1)", body: postBody, status: 200,
			headers: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"},
			check: func(t *testing.T, m map[string]any) {
				if m["scope"] != "orders:read" || m["token_type"] != "Bearer" {
					t.Errorf("scope %v token_type %v, want orders:read Bearer", m["scope"], m["token_type"])
				}
			},
		},
		{
			name:  "Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)",
			authz: basicAuthz(odd.ClientID, odd.ClientSecret), body: cc, status: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["scope"] != "orders:read" {
					t.Errorf("scope = %v, want orders:read", m["scope"])
				}
			},
		},
		{
			name:  "audience parameter restricts aud",
			authz: basicAuthz(twoAud.ClientID, twoAud.ClientSecret), body: cc + "&audience=" + url.QueryEscape("https://reports.example"),
			status: 200,
			check: func(t *testing.T, m map[string]any) {
				if code := callWith(t, m); code != http.StatusForbidden {
					t.Errorf("token issued for https://reports.example on the route for http://localhost:9081: %d, want 403", code)
				}
			},
		},
		{
			name:  "resource parameter restricts aud (RFC 8707 §2)",
			authz: basicAuthz(twoAud.ClientID, twoAud.ClientSecret), body: cc + "&resource=" + url.QueryEscape("http://localhost:9081"),
			status: 200,
			check: func(t *testing.T, m map[string]any) {
				if code := callWith(t, m); code != 200 {
					t.Errorf("token issued for resource http://localhost:9081 on its route: %d, want 200", code)
				}
			},
		},
		{
			name: "GET is not allowed (RFC 6749 §3.2)", method: http.MethodGet, authz: basicOK,
			status: 405, errCode: "invalid_request", headers: map[string]string{"Allow": "POST"},
		},
		{
			name: "no client authentication (RFC 6749 §4.4.2)", body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "wrong secret (RFC 6749 §5.2)", authz: basicAuthz(basic.ClientID, "wrong-"+basic.ClientSecret), body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "unknown client (RFC 6749 §5.2)", authz: basicAuthz("nobody", basic.ClientSecret), body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "malformed Basic credentials", authz: "Basic !!!", body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name:  "Basic with the id not form-urlencoded (RFC 6749 §2.3.1)",
			authz: "Basic " + base64.StdEncoding.EncodeToString([]byte(odd.ClientID+":"+odd.ClientSecret)), body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "client_secret_post for a client registered for client_secret_basic", body: cc +
				"&client_id=" + url.QueryEscape(basic.ClientID) + "&client_secret=" + url.QueryEscape(basic.ClientSecret),
			status: 401, errCode: "invalid_client", bodyCredentials: true,
		},
		{
			name: "wrong client_secret_post secret: 401 without a Basic challenge (RFC 6749 §5.2)", body: cc +
				"&client_id=" + url.QueryEscape(post.ClientID) + "&client_secret=wrong",
			status: 401, errCode: "invalid_client", bodyCredentials: true,
		},
		{
			name:  "client_secret_basic for a client registered for client_secret_post",
			authz: basicAuthz(post.ClientID, post.ClientSecret), body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "disabled client", authz: basicAuthz(disabled.ClientID, disabled.ClientSecret), body: cc,
			status: 401, errCode: "invalid_client", headers: map[string]string{"WWW-Authenticate": "Basic"},
		},
		{
			name: "Basic and client_secret in the body: one method only (RFC 6749 §2.3.1)", authz: basicOK,
			body:   cc + "&client_secret=" + url.QueryEscape(basic.ClientSecret),
			status: 400, errCode: "invalid_request",
		},
		{
			name: "Basic and a different client_id in the body", authz: basicOK,
			body: cc + "&client_id=" + url.QueryEscape(post.ClientID), status: 400, errCode: "invalid_request",
		},
		{
			name:  "credentials in the query string (RFC 6749 §2.3.1)",
			query: "client_id=" + url.QueryEscape(post.ClientID) + "&client_secret=" + url.QueryEscape(post.ClientSecret),
			body:  cc, status: 400, errCode: "invalid_request",
		},
		{
			name: "missing grant_type (RFC 6749 §4.4.2)", authz: basicOK, body: "scope=orders%3Aread",
			status: 400, errCode: "invalid_request",
		},
		{
			name: "password grant (RFC 6749 §5.2)", authz: basicOK, body: "grant_type=password&username=a&password=b",
			status: 400, errCode: "unsupported_grant_type",
		},
		{
			name: "repeated grant_type (RFC 6749 §3.2)", authz: basicOK, body: cc + "&" + cc,
			status: 400, errCode: "invalid_request",
		},
		{
			name: "JSON body instead of a form (RFC 6749 §3.2)", authz: basicOK, contentType: "application/json",
			body: `{"grant_type":"client_credentials"}`, status: 400, errCode: "invalid_request",
		},
		{
			name: "scope the client does not hold (RFC 6749 §5.2)", authz: basicOK, body: cc + "&scope=orders%3Aadmin",
			status: 400, errCode: "invalid_scope",
		},
		{
			name: "scope with a '\"' character (RFC 6749 §3.3)", authz: basicOK, body: cc + "&scope=" + url.QueryEscape(`orders:read "x`),
			status: 400, errCode: "invalid_scope",
		},
		{
			name: "resource not allowed (RFC 8707 §2)", authz: basicOK, body: cc + "&resource=" + url.QueryEscape("https://evil.example"),
			status: 400, errCode: "invalid_target",
		},
		{
			name: "audience not allowed (RFC 8707 §2)", authz: basicOK, body: cc + "&audience=" + url.QueryEscape("https://evil.example"),
			status: 400, errCode: "invalid_target",
		},
		{
			name: "relative resource (RFC 8707 §2)", authz: basicOK, body: cc + "&resource=" + url.QueryEscape("/orders"),
			status: 400, errCode: "invalid_target",
		},
		{
			name: "resource with a fragment (RFC 8707 §2)", authz: basicOK, body: cc + "&resource=" + url.QueryEscape("http://localhost:9081#x"),
			status: 400, errCode: "invalid_target",
		},
		{
			name: "body over 64 KiB", authz: basicOK, body: oversized,
			status: 413, errCode: "invalid_request",
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			ct := tc.contentType
			if ct == "" && method == http.MethodPost {
				ct = formType
			}
			resp, body := tokenRequest(t, method, tc.query, ct, tc.authz, tc.body)

			for _, s := range secrets {
				if bytes.Contains(body, []byte(s)) {
					t.Errorf("the response body contains a client secret: %.200s", body)
				}
				for k, vs := range resp.Header {
					for _, v := range vs {
						if strings.Contains(v, s) {
							t.Errorf("response header %s contains a client secret", k)
						}
					}
				}
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, body %.300s; want %d", resp.StatusCode, body, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json (RFC 6749 §5.1, §5.2)", ct)
			}
			for k, want := range tc.headers {
				if got := resp.Header.Get(k); !strings.HasPrefix(got, want) {
					t.Errorf("header %s = %q, want it to start with %q", k, got, want)
				}
			}
			// RFC 6749 §5.2: a Basic challenge when the client used the
			// Authorization header (or sent no credentials); none when it
			// sent them in the body.
			if tc.status == http.StatusUnauthorized {
				got := resp.Header.Get("WWW-Authenticate")
				if tc.bodyCredentials && got != "" {
					t.Errorf("401 for credentials in the body with WWW-Authenticate %q, want none", got)
				} else if !tc.bodyCredentials && !strings.HasPrefix(got, "Basic") {
					t.Errorf("401 with WWW-Authenticate %q, want a Basic challenge (RFC 6749 §5.2)", got)
				}
			}
			m := decodeJSON(t, body)
			if got, _ := m["error"].(string); got != tc.errCode {
				t.Errorf("error %q, want %q (body %.300s)", got, tc.errCode, body)
			}
			if tc.errCode != "" {
				if _, ok := m["access_token"]; ok {
					t.Errorf("an error response carries an access_token")
				}
				if got := resp.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("error response Cache-Control %q, want no-store", got)
				}
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}

	t.Run("JWKS publishes one public ES256 key", func(t *testing.T) {
		resp, err := http.Get(authURL + pathJWKS)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d, want 200", pathJWKS, resp.StatusCode)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatalf("JWKS does not decode: %v", err)
		}
		if len(set.Keys) != 1 {
			t.Fatalf("JWKS has %d keys, want 1", len(set.Keys))
		}
		k := set.Keys[0]
		want := map[string]any{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
			"kid": runningGatehouse(t).Authority().Signer().KeyID()}
		for name, v := range want {
			if k[name] != v {
				t.Errorf("JWKS key %s = %v, want %v", name, k[name], v)
			}
		}
		if kid, _ := k["kid"].(string); kid == "" {
			t.Errorf("JWKS key has no kid")
		}
		for _, name := range []string{"x", "y"} {
			if s, _ := k[name].(string); s == "" {
				t.Errorf("JWKS key lacks public coordinate %s", name)
			}
		}
		if _, ok := k["d"]; ok {
			t.Fatalf("JWKS key carries the private part d")
		}
	})

	t.Run("authorization server metadata (RFC 8414 §2, §3)", func(t *testing.T) {
		resp, err := http.Get(authURL + "/.well-known/oauth-authorization-server")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("metadata: %d, want 200", resp.StatusCode)
		}
		var md struct {
			Issuer        string   `json:"issuer"`
			TokenEndpoint string   `json:"token_endpoint"`
			JWKSURI       string   `json:"jwks_uri"`
			GrantTypes    []string `json:"grant_types_supported"`
			AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
			ResponseTypes []string `json:"response_types_supported"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatalf("metadata does not decode: %v", err)
		}
		if md.Issuer != "http://localhost:9080" {
			t.Errorf("issuer %q, want exactly http://localhost:9080 (§3: it must match the configured issuer)", md.Issuer)
		}
		if md.TokenEndpoint != "http://localhost:9080/oauth2/token" {
			t.Errorf("token_endpoint %q, want http://localhost:9080/oauth2/token", md.TokenEndpoint)
		}
		if md.JWKSURI != "http://localhost:9080/.well-known/jwks.json" {
			t.Errorf("jwks_uri %q, want http://localhost:9080/.well-known/jwks.json", md.JWKSURI)
		}
		if len(md.GrantTypes) != 1 || md.GrantTypes[0] != "client_credentials" {
			t.Errorf("grant_types_supported %q, want [client_credentials]", md.GrantTypes)
		}
		for _, m := range []string{"client_secret_basic", "client_secret_post"} {
			if !containsString(md.AuthMethods, m) {
				t.Errorf("token_endpoint_auth_methods_supported %q lacks %s", md.AuthMethods, m)
			}
		}
		if md.ResponseTypes == nil {
			t.Errorf("response_types_supported missing; RFC 8414 §2 requires it")
		}
		// The advertised endpoints are the real ones.
		jr, err := http.Get(md.JWKSURI)
		if err != nil {
			t.Fatal(err)
		}
		jr.Body.Close()
		if jr.StatusCode != 200 {
			t.Errorf("GET jwks_uri %s: %d, want 200", md.JWKSURI, jr.StatusCode)
		}
		// The demo client's id is a UUID, so unescaped Basic is fine here.
		tr, out := postToken(t, md.TokenEndpoint, formType, cc, &[2]string{basic.ClientID, basic.ClientSecret})
		if tr.StatusCode != 200 || out["access_token"] == nil {
			t.Errorf("POST token_endpoint %s: %d %v, want 200 with an access_token", md.TokenEndpoint, tr.StatusCode, out)
		}
	})

	t.Run("other paths pass through gatehouse_server", func(t *testing.T) {
		// gatehouse_server alone: Caddy's end of the chain, not a token
		// response and not an error.
		resp, body := callAPI(t, authURL+"/other", "", nil)
		if resp.StatusCode >= 500 || strings.Contains(body, "access_token") || strings.Contains(body, `"error"`) {
			t.Fatalf("/other on the auth site: %d %q, want Caddy's pass-through answer, not gatehouse's", resp.StatusCode, body)
		}

		// gatehouse_server then reverse_proxy (directive order, not
		// written order): /other reaches the backend, the endpoints stay
		// gatehouse's.
		cfg := gatewayConfig(db, be.Listener.Addr().String(), "5m")
		withProxy := strings.Replace(cfg, "\tgatehouse_server\n}",
			"\treverse_proxy "+be.Listener.Addr().String()+"\n\tgatehouse_server\n}", 1)
		if withProxy == cfg {
			t.Fatal("could not add reverse_proxy to the auth site of gatewayConfig")
		}
		caddytest.NewTester(t).InitServer(withProxy, "caddyfile")
		if t.Failed() {
			t.FailNow()
		}
		before := be.count()
		resp, body = callAPI(t, authURL+"/other", "", nil)
		if resp.StatusCode != 200 || body != "backend ok" {
			t.Errorf("/other: %d %q, want the next handler's 200 \"backend ok\"", resp.StatusCode, body)
		}
		resp, b := tokenRequest(t, http.MethodPost, "", formType, basicOK, cc)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("access_token")) {
			t.Errorf("token endpoint with a reverse_proxy after gatehouse_server: %d %.200s, want 200 with a token", resp.StatusCode, b)
		}
		if got := be.count() - before; got != 1 {
			t.Errorf("the backend got %d requests, want 1 (only /other)", got)
		}
	})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
