package caddymodule

// End-to-end tests: a real Caddy started in-process (caddytest), a real
// OAuth client (golang.org/x/oauth2/clientcredentials) and a backend that
// verifies the identity JWT against the served JWKS. caddytest's admin
// endpoint is process-global, so these tests run one after another.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	adminURL   = "http://localhost:2999"
	authURL    = "http://localhost:9080"
	apiURL     = "http://localhost:9081"
	adminRoute = "http://localhost:9082" // requires a scope nobody has
)

// backend records what reached it.
type backend struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.headers = append(b.headers, r.Header.Clone())
		b.mu.Unlock()
		io.WriteString(w, "backend ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) last(t *testing.T) http.Header {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.headers) == 0 {
		t.Fatal("the backend received no request")
	}
	return b.headers[len(b.headers)-1]
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.headers)
}

// testServerOptions are the global options every in-process test config
// starts with: the test admin endpoint and ports, no shutdown grace.
const testServerOptions = "\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n\tgrace_period 1ns\n"

func gatewayConfig(dbPath, backendAddr, identityTTL string) string {
	return fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
		token_ttl 1h
		identity_ttl %s
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9081 {
	gatehouse_protect {
		scope orders:read
		audience http://localhost:9081
	}
	reverse_proxy %s {
		header_up X-Client-Owner {gatehouse.owner}
		header_up X-Realm {gatehouse.metadata.realm.id}
	}
}
http://localhost:9082 {
	gatehouse_protect {
		scope orders:admin
	}
	reverse_proxy %s
}
`, dbPath, identityTTL, backendAddr, backendAddr)
}

// startGateway loads the gateway config into the in-process Caddy; a test
// whose gateway did not start stops here.
func startGateway(t *testing.T, dbPath, backendAddr string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(dbPath, backendAddr, "5m"), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// newGateway starts the demo gateway (gatewayConfig) on a fresh store in
// front of a new echo backend, and returns the backend and the store's
// path.
func newGateway(t *testing.T) (*backend, string) {
	t.Helper()
	be := newBackend(t)
	db := filepath.Join(t.TempDir(), "gatehouse.db")
	startGateway(t, db, be.Listener.Addr().String())
	return be, db
}

// stopGatehouse loads a config without Gatehouse, so the app stops and the
// store at dbPath must be closed with its lock released.
func stopGatehouse(t *testing.T, dbPath string) {
	t.Helper()
	caddytest.NewTester(t).InitServer("{\n"+testServerOptions+`}
