package caddymodule

// The client admin API on Caddy's admin endpoint, over real HTTP against
// the in-process gateway (see e2e_test.go for the helpers).

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// adminError decodes the {"error": "..."} body Caddy's admin endpoint
// answers an API error with.
func adminError(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %.300q is not JSON with an \"error\" message", b)
	}
	return e.Error
}

func TestAdminClients(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	if t.Failed() {
		t.FailNow()
	}

	var (
		zetaSecret  string
		zetaCreated string
		generatedID string
	)
	// noSecret: a read never shows a secret or its hash, under any name.
	noSecret := func(t *testing.T, b []byte) {
		t.Helper()
		var objs []map[string]any
		if err := json.Unmarshal(b, &objs); err != nil {
			var one map[string]any
			if err := json.Unmarshal(b, &one); err != nil {
				t.Fatalf("body %.300q is neither a JSON object nor an array of objects", b)
			}
			objs = []map[string]any{one}
		}
		for _, o := range objs {
			for _, k := range []string{"client_secret", "secret_hash", "client_secret_hash"} {
				if _, ok := o[k]; ok {
					t.Errorf("client %v carries %s", o["client_id"], k)
				}
			}
		}
		if strings.Contains(string(b), "$hmac") {
			t.Errorf("response contains a secret hash ($hmac…): %.300s", b)
		}
		if zetaSecret != "" && strings.Contains(string(b), zetaSecret) {
			t.Errorf("response contains a client secret: %.300s", b)
		}
	}
	client := func(t *testing.T, b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %.300q is not a JSON object: %v", b, err)
		}
		return m
	}

	// The steps run in order: later ones see what earlier ones did.
	steps := []struct {
		name, method, path, body string
		status                   int
		errHas                   string            // for errors: a substring of the "error" message
		headers                  map[string]string // header → expected substring
		check                    func(t *testing.T, resp *http.Response, b []byte)
	}{
		{
			name: "create", method: "POST", path: "/gatehouse/clients",
			body:   `{"client_id":"zeta","client_name":"Zeta","scope":"orders:read","metadata":{"tier":"gold"}}`,
			status: 201, headers: map[string]string{"Location": "/gatehouse/clients/zeta", "Cache-Control": "no-store"},
			check: func(t *testing.T, _ *http.Response, b []byte) {
				m := client(t, b)
				zetaSecret, _ = m["client_secret"].(string)
				if len(zetaSecret) < 43 {
					t.Errorf("client_secret %q, want a server-generated secret of 256 bits (43+ characters)", zetaSecret)
				}
				if m["client_id"] != "zeta" || m["client_name"] != "Zeta" || m["scope"] != "orders:read" {
					t.Errorf("created client %v, want client_id zeta, client_name Zeta, scope orders:read", m)
				}
				if g, _ := m["grant_types"].([]any); len(g) != 1 || g[0] != "client_credentials" {
					t.Errorf("grant_types %v, want the default [client_credentials]", m["grant_types"])
				}
				if m["token_endpoint_auth_method"] != "client_secret_basic" {
					t.Errorf("token_endpoint_auth_method %v, want the default client_secret_basic", m["token_endpoint_auth_method"])
				}
				zetaCreated, _ = m["created_at"].(string)
				if ts, err := time.Parse(time.RFC3339, zetaCreated); err != nil || time.Since(ts) > time.Hour || time.Until(ts) > time.Minute {
					t.Errorf("created_at %q, want the RFC 3339 time of creation", zetaCreated)
				}
				for _, k := range []string{"secret_hash", "client_secret_hash"} {
					if _, ok := m[k]; ok {
						t.Errorf("create response carries %s", k)
					}
				}
			},
		},
		{
			name: "create a second client", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"alpha","scope":"orders:read"}`, status: 201,
			headers: map[string]string{"Location": "/gatehouse/clients/alpha"},
		},
		{
			name: "create without client_id: the server picks one", method: "POST", path: "/gatehouse/clients",
			body: `{"scope":"orders:read"}`, status: 201,
			check: func(t *testing.T, resp *http.Response, b []byte) {
				m := client(t, b)
				generatedID, _ = m["client_id"].(string)
				if generatedID == "" {
					t.Fatalf("no client_id generated: %s", b)
				}
				if loc := resp.Header.Get("Location"); loc != "/gatehouse/clients/"+generatedID {
					t.Errorf("Location %q, want /gatehouse/clients/%s", loc, generatedID)
				}
				if s, _ := m["client_secret"].(string); s == "" {
					t.Errorf("no client_secret in the create response")
				}
			},
		},
		{
			name: "duplicate client_id", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"zeta"}`, status: 409, errHas: "zeta",
		},
		{
			name: "malformed JSON", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":`, status: 400, errHas: "JSON",
		},
		{
			name: "trailing data after the object", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"x1"} {"client_id":"x2"}`, status: 400, errHas: "trailing",
		},
		{
			name: "unknown field is named", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"typo","scopes":"orders:read"}`, status: 400, errHas: "scopes",
		},
		{
			name: "client_secret cannot be chosen", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"weak","client_secret":"hunter2"}`, status: 400, errHas: "client_secret",
		},
		{
			name: "metadata must be an object", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"arr","metadata":["a"]}`, status: 400, errHas: "metadata",
		},
		{
			name: "scope with a character outside RFC 6749 §3.3", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"quote","scope":"orders:read a\"b"}`, status: 400, errHas: "scope",
		},
		{
			name: "client_id with a slash", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"a/b"}`, status: 400, errHas: "client_id",
		},
		{
			name: "unsupported auth method", method: "POST", path: "/gatehouse/clients",
			body: `{"client_id":"pkjwt","token_endpoint_auth_method":"none"}`, status: 400, errHas: "token_endpoint_auth_method",
		},
		{
			name: "body over 64 KiB", method: "POST", path: "/gatehouse/clients",
			body:   `{"client_id":"big","client_name":"` + strings.Repeat("a", maxAdminBody) + `"}`,
			status: 413,
		},
		{
			name: "list: ordered by client_id, no secrets, no failed creates", method: "GET", path: "/gatehouse/clients",
			status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				noSecret(t, b)
				var list []map[string]any
				if err := json.Unmarshal(b, &list); err != nil {
					t.Fatalf("list %.300q is not a JSON array: %v", b, err)
				}
				var ids []string
				for _, c := range list {
					id, _ := c["client_id"].(string)
					ids = append(ids, id)
				}
				want := []string{"alpha", "zeta", generatedID}
				sort.Strings(want)
				if strings.Join(ids, ",") != strings.Join(want, ",") {
					t.Errorf("list client_ids %q, want %q in client_id order", ids, want)
				}
			},
		},
		{
			name: "get one: no secret", method: "GET", path: "/gatehouse/clients/zeta", status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				noSecret(t, b)
				m := client(t, b)
				md, _ := m["metadata"].(map[string]any)
				if m["client_id"] != "zeta" || md["tier"] != "gold" {
					t.Errorf("GET zeta = %s, want client zeta with metadata tier gold", b)
				}
			},
		},
		{
			name: "get unknown", method: "GET", path: "/gatehouse/clients/nobody", status: 404, errHas: "nobody",
		},
		{
			name: "get an invalid id", method: "GET", path: "/gatehouse/clients/a%2Fb", status: 404,
		},
		{
			name: "put replaces the client", method: "PUT", path: "/gatehouse/clients/zeta",
			body: `{"client_name":"Zeta","scope":"orders:read","metadata":{"tier":"platinum"}}`, status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				noSecret(t, b)
				if m := client(t, b); m["created_at"] != zetaCreated {
					t.Errorf("created_at after PUT %v, want it kept as %q", m["created_at"], zetaCreated)
				}
			},
		},
		{
			name: "get shows the update, and the secret still works", method: "GET", path: "/gatehouse/clients/zeta", status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				md, _ := client(t, b)["metadata"].(map[string]any)
				if md["tier"] != "platinum" {
					t.Errorf("metadata after PUT %v, want tier platinum", md)
				}
				fetchToken(t, createdClientJSON{ClientID: "zeta", ClientSecret: zetaSecret})
			},
		},
		{
			name: "put with another client_id in the body", method: "PUT", path: "/gatehouse/clients/zeta",
			body: `{"client_id":"alpha","scope":"orders:read"}`, status: 400, errHas: "client_id",
		},
		{
			name: "put with client_secret", method: "PUT", path: "/gatehouse/clients/zeta",
			body: `{"client_secret":"hunter2"}`, status: 400, errHas: "client_secret",
		},
		{
			name: "put unknown", method: "PUT", path: "/gatehouse/clients/nobody",
			body: `{"scope":"orders:read"}`, status: 404, errHas: "nobody",
		},
		{
			name: "patch is not allowed on a client", method: "PATCH", path: "/gatehouse/clients/alpha",
			body: `{}`, status: 405, headers: map[string]string{"Allow": "PUT"},
		},
		{
			name: "patch is not allowed on the collection", method: "PATCH", path: "/gatehouse/clients",
			body: `{}`, status: 405, headers: map[string]string{"Allow": "POST"},
		},
		{name: "delete", method: "DELETE", path: "/gatehouse/clients/zeta", status: 204},
		{
			name: "get after delete, and its secret is refused", method: "GET", path: "/gatehouse/clients/zeta", status: 404,
			check: func(t *testing.T, _ *http.Response, _ []byte) {
				resp, _ := tokenRequest(t, http.MethodPost, "", formType, basicAuthz("zeta", zetaSecret), "grant_type=client_credentials")
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("token request of the deleted client: %d, want 401", resp.StatusCode)
				}
			},
		},
		{name: "delete again", method: "DELETE", path: "/gatehouse/clients/zeta", status: 404},
	}

	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp, b := adminDo(t, st.method, st.path, st.body)
			if resp.StatusCode != st.status {
				t.Fatalf("%s %s: status %d, body %.300s; want %d", st.method, st.path, resp.StatusCode, b, st.status)
			}
			for k, want := range st.headers {
				if got := resp.Header.Get(k); !strings.Contains(got, want) {
					t.Errorf("header %s = %q, want it to contain %q", k, got, want)
				}
			}
			if st.status >= 400 {
				msg := adminError(t, b)
				if !strings.Contains(msg, st.errHas) {
					t.Errorf("error %q, want it to mention %q", msg, st.errHas)
				}
			}
			if st.check != nil {
				st.check(t, resp, b)
			}
		})
	}
}
