package caddymodule

// Conformance tests of the authorization server metadata (RFC 8414 §2, §3)
// over real HTTP, and of the protected-route variants that the same
// alternative configuration sets up: gatehouse_protect's `optional` mode,
// `header Authorization`, and RFC 6750 §2.1/§3 details.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// variantConfig is a gateway with scopes_supported configured, an
// `optional` protected route on :9081 and a `header Authorization` route
// on :9082, both requiring orders:read.
func variantConfig(dbPath, backendAddr string) string {
	return fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
		scopes_supported orders:read orders:write
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9081 {
	gatehouse_protect {
		optional
		scope orders:read
		audience http://localhost:9081
	}
	reverse_proxy %s
}
http://localhost:9082 {
	gatehouse_protect {
		scope orders:read
		header Authorization
	}
	reverse_proxy %s
}
`, dbPath, backendAddr, backendAddr)
}

func startVariant(t *testing.T, be *backend) {
	t.Helper()
	caddytest.NewTester(t).InitServer(variantConfig(filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String()), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// strList reads a JSON array of strings from a decodeJSON map; ok is false
// when the member is absent or not such an array.
func strList(m map[string]any, k string) ([]string, bool) {
	raw, ok := m[k].([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// checkMetadata applies RFC 8414 §2 and §3 to the served document and
// returns it.
func checkMetadata(t *testing.T) map[string]any {
	t.Helper()
	const issuer = "http://localhost:9080"
	resp, b := endpointRequest(t, http.MethodGet, pathMetadata, "", "", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s, want 200 (RFC 8414 §3)", pathMetadata, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json (RFC 8414 §3.2)", ct)
	}
	md := decodeJSON(t, b)

	// §2 issuer; §3.3 it must be identical to the configured issuer.
	if md["issuer"] != issuer {
		t.Errorf("issuer %#v, want exactly %q (RFC 8414 §3.3)", md["issuer"], issuer)
	}
	endpoints := map[string]string{
		"token_endpoint":         issuer + pathToken,
		"jwks_uri":               issuer + pathJWKS,
		"introspection_endpoint": issuer + pathIntrospect,
		"revocation_endpoint":    issuer + pathRevoke,
	}
	for k, want := range endpoints {
		if md[k] != want {
			t.Errorf("%s = %#v, want %q (RFC 8414 §2)", k, md[k], want)
		}
	}
	if _, ok := md["authorization_endpoint"]; ok {
		t.Errorf("authorization_endpoint advertised, but there is no authorization endpoint")
	}
	if g, ok := strList(md, "grant_types_supported"); !ok || !slices.Equal(g, []string{"client_credentials"}) {
		t.Errorf("grant_types_supported = %#v, want [client_credentials]", md["grant_types_supported"])
	}
	// §2: REQUIRED; empty, as there is no authorization endpoint.
	if r, ok := strList(md, "response_types_supported"); !ok || len(r) != 0 {
		t.Errorf("response_types_supported = %#v, want present and [] (RFC 8414 §2)", md["response_types_supported"])
	}

	wantMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	wantAlgs := []string{"ES256", "EdDSA", "PS256", "RS256"} // sorted
	for _, prefix := range []string{"token_endpoint", "introspection_endpoint", "revocation_endpoint"} {
		methods, ok := strList(md, prefix+"_auth_methods_supported")
		if !ok {
			t.Errorf("%s_auth_methods_supported = %#v, want a list", prefix, md[prefix+"_auth_methods_supported"])
			continue
		}
		for _, m := range wantMethods {
			if !slices.Contains(methods, m) {
				t.Errorf("%s_auth_methods_supported %v lacks %s", prefix, methods, m)
			}
		}
		if slices.Contains(methods, "none") {
			t.Errorf("%s_auth_methods_supported %v offers none: every client must authenticate (RFC 6749 §4.4)", prefix, methods)
		}
		// §2: required when private_key_jwt is offered; "none" MUST NOT
		// be used; and RFC 8725 §3.1: no HMAC with a client's key.
		algs, ok := strList(md, prefix+"_auth_signing_alg_values_supported")
		if !ok || len(algs) == 0 {
			t.Errorf("%s_auth_signing_alg_values_supported = %#v, want a non-empty list (RFC 8414 §2, private_key_jwt is offered)", prefix, md[prefix+"_auth_signing_alg_values_supported"])
			continue
		}
		for _, a := range algs {
			if strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS") {
				t.Errorf("%s_auth_signing_alg_values_supported offers %s (RFC 8414 §2, RFC 8725 §3.1)", prefix, a)
			}
		}
		sorted := slices.Sorted(slices.Values(algs))
		if !slices.Equal(sorted, wantAlgs) {
			t.Errorf("%s_auth_signing_alg_values_supported = %v, want %v (the assertion allow-list)", prefix, sorted, wantAlgs)
		}
	}

	// Every advertised endpoint is really there.
	path := func(k string) string { s, _ := md[k].(string); return strings.TrimPrefix(s, issuer) }
	if resp, b := endpointRequest(t, http.MethodGet, path("jwks_uri"), "", "", "", "", nil); resp.StatusCode != 200 {
		t.Errorf("jwks_uri: %d %s, want 200", resp.StatusCode, b)
	} else if keys, _ := decodeJSON(t, b)["keys"].([]any); len(keys) == 0 {
		t.Errorf("jwks_uri: %s, want a key set with keys", b)
	}
	for _, k := range []string{"token_endpoint", "introspection_endpoint", "revocation_endpoint"} {
		resp, b := endpointRequest(t, http.MethodPost, path(k), "", formType, "", "token=x&grant_type=client_credentials", nil)
		if resp.StatusCode != http.StatusUnauthorized || decodeJSON(t, b)["error"] != "invalid_client" {
			t.Errorf("%s without credentials: %d %s, want 401 invalid_client", k, resp.StatusCode, b)
		}
	}
	// §3: the document is read with GET.
	if resp, _ := endpointRequest(t, http.MethodPost, pathMetadata, "", formType, "", "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", pathMetadata, resp.StatusCode)
	}
	return md
}

func TestMetadataRFC8414(t *testing.T) {
	be := newBackend(t)
	t.Run("without scopes_supported configured", func(t *testing.T) {
		startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
		md := checkMetadata(t)
		if v, ok := md["scopes_supported"]; ok {
			t.Errorf("scopes_supported = %#v, want absent when not configured (RFC 8414 §2: RECOMMENDED, but never invented)", v)
		}
		// The issuer in the metadata is the iss of what the server issues.
		rs := createClient(t, `{"introspect":true}`)
		tok := fetchToken(t, createClient(t, demoClient)).AccessToken
		if iss := activeResponse(t, rs, tok)["iss"]; iss != md["issuer"] {
			t.Errorf("introspection iss %v differs from the metadata issuer %v", iss, md["issuer"])
		}
		_, claims := verifyIdentity(t, identityJWTFor(t, be, tok))
		if claims["iss"] != md["issuer"] {
			t.Errorf("identity JWT iss %v differs from the metadata issuer %v", claims["iss"], md["issuer"])
		}
	})
	t.Run("with scopes_supported configured", func(t *testing.T) {
		startVariant(t, be)
		md := checkMetadata(t)
		if s, ok := strList(md, "scopes_supported"); !ok || !slices.Equal(s, []string{"orders:read", "orders:write"}) {
			t.Errorf("scopes_supported = %#v, want [orders:read orders:write] as configured", md["scopes_supported"])
		}
	})
}

// gatehouse_protect { optional }: anonymous requests pass, without any
// identity (spoofed copies removed); a valid token injects identity; a
// token that is present must be valid and sufficient.
func TestProtectOptional(t *testing.T) {
	be := newBackend(t)
	startVariant(t, be)
	c := createClient(t, demoClient)
	tok := fetchToken(t, c, "orders:read").AccessToken
	spoof := http.Header{
		"X-Identity-Token": {"spoofed"},
		"X_identity_token": {"spoofed-underscore"},
		"X_Identity_Token": {"spoofed-mixed"},
	}

	t.Run("anonymous passes without identity, spoofed or not", func(t *testing.T) {
		resp, body := callAPI(t, apiURL+"/public", "", spoof)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("anonymous request: %d %s, want 200", resp.StatusCode, body)
		}
		for k, v := range be.last(t) {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Identity-Token") {
				t.Errorf("anonymous request: backend got %s: %q; want no identity header at all", k, v)
			}
		}
		if a := be.last(t).Get("Authorization"); a != "" {
			t.Errorf("anonymous request: backend got Authorization %q", a)
		}
	})

	t.Run("a valid token injects identity", func(t *testing.T) {
		resp, body := callAPI(t, apiURL+"/orders", "Bearer "+tok, spoof)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("with a token: %d %s, want 200", resp.StatusCode, body)
		}
		h := be.last(t)
		if got := h.Values("X-Identity-Token"); len(got) != 1 || got[0] == "spoofed" {
			t.Fatalf("backend got X-Identity-Token %q, want exactly the gateway's JWT", got)
		}
		if _, claims := verifyIdentity(t, h.Get("X-Identity-Token")); claims["sub"] != c.ClientID {
			t.Errorf("identity sub %v, want %s", claims["sub"], c.ClientID)
		}
	})

	before := be.count()
	for _, tc := range []struct {
		name, authz string
		status      int
		challenge   string
	}{
		{"an invalid token is refused (RFC 6750 §3.1)", "Bearer not-a-token", 401, `error="invalid_token"`},
		{"an expired token is refused (RFC 6750 §3.1)", "Bearer " + mintExpired(t, c.ClientID), 401, `error="invalid_token"`},
		{"a token without the scope is refused (RFC 6750 §3.1)", "Bearer " + fetchToken(t, c, "orders:write").AccessToken, 403, `error="insufficient_scope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := callAPI(t, apiURL+"/orders", tc.authz, spoof)
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("%d %q (%s), want %d with %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, tc.status, tc.challenge)
			}
		})
	}
	if n := be.count() - before; n != 0 {
		t.Errorf("the backend received %d refused requests", n)
	}
}

