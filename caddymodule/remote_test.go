package caddymodule

// gatehouse_protect fronting another authorization server: a fake RFC 7662
// introspection server (httptest) that counts calls and can hang or go
// away; handler tests without Caddy; the Caddyfile syntax and its errors;
// and an end-to-end test with the in-process Caddy in which the backend
// verifies the identity JWT against Gatehouse's JWKS.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// fakeIntrospection is an RFC 7662 endpoint: it answers registered tokens,
// {"active":false} for others, checks the caller's Basic credentials if
// set, and hangs while hang is set.
type fakeIntrospection struct {
	*httptest.Server
	calls     atomic.Int64
	mu        sync.Mutex
	answers   map[string]map[string]any
	basicUser string
	basicPass string
	hang      bool
	release   chan struct{}
}

func newFakeIntrospection(t testing.TB) *fakeIntrospection {
	f := &fakeIntrospection{answers: map[string]map[string]any{}, release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		hang, release, user, pass := f.hang, f.release, f.basicUser, f.basicPass
		f.mu.Unlock()
		if hang {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
		u, p, _ := r.BasicAuth()
		u, _ = url.QueryUnescape(u)
		p, _ = url.QueryUnescape(p)
		if user != "" && (u != user || p != pass) {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		ans, ok := f.answers[r.PostForm.Get("token")]
		f.mu.Unlock()
		if !ok {
			ans = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(func() {
		f.setHang(false)
		f.Close()
	})
	return f
}

func (f *fakeIntrospection) answer(token string, ans map[string]any) {
	f.mu.Lock()
	f.answers[token] = ans
	f.mu.Unlock()
}

func (f *fakeIntrospection) setHang(hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang && !hang {
		close(f.release)
		f.release = make(chan struct{})
	}
	f.hang = hang
}

const fakeIssuer = "https://hydra.example.com/"

// hydraAnswer is Hydra's answer for an active client_credentials token of
// clientID, valid for an hour, for audience aud.
func hydraAnswer(clientID, scope, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"active": true, "client_id": clientID, "sub": clientID, "scope": scope,
		"aud": []string{aud}, "iss": fakeIssuer, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "token_type": "Bearer", "token_use": "access_token",
		"ext": map[string]any{"realm": map[string]any{"id": "r-remote"}},
	}
}

// remoteProtect is a gatehouse_protect on g's app fronting f.
func (g *benchGateway) remoteProtect(t testing.TB, f *fakeIntrospection, edit func(*Protect)) *Protect {
	t.Helper()
	p := &Protect{Scopes: []string{"orders:read"}, Audience: "https://api.example.com",
		Introspect: &Introspect{URL: f.URL, TrustedIssuers: []string{fakeIssuer}, Timeout: caddy.Duration(300 * time.Millisecond)}}
	if edit != nil {
		edit(p)
	}
	if err := p.setup(g.app, zap.NewNop()); err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Cleanup(func() { p.Cleanup() })
	return p
}

// serve runs one request through p and returns the response, whether the
// next handler (the backend) was reached, and the request headers as the
// backend would get them.
func serve(t *testing.T, p *Protect, authz string, spoof http.Header) (*httptest.ResponseRecorder, bool, http.Header) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders", nil)
	for k, v := range spoof {
		r.Header[k] = v
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	var reached bool
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		reached = true
		return nil
	})
	if err := p.ServeHTTP(w, prepared(r, w), next); err != nil {
		t.Fatalf("ServeHTTP returned %v, want the handler to answer itself", err)
	}
	return w, reached, r.Header
}

var spoofed = http.Header{"X-Identity-Token": {"spoofed"}, "X_identity_token": {"spoofed-underscore"}}

// noSpoofLeft fails if any copy of the identity header is a spoofed one.
func noSpoofLeft(t *testing.T, h http.Header) {
	t.Helper()
	for k, v := range h {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Identity-Token") {
			for _, s := range v {
				if strings.HasPrefix(s, "spoofed") {
					t.Errorf("spoofed %s: %q survived", k, s)
				}
			}
		}
	}
}