http://localhost:9080 {
	respond "no gatehouse"
}`, "caddyfile")
	st, err := clientstore.OpenBolt(dbPath, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("bbolt file still locked after Gatehouse stopped: %v", err)
	}
	st.Close()
}

type createdClientJSON struct {
	ClientID     string         `json:"client_id"`
	ClientSecret string         `json:"client_secret"`
	Owner        string         `json:"owner"`
	Metadata     map[string]any `json:"metadata"`
}

func adminDo(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func createClient(t *testing.T, body string) createdClientJSON {
	t.Helper()
	resp, b := adminDo(t, http.MethodPost, "/gatehouse/clients", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create client: status %d, body %s; want 201", resp.StatusCode, b)
	}
	var c createdClientJSON
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret == "" {
		t.Fatalf("create response has no client_secret: %s", b)
	}
	return c
}

const demoClient = `{"client_name":"orders service","scope":"orders:read orders:write",
	"audience":["http://localhost:9081"],"owner":"team-a",
	"metadata":{"realm":{"id":"r-42"},"tier":"gold"}}`

func fetchToken(t *testing.T, c createdClientJSON, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		TokenURL:     authURL + pathToken,
		Scopes:       scopes,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials token: %v", err)
	}
	return tok
}

func callAPI(t *testing.T, url, authorization string, extra http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range extra {
		req.Header[k] = v
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// verifyIdentity checks the JWT's signature against the gateway's JWKS the
// way a backend would, and returns its header type and claims.
func verifyIdentity(t *testing.T, jwt string) (string, map[string]any) {
	t.Helper()
	resp, err := http.Get(authURL + pathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decoding JWKS: %v", err)
	}
	jws, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("identity JWT does not parse as ES256 JWS: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys for kid %q, want 1", len(keys), kid)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("identity JWT signature does not verify against the JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	typ, _ := jws.Signatures[0].Header.ExtraHeaders["typ"].(string)
	return typ, claims
}

func runningGatehouse(t *testing.T) *App {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("gatehouse")
	if err != nil {
		t.Fatalf("gatehouse app not running: %v", err)
	}
	return app.(*App)
}

func TestEndToEnd(t *testing.T) {
	be, db := newGateway(t)

	client := createClient(t, demoClient)
	tok := fetchToken(t, client, "orders:read")
	if tok.TokenType != "Bearer" || !strings.HasPrefix(tok.AccessToken, introspection.TokenPrefix) {
		t.Fatalf("token type %q, token prefix %.4q; want Bearer and %q", tok.TokenType, tok.AccessToken, introspection.TokenPrefix)
	}
	bearer := "Bearer " + tok.AccessToken

	t.Run("identity reaches the backend, spoofed copies do not", func(t *testing.T) {
		spoof := http.Header{
			"X-Identity-Token": {"spoofed"},
			"X_identity_token": {"spoofed-underscore"},
			"X-Client-Owner":   {"spoofed-owner"},
		}
		resp, body := callAPI(t, apiURL+"/orders", bearer, spoof)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("protected call: %d %s, want 200", resp.StatusCode, body)
		}
		h := be.last(t)
		if got := h.Values("X-Identity-Token"); len(got) != 1 || got[0] == "spoofed" {
			t.Fatalf("backend got X-Identity-Token %q, want exactly one gateway-made JWT", got)
		}
		for k, v := range h {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Identity-Token") && k != "X-Identity-Token" {
				t.Errorf("spoofed header variant %q = %q reached the backend", k, v)
			}
		}
		if got := h.Get("X-Client-Owner"); got != "team-a" {
			t.Errorf("{gatehouse.owner} placeholder: backend got %q, want team-a", got)
		}
		if got := h.Get("X-Realm"); got != "r-42" {
			t.Errorf("{gatehouse.metadata.realm.id} placeholder: backend got %q, want r-42", got)
		}
		typ, claims := verifyIdentity(t, h.Get("X-Identity-Token"))
		if typ == "at+jwt" {
			t.Errorf("identity JWT typ is at+jwt; it must not look like an RFC 9068 access token")
		}
		want := map[string]any{
			"iss": "http://localhost:9080", "sub": client.ClientID, "client_id": client.ClientID,
			"aud": "http://localhost:9081", "scope": "orders:read", "owner": "team-a",
		}
		for k, v := range want {
			if claims[k] != v {
				t.Errorf("claim %s = %v, want %v", k, claims[k], v)
			}
		}
		ext, _ := claims["ext"].(map[string]any)
		realm, _ := ext["realm"].(map[string]any)
		if realm["id"] != "r-42" || ext["tier"] != "gold" {
			t.Errorf("claim ext = %v, want the client's metadata", claims["ext"])
		}
		iat, _ := claims["iat"].(float64)
		exp, _ := claims["exp"].(float64)
		if exp-iat != 300 {
			t.Errorf("exp - iat = %v, want identity_ttl 300s", exp-iat)
		}
		for _, k := range []string{"jti", "nbf"} {
			if _, ok := claims[k]; !ok {
				t.Errorf("claim %s missing", k)
			}
		}
	})

	t.Run("RFC 6750 §3 refusals", func(t *testing.T) {
		tampered := []byte(tok.AccessToken)
		i := len(tampered) / 2
		if tampered[i] == 'A' {
			tampered[i] = 'B'
		} else {
			tampered[i] = 'A'
		}
		expired := mintExpired(t, client.ClientID)
		before := be.count()
		cases := []struct {
			name, url, authz string
			status           int
			challenge        string
		}{
			{"no credentials", apiURL, "", 401, `Bearer realm="gatehouse"`},
			{"garbage token", apiURL, "Bearer not-a-token", 401, `error="invalid_token"`},
			{"tampered token", apiURL, "Bearer " + string(tampered), 401, `error="invalid_token"`},
			{"expired token", apiURL, "Bearer " + expired, 401, `error="invalid_token"`},
			{"other scheme", apiURL, "Basic Zm9vOmJhcg==", 401, `error="invalid_token"`},
			{"token in two places", apiURL + "?access_token=x", bearer, 400, `error="invalid_request"`},
			{"missing scope", adminRoute, bearer, 403, `error="insufficient_scope"`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := callAPI(t, tc.url, tc.authz, http.Header{"X-Identity-Token": {"spoofed"}})
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
				}
				if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tc.challenge) {
					t.Errorf("WWW-Authenticate %q, want it to contain %q", ch, tc.challenge)
				}
			})
		}
		resp, _ := callAPI(t, adminRoute, bearer, nil)
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="orders:admin"`) {
			t.Errorf("403 challenge %q, want scope=\"orders:admin\" (RFC 6750 §3)", ch)
		}
		if n := be.count(); n != before {
			t.Errorf("the backend got %d refused requests, want none", n-before)
		}
	})

	t.Run("audience mismatch is 403", func(t *testing.T) {
		other := createClient(t, `{"scope":"orders:read","audience":["https://elsewhere.example"]}`)
		tok := fetchToken(t, other)
		resp, body := callAPI(t, apiURL, "Bearer "+tok.AccessToken, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("token for another audience: %d %s, want 403", resp.StatusCode, body)
		}
	})

	t.Run("disabled and deleted clients lose their tokens at once", func(t *testing.T) {
		c := createClient(t, demoClient)
		tok := fetchToken(t, c)
		if resp, _ := callAPI(t, apiURL, "Bearer "+tok.AccessToken, nil); resp.StatusCode != 200 {
			t.Fatalf("fresh token: %d, want 200", resp.StatusCode)
		}
		body := strings.Replace(demoClient, `"owner"`, `"disabled":true,"owner"`, 1)
		if resp, b := adminDo(t, http.MethodPut, "/gatehouse/clients/"+c.ClientID, body); resp.StatusCode != 200 {
			t.Fatalf("disable: %d %s", resp.StatusCode, b)
		}
		if resp, _ := callAPI(t, apiURL, "Bearer "+tok.AccessToken, nil); resp.StatusCode != 401 {
			t.Errorf("token of a disabled client: %d, want 401", resp.StatusCode)
		}
		if resp, b := adminDo(t, http.MethodDelete, "/gatehouse/clients/"+c.ClientID, ""); resp.StatusCode != 204 {
			t.Fatalf("delete: %d %s", resp.StatusCode, b)
		}
		if resp, _ := callAPI(t, apiURL, "Bearer "+tok.AccessToken, nil); resp.StatusCode != 401 {
			t.Errorf("token of a deleted client: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("metadata change shows in the next identity JWT", func(t *testing.T) {
		body := strings.Replace(demoClient, `"gold"`, `"platinum"`, 1)
		if resp, b := adminDo(t, http.MethodPut, "/gatehouse/clients/"+client.ClientID, body); resp.StatusCode != 200 {
			t.Fatalf("update: %d %s", resp.StatusCode, b)
		}
		callAPI(t, apiURL, bearer, nil)
		_, claims := verifyIdentity(t, be.last(t).Get("X-Identity-Token"))
		if ext, _ := claims["ext"].(map[string]any); ext["tier"] != "platinum" {
			t.Errorf("ext after metadata update = %v, want tier platinum", claims["ext"])
		}
	})

	t.Run("config reload keeps clients and tokens", func(t *testing.T) {
		tester := caddytest.NewTester(t)
		tester.InitServer(gatewayConfig(db, be.Listener.Addr().String(), "4m"), "caddyfile")
		if resp, body := callAPI(t, apiURL, bearer, nil); resp.StatusCode != 200 {
			t.Fatalf("after reload: %d %s, want 200", resp.StatusCode, body)
		}
		fetchToken(t, client)
	})

	t.Run("restart with the same bbolt file keeps clients and tokens", func(t *testing.T) {
		// Stop Gatehouse entirely: the store must be closed and its lock
		// released, or the next open would time out.
		stopGatehouse(t, db)

		startGateway(t, db, be.Listener.Addr().String())
		if resp, body := callAPI(t, apiURL, bearer, nil); resp.StatusCode != 200 {
			t.Fatalf("token from before the restart: %d %s, want 200", resp.StatusCode, body)
		}
		fetchToken(t, client)
	})
}

// mintExpired seals a token for clientID that expired an hour ago, with the
// running gateway's own keys.
func mintExpired(t *testing.T, clientID string) string {
	t.Helper()
	app := runningGatehouse(t)
	c, ok := app.auth.Clients().Get(clientID)
	if !ok {
		t.Fatalf("client %s not in the cache", clientID)
	}
	past := time.Now().Add(-2 * time.Hour)
	tok, err := app.state.sealer.Seal(&introspection.Claims{
		ClientID: c.ID, Generation: c.Generation, Scope: c.Scope, Audience: c.Audience,
		IssuedAt: past.Unix(), ExpiresAt: past.Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// postToken sends a raw token request.
func postToken(t *testing.T, url, contentType, body string, basic *[2]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}
