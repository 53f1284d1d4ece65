package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Oathkeeper's default scope_strategy "none" sends the rule's required
// scopes as `scope` and relies on the server to answer inactive when the
// token lacks one, as Hydra does.
func TestIntrospectionScopeParameter(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	ok := createClient(t, `{"client_name":"oathkeeper","introspect":true}`)
	holder := createClient(t, demoClient)
	tok := fetchToken(t, holder, "orders:read").AccessToken
	r := oathkeeperRule{RequiredScope: []string{"orders:admin"}, ScopeStrategy: "none"}
	if s, err := oathkeeperAuthenticate(t, r, ok, tok); err == nil {
		t.Fatalf("Oathkeeper (scope_strategy none) admits a token without orders:admin as %s", s.Subject)
	}
	r.RequiredScope = []string{"orders:read"}
	if _, err := oathkeeperAuthenticate(t, r, ok, tok); err != nil {
		t.Fatalf("Oathkeeper (scope_strategy none) refuses a token that has orders:read: %v", err)
	}
}

// RFC 8414 §3.1: with an issuer that has a path, the metadata lives at
// /.well-known/oauth-authorization-server<path>, and the endpoints it
// advertises under the issuer's path answer.
func TestIssuerWithPath(t *testing.T) {
	cfg := fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080/tenant
	}
}
http://localhost:9080 {
	route {
		gatehouse_server
		respond "fell through" 404
	}
}
`, filepath.Join(t.TempDir(), "g.db"))
	caddytest.NewTester(t).InitServer(cfg, "caddyfile")
	resp, b := endpointRequest(t, http.MethodGet, "/.well-known/oauth-authorization-server/tenant", "", "", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /.well-known/oauth-authorization-server/tenant: %d %s, want 200", resp.StatusCode, b)
	}
	var md map[string]any
	if err := json.Unmarshal(b, &md); err != nil || md["issuer"] != "http://localhost:9080/tenant" {
		t.Fatalf("metadata issuer = %v (%v), want http://localhost:9080/tenant", md["issuer"], err)
	}
	if md["token_endpoint"] != "http://localhost:9080/tenant/oauth2/token" {
		t.Errorf("token_endpoint = %v", md["token_endpoint"])
	}
	resp, b = endpointRequest(t, http.MethodPost, "/tenant/oauth2/token", "", formType, "", "grant_type=client_credentials", nil)
	if resp.StatusCode != http.StatusUnauthorized || jsonField(b, "error") != "invalid_client" {
		t.Errorf("POST /tenant/oauth2/token without credentials: %d %s, want 401 invalid_client from the token endpoint", resp.StatusCode, b)
	}
	resp, b = endpointRequest(t, http.MethodGet, "/tenant/.well-known/jwks.json", "", "", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /tenant/.well-known/jwks.json: %d %s", resp.StatusCode, b)
	}
}

// A handler after gatehouse_protect that edits header values in place
// (request_header with a regex) must not write into the cached identity: the
// same token must give the backend the same header every time.
func TestCachedIdentityNotMutatedByLaterHandlers(t *testing.T) {
	be := newBackend(t)
	cfg := fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9081 {
	gatehouse_protect {
		scope orders:read
	}
	request_header X-Identity-Token "$" ".x"
	reverse_proxy %s
}
`, filepath.Join(t.TempDir(), "g.db"), be.Listener.Addr().String())
	caddytest.NewTester(t).InitServer(cfg, "caddyfile")
	c := createClient(t, demoClient)
	tok := fetchToken(t, c).AccessToken
	var got []string
	for range 4 { // the identity is signed once, then served from the cache
		if resp, body := callAPI(t, apiURL, "Bearer "+tok, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("protected call: %d %s", resp.StatusCode, body)
		}
		got = append(got, be.last(t).Get("X-Identity-Token"))
	}
	for i, v := range got {
		if !strings.HasSuffix(v, ".x") || strings.HasSuffix(v, ".x.x") {
			t.Errorf("request %d: identity header ends %q, want the JWT with exactly one .x appended", i+1, v[max(0, len(v)-8):])
		}
	}
	if got[1] != got[3] {
		t.Errorf("the same token gave the backend different identity headers on requests 2 and 4")
	}
}

// Introspection credentials in the URL (query or user info, perhaps from an
// {env.…} placeholder) reach neither a log line nor an error.
func TestIntrospectionURLSecretsStayOutOfLogsAndErrors(t *testing.T) {
	g := newBenchGateway(t)
	core, logs := observer.New(zapcore.DebugLevel)
	p := &Protect{Introspect: &Introspect{URL: "http://hydra.internal:4445/introspect?api_key=SUPERSECRETKEY",
		ClientID: "gw", ClientSecret: "s"}}
	if err := p.setup(g.app, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	defer p.Cleanup()
	if len(logs.All()) == 0 {
		t.Fatal("no warning about credentials over plain http")
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "SUPERSECRETKEY") {
			t.Errorf("log line carries the URL's query: %s %v", e.Message, e.ContextMap())
		}
	}
	t.Setenv("GATEHOUSE_TEST_HYDRA_URL", "https://gw:VerySecretPassw0rd@hydra.internal/introspect")
	p = &Protect{Introspect: &Introspect{URL: "{env.GATEHOUSE_TEST_HYDRA_URL}"}}
	err := p.setup(g.app, zap.NewNop())
	if err == nil {
		t.Fatal("an introspection URL with user info was accepted")
	}
	if strings.Contains(err.Error(), "VerySecretPassw0rd") {
		t.Errorf("provisioning error carries the URL's password: %v", err)
	}
}

// RFC 6750 §2: a token in the query besides the header is refused however
// the parameter name is spelt in the query string.
func TestQueryTokenAnySpelling(t *testing.T) {
	g := newBenchGateway(t)
	p := g.protect(t)
	tok := g.token(t)
	for _, q := range []string{"access_token=other", "access%5Ftoken=other", "access_%74oken=other"} {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders?"+q, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		reached := false
		p.ServeHTTP(w, prepared(r, w), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			reached = true
			return nil
		}))
		if w.Code != http.StatusBadRequest || reached {
			t.Errorf("?%s: status %d, backend reached %v; want 400 invalid_request and no backend", q, w.Code, reached)
		}
	}
}

// Brute-force state is the gateway's, not one config generation's: a
// `caddy reload` does not give a blocked address a fresh budget.
func TestLimiterSurvivesReload(t *testing.T) {
	be, db := newGateway(t)
	c := createClient(t, demoClient)
	wrong := &[2]string{c.ClientID, "wrong"}
	status := 0
	for range 30 {
		resp, _ := postToken(t, authURL+pathToken, formType, "grant_type=client_credentials", wrong)
		status = resp.StatusCode
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("after 30 failures: %d, want 429", status)
	}
	caddytest.NewTester(t).InitServer(gatewayConfig(db, be.Listener.Addr().String(), "4m"), "caddyfile")
	if resp, _ := postToken(t, authURL+pathToken, formType, "grant_type=client_credentials", wrong); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right after a reload: %d, want still 429", resp.StatusCode)
	}
}