// The remote path: valid tokens pass with a Gatehouse identity JWT and no
// spoofed header; invalid ones are 401, missing scope 403; spoofed
// headers are stripped on every outcome (GHSA-7r4p-vjf4-gxv4).
func TestProtectRemoteOutcomes(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	f.answer("ory_at_good", hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	f.answer("ory_at_noscope", hydraAnswer("svc-hydra", "orders:write", "https://api.example.com"))
	idToken := hydraAnswer("svc-hydra", "orders:read", "https://api.example.com")
	idToken["token_use"] = "id_token"
	f.answer("ory_at_id_token", idToken)
	evil := hydraAnswer("svc-hydra", "orders:read", "https://api.example.com")
	evil["iss"] = "https://evil.example.com/"
	f.answer("ory_at_evil", evil)
	p := g.remoteProtect(t, f, nil)

	cases := []struct {
		name, authz string
		status      int
		challenge   string
	}{
		{"active token", "Bearer ory_at_good", 200, ""},
		{"inactive token", "Bearer ory_at_unknown", 401, `error="invalid_token"`},
		{"token_use id_token", "Bearer ory_at_id_token", 401, `error="invalid_token"`},
		{"untrusted issuer", "Bearer ory_at_evil", 401, `error="invalid_token"`},
		{"missing scope", "Bearer ory_at_noscope", 403, `error="insufficient_scope"`},
		{"no token", "", 401, `Bearer realm="gatehouse"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, reached, h := serve(t, p, tc.authz, spoofed)
			if w.Code != tc.status || reached != (tc.status == 200) {
				t.Fatalf("status %d (backend reached: %v), want %d", w.Code, reached, tc.status)
			}
			if ch := w.Header().Get("WWW-Authenticate"); !strings.Contains(ch, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", ch, tc.challenge)
			}
			noSpoofLeft(t, h)
			if tc.status == 200 && len(h.Values("X-Identity-Token")) != 1 {
				t.Errorf("identity header %q, want exactly the gateway's JWT", h.Values("X-Identity-Token"))
			}
		})
	}
	before := f.calls.Load()
	for range 5 {
		serve(t, p, "Bearer ory_at_good", nil)
		serve(t, p, "Bearer ory_at_noscope", nil) // the policy runs on every hit
	}
	if n := f.calls.Load() - before; n != 0 {
		t.Errorf("%d upstream calls for cached tokens, want 0", n)
	}
	if w, _, _ := serve(t, p, "Bearer ory_at_noscope", nil); w.Code != 403 {
		t.Errorf("cached token without the scope: %d, want 403", w.Code)
	}
}

// Gatehouse's own tokens on a route with introspect are checked locally:
// never sent upstream, and refused locally when bad.
func TestProtectRemoteKeepsOwnTokensLocal(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	p := g.remoteProtect(t, f, nil)
	tok := g.token(t)
	if w, _, _ := serve(t, p, "Bearer "+tok, nil); w.Code != 200 {
		t.Fatalf("own token: %d, want 200", w.Code)
	}
	if w, _, _ := serve(t, p, "Bearer "+tok[:len(tok)-2]+"AA", nil); w.Code != 401 {
		t.Fatalf("tampered own token: %d, want 401", w.Code)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d upstream calls for Gatehouse's own tokens, want 0", n)
	}
}

// The introspection server hanging or gone: 503 (not 401: the client
// should retry the same token) with Retry-After, within the timeout; the
// breaker then answers at once, with the rest of its cool-down.
func TestProtectRemoteFailsClosedWith503(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	f.setHang(true)
	p := g.remoteProtect(t, f, func(p *Protect) {
		p.Introspect.BreakerFailures = 2
		p.Introspect.BreakerCooldown = caddy.Duration(30 * time.Second)
	})
	for i := range 4 {
		start := time.Now()
		w, reached, h := serve(t, p, fmt.Sprintf("Bearer ory_at_new_%d", i), spoofed)
		elapsed := time.Since(start)
		if w.Code != http.StatusServiceUnavailable || reached {
			t.Fatalf("request %d: status %d (backend reached: %v), want 503", i, w.Code, reached)
		}
		retry, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil || retry < 1 || retry > 30 {
			t.Errorf("request %d: Retry-After %q, want 1..30 seconds", i, w.Header().Get("Retry-After"))
		}
		if i >= 2 && retry < 20 {
			t.Errorf("request %d with the breaker open: Retry-After %d, want about the 30 s cool-down", i, retry)
		}
		var body map[string]string
		if json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] != "temporarily_unavailable" {
			t.Errorf("body %s, want error temporarily_unavailable", w.Body)
		}
		if elapsed > 300*time.Millisecond+time.Second {
			t.Errorf("request %d took %v, want it within the 300ms timeout", i, elapsed)
		}
		noSpoofLeft(t, h)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d upstream calls, want 2: none once the breaker opened", n)
	}
}

// Routes with the same introspect settings share one client (and cache);
// the last Cleanup releases it.
func TestProtectSharesIntrospector(t *testing.T) {
	g := newBenchGateway(t)
	f := newFakeIntrospection(t)
	f.answer("ory_at_shared", hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	a := g.remoteProtect(t, f, nil)
	b := g.remoteProtect(t, f, nil)
	other := g.remoteProtect(t, f, func(p *Protect) { p.Introspect.CacheTTL = caddy.Duration(time.Second) })
	if a.poolKey != b.poolKey || a.poolKey == other.poolKey {
		t.Fatalf("pool keys %.8s %.8s %.8s: want the first two equal, the third different", a.poolKey, b.poolKey, other.poolKey)
	}
	serve(t, a, "Bearer ory_at_shared", nil)
	serve(t, b, "Bearer ory_at_shared", nil)
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d upstream calls from two routes sharing a client, want 1", n)
	}
	if refs, ok := introspectors.References(a.poolKey); !ok || refs != 2 {
		t.Errorf("references %d, %v; want 2", refs, ok)
	}
	a.Cleanup()
	b.Cleanup()
	if _, ok := introspectors.References(b.poolKey); ok {
		t.Error("the shared client outlived its last route")
	}
	if strings.Contains(a.poolKey, "ory_at") {
		t.Error("pool key holds a token")
	}
}

// Provisioning refuses what cannot work, naming the problem.
func TestProtectRemoteSetupErrors(t *testing.T) {
	g := newBenchGateway(t)
	t.Setenv("GATEHOUSE_TEST_INTROSPECT_URL", "ftp://nope")
	cases := []struct {
		name string
		p    Protect
		msg  string
	}{
		{"enrich without introspect", Protect{Enrich: "local_wins"}, "set introspect"},
		{"unknown enrich", Protect{Enrich: "both", Introspect: &Introspect{URL: "https://h/i"}}, "enrich must be"},
		{"no URL", Protect{Introspect: &Introspect{}}, "http(s) URL"},
		{"URL from the environment", Protect{Introspect: &Introspect{URL: "{env.GATEHOUSE_TEST_INTROSPECT_URL}"}}, `"ftp://nope"`},
		{"bearer and client", Protect{Introspect: &Introspect{URL: "https://h/i", Bearer: "b", ClientID: "c"}}, "not both"},
		{"secret from an unset variable", Protect{Introspect: &Introspect{URL: "https://h/i", ClientID: "c",
			ClientSecret: "{env.GATEHOUSE_TEST_UNSET_SECRET}"}}, "unset environment variable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.setup(g.app, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "gatehouse_protect") {
				t.Errorf("setup: %v, want a gatehouse_protect error containing %q", err, tc.msg)
			}
		})
	}
}

// Caddyfile errors of introspect and enrich name the offending line.
func TestRemoteCaddyfileErrors(t *testing.T) {
	site := func(lines ...string) string {
		return ":8081 {\n\tgatehouse_protect {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}\n}\n"
	}
	cases := []struct {
		name, caddyfile string
		line, msg       string
	}{
		{"introspect without URL", site("introspect"), "Caddyfile:3", "wrong argument count"},
		{"relative URL", site("introspect /oauth2/introspect"), "Caddyfile:3", "not an absolute http(s) URL"},
		{"URL with user info", site("introspect https://u:p@hydra/i"), "Caddyfile:3", "without user info"},
		{"two URLs", site("introspect https://a/i https://b/i"), "Caddyfile:3", "wrong argument count"},
		{"unknown option", site("introspect https://h/i {", "\tcache 30s", "}"), "Caddyfile:4", `unrecognized option "cache"`},
		{"bad duration", site("introspect https://h/i {", "\tcache_ttl soon", "}"), "Caddyfile:4", "cache_ttl"},
		{"zero timeout", site("introspect https://h/i {", "\ttimeout 0s", "}"), "Caddyfile:4", "positive duration"},
		{"bearer after client_id", site("introspect https://h/i {", "\tclient_id gw", "\tbearer t", "}"), "Caddyfile:5", "not both"},
		{"client_id after bearer", site("introspect https://h/i {", "\tbearer t", "\tclient_id gw", "}"), "Caddyfile:5", "not both"},
		{"secret without id", site("introspect https://h/i {", "\tclient_secret s", "}"), "Caddyfile:5", "client_secret without client_id"},
		{"unknown auth_method", site("introspect https://h/i {", "\tclient_id gw", "\tauth_method private_key_jwt", "}"), "Caddyfile:5", "auth_method"},
		{"trusted_issuers empty", site("introspect https://h/i {", "\ttrusted_issuers", "}"), "Caddyfile:4", "wrong argument count"},
		{"bad cache_bytes", site("introspect https://h/i {", "\tcache_bytes lots", "}"), "Caddyfile:4", "cache_bytes"},
		{"bad breaker_failures", site("introspect https://h/i {", "\tbreaker_failures -1", "}"), "Caddyfile:4", "breaker_failures"},
		{"zero max_concurrent", site("introspect https://h/i {", "\tmax_concurrent 0", "}"), "Caddyfile:4", "max_concurrent"},
		{"queue_size off", site("introspect https://h/i {", "\tqueue_size off", "}"), "Caddyfile:4", "queue_size"},
		{"zero queue_timeout", site("introspect https://h/i {", "\tqueue_timeout 0s", "}"), "Caddyfile:4", "positive duration"},
		{"bad address_miss_rate", site("introspect https://h/i {", "\taddress_miss_rate 20/s", "}"), "Caddyfile:4", "address_miss_rate"},
		{"negative address_miss_rate", site("introspect https://h/i {", "\taddress_miss_rate -1", "}"), "Caddyfile:4", "address_miss_rate"},
		{"address_miss_burst off", site("introspect https://h/i {", "\taddress_miss_burst off", "}"), "Caddyfile:4", "address_miss_burst"},
		{"introspect twice", site("introspect https://h/i", "introspect https://h/j"), "Caddyfile:4", "twice"},
		{"unknown enrich", site("introspect https://h/i", "enrich merge"), "Caddyfile:4", "enrich"},
		{"enrich without introspect", site("enrich off"), "Caddyfile:", "add introspect"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := adapter.Adapt([]byte(tc.caddyfile), nil)
			if err == nil {
				t.Fatalf("adapted to %s without error, want one at %s containing %q", out, tc.line, tc.msg)
			}
			if !strings.Contains(err.Error(), tc.line) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to name %s and contain %q", err, tc.line, tc.msg)
			}
		})
	}
}

// remoteGatewayConfig: the authorization server on :9080 (JWKS), and on
// :9084 a route that introspects at fake with Basic credentials from the
// environment and enriches with local records.
func remoteGatewayConfig(dbPath, backendAddr, fakeURL string) string {
	return fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9084 {
	gatehouse_protect {
		introspect %s {
			client_id     gateway
			client_secret {env.GATEHOUSE_TEST_GW_SECRET}
			cache_ttl     30s
			negative_ttl  5s
			timeout       500ms
			trusted_issuers %s
		}
		scope orders:read
		audience http://localhost:9084
	}
	reverse_proxy %s {
		header_up X-Realm {gatehouse.metadata.realm.id}
		header_up X-Client-Owner {gatehouse.owner}
	}
}
`, dbPath, fakeURL, fakeIssuer, backendAddr)
}

const remoteAPI = "http://localhost:9084"

func TestRemoteEndToEnd(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_GW_SECRET", "s3cret+/=")
	be := newBackend(t)
	f := newFakeIntrospection(t)
	f.basicUser, f.basicPass = "gateway", "s3cret+/="
	f.answer("ory_at_e2e", hydraAnswer("svc-hydra", "orders:read", remoteAPI))
	db := filepath.Join(t.TempDir(), "gatehouse.db")
	tester := caddytest.NewTester(t)
	tester.InitServer(remoteGatewayConfig(db, be.Listener.Addr().String(), f.URL), "caddyfile")

	// The local record of the same client_id: operator-set, trusted.
	createClient(t, `{"client_id":"svc-hydra","scope":"orders:read","owner":"team-h","metadata":{"tier":"gold"}}`)

	t.Run("remote token, identity JWT verified against the JWKS", func(t *testing.T) {
		resp, body := callAPI(t, remoteAPI+"/orders", "Bearer ory_at_e2e", spoofed)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s, want 200", resp.StatusCode, body)
		}
		h := be.last(t)
		noSpoofLeft(t, h)
		typ, claims := verifyIdentity(t, h.Get("X-Identity-Token"))
		if typ == "at+jwt" {
			t.Error("identity JWT typ is at+jwt")
		}
		want := map[string]any{"iss": "http://localhost:9080", "sub": "svc-hydra", "client_id": "svc-hydra",
			"aud": remoteAPI, "scope": "orders:read", "owner": "team-h"}
		for k, v := range want {
			if claims[k] != v {
				t.Errorf("claim %s = %v, want %v", k, claims[k], v)
			}
		}
		ext, _ := claims["ext"].(map[string]any)
		realm, _ := ext["realm"].(map[string]any)
		if realm["id"] != "r-remote" || ext["tier"] != "gold" {
			t.Errorf("ext = %v, want the remote ext merged with the local metadata", claims["ext"])
		}
		if h.Get("X-Realm") != "r-remote" || h.Get("X-Client-Owner") != "team-h" {
			t.Errorf("placeholders: X-Realm %q X-Client-Owner %q, want r-remote and team-h", h.Get("X-Realm"), h.Get("X-Client-Owner"))
		}
	})

	t.Run("cached: no second upstream call", func(t *testing.T) {
		before := f.calls.Load()
		for range 3 {
			if resp, body := callAPI(t, remoteAPI, "Bearer ory_at_e2e", nil); resp.StatusCode != 200 {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
		}
		if n := f.calls.Load() - before; n != 0 {
			t.Errorf("%d upstream calls, want 0", n)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		before := be.count()
		if resp, _ := callAPI(t, remoteAPI, "Bearer ory_at_unknown", spoofed); resp.StatusCode != 401 ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("inactive token: %d %q, want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		f.answer("ory_at_other_aud", hydraAnswer("svc-hydra", "orders:read", "https://elsewhere.example"))
		if resp, _ := callAPI(t, remoteAPI, "Bearer ory_at_other_aud", nil); resp.StatusCode != 403 {
			t.Errorf("token for another audience: %d, want 403", resp.StatusCode)
		}
		if n := be.count(); n != before {
			t.Errorf("the backend got %d refused requests", n-before)
		}
	})

	t.Run("Gatehouse's own token on the same route, checked locally", func(t *testing.T) {
		own := createClient(t, `{"scope":"orders:read","audience":["http://localhost:9084"]}`)
		tok := fetchToken(t, own)
		before := f.calls.Load()
		if resp, body := callAPI(t, remoteAPI, "Bearer "+tok.AccessToken, nil); resp.StatusCode != 200 {
			t.Fatalf("own token: %d %s, want 200", resp.StatusCode, body)
		}
		if n := f.calls.Load() - before; n != 0 {
			t.Errorf("own token went upstream (%d calls)", n)
		}
	})

	t.Run("upstream hanging: 503 with Retry-After", func(t *testing.T) {
		f.setHang(true)
		defer f.setHang(false)
		f.answer("ory_at_late", hydraAnswer("svc-hydra", "orders:read", remoteAPI))
		start := time.Now()
		resp, body := callAPI(t, remoteAPI, "Bearer ory_at_late", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d Retry-After %q %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if d := time.Since(start); d > 500*time.Millisecond+2*time.Second {
			t.Errorf("took %v, want about the 500ms timeout", d)
		}
		// A token already cached keeps working while the server hangs.
		if resp, _ := callAPI(t, remoteAPI, "Bearer ory_at_e2e", nil); resp.StatusCode != 200 {
			t.Errorf("cached token during the outage: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("wrong caller credentials upstream: 503, not 401", func(t *testing.T) {
		f.mu.Lock()
		f.basicPass = "rotated"
		f.mu.Unlock()
		if resp, _ := callAPI(t, remoteAPI, "Bearer ory_at_fresh", nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("upstream refusing the gateway: %d, want 503", resp.StatusCode)
		}
	})
}

// BenchmarkProtectRemoteHandler is BenchmarkProtectHandler for a token of
// another authorization server with a warm cache: the token's SHA-256 and
// an identity lookup, no call.
func BenchmarkProtectRemoteHandler(b *testing.B) {
	g := newBenchGateway(b)
	f := newFakeIntrospection(b)
	f.answer("ory_at_bench", hydraAnswer("svc-hydra", "orders:read", "https://api.example.com"))
	p := g.remoteProtect(b, f, func(p *Protect) { p.Introspect.CacheTTL = caddy.Duration(time.Hour) })
	w := httptest.NewRecorder()
	r := prepared(benchRequest("ory_at_bench"), w)
	spoof := []string{"spoofed"}
	b.ReportAllocs()
	for b.Loop() {
		r.Header["X-Identity-Token"] = spoof
		if err := p.ServeHTTP(w, r, nopHandler); err != nil {
			b.Fatal(err)
		}
	}
	if got := r.Header.Get("X-Identity-Token"); got == "spoofed" || got == "" || f.calls.Load() != 1 {
		b.Fatalf("identity header %.20q after %d upstream calls, want the gateway's JWT after 1", got, f.calls.Load())
	}
}