// RFC 6750 §2.1 and §3 details on a required route whose identity goes in
// the Authorization header, as Oathkeeper's id_token mutator does it.
func TestProtectBearerRFC6750(t *testing.T) {
	be := newBackend(t)
	startVariant(t, be)
	c := createClient(t, `{"client_name":"orders service","scope":"orders:read orders:write","owner":"team-a"}`)
	tok := fetchToken(t, c, "orders:read").AccessToken
	const route = adminRoute // :9082, header Authorization

	t.Run("§2.1 the scheme is case-insensitive", func(t *testing.T) {
		for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
			if resp, body := callAPI(t, route, scheme+" "+tok, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("scheme %q: %d %s, want 200", scheme, resp.StatusCode, body)
			}
		}
	})

	t.Run("§2.1 header Authorization: the backend gets the identity JWT, never the access token", func(t *testing.T) {
		resp, body := callAPI(t, route+"/orders", "Bearer "+tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s, want 200", resp.StatusCode, body)
		}
		h := be.last(t)
		authz := h.Values("Authorization")
		if len(authz) != 1 || !strings.HasPrefix(authz[0], "Bearer ") {
			t.Fatalf("backend Authorization %q, want exactly one Bearer <identity JWT>", authz)
		}
		jwt := strings.TrimPrefix(authz[0], "Bearer ")
		if jwt == tok {
			t.Fatal("the backend received the access token itself")
		}
		typ, claims := verifyIdentity(t, jwt)
		if typ == "at+jwt" || claims["sub"] != c.ClientID || claims["owner"] != "team-a" {
			t.Errorf("identity JWT typ %q sub %v owner %v; want a non-at+jwt JWT for %s, owner team-a", typ, claims["sub"], claims["owner"], c.ClientID)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, tok) {
					t.Errorf("the access token reached the backend in %s", k)
				}
			}
		}
		// And the identity JWT is no access token.
		if resp, body := callAPI(t, route, "Bearer "+jwt, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the identity JWT replayed as an access token: %d %s, want 401 (RFC 8725 §3.11)", resp.StatusCode, body)
		}
	})

	t.Run("§2.1, §3.1 a token in two Authorization headers is invalid_request", func(t *testing.T) {
		before := be.count()
		for name, values := range map[string][]string{
			"twice the same token":  {"Bearer " + tok, "Bearer " + tok},
			"a token and Basic":     {"Bearer " + tok, "Basic Zm9vOmJhcg=="},
			"a valid and a garbage": {"Bearer garbage", "Bearer " + tok},
		} {
			for _, url := range []string{route, apiURL} {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header["Authorization"] = values
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
					t.Errorf("%s at %s: %d %q, want 400 with error=\"invalid_request\"", name, url, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
		}
		if n := be.count() - before; n != 0 {
			t.Errorf("the backend received %d of these requests", n)
		}
	})

	t.Run("§3 challenges", func(t *testing.T) {
		cases := []struct {
			name, authz string
			status      int
			want, never string
		}{
			{"no credentials: no error code", "", 401, `Bearer`, `error=`},
			{"invalid token", "Bearer not-a-token", 401, `error="invalid_token"`, ``},
			{"insufficient scope names the scope", "Bearer " + fetchToken(t, c, "orders:write").AccessToken, 403, `scope="orders:read"`, ``},
		}
		for _, tc := range cases {
			resp, body := callAPI(t, route, tc.authz, nil)
			ch := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != tc.status || !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, tc.want) || (tc.never != "" && strings.Contains(ch, tc.never)) {
				t.Errorf("%s: %d %q (%s), want %d with a Bearer challenge containing %q", tc.name, resp.StatusCode, ch, body, tc.status, tc.want)
			}
		}
	})
}
