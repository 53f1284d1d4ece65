package caddymodule

// The client admin API on Caddy's admin endpoint, over real HTTP against
// the in-process gateway (see e2e_test.go for the helpers).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
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
			// PATCH became a method of a client (RFC 7396 merge patch, see
			// TestAdminStatuses); POST is not one.
			name: "post is not allowed on a client", method: "POST", path: "/gatehouse/clients/alpha",
			body: `{}`, status: 405, headers: map[string]string{"Allow": "PATCH"},
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

// adminRequest sends a request to the admin endpoint with the given
// headers (none are added).
func adminRequest(t *testing.T, method, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// currentETag reads a client's ETag with GET.
func currentETag(t *testing.T, id string) string {
	t.Helper()
	resp, b := adminRequest(t, http.MethodGet, "/gatehouse/clients/"+id, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", id, resp.StatusCode, b)
	}
	tag := resp.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9]+"$`).MatchString(tag) {
		t.Fatalf("GET %s: ETag %q, want a strong entity tag (RFC 7232 §2.3)", id, tag)
	}
	return tag
}

// TestAdminStatuses walks PATCH (RFC 7396), If-Match (RFC 7232), secret
// rotation, import and backup through every status they answer with.
func TestAdminStatuses(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	createClient(t, `{"client_id":"svc","scope":"orders:read","owner":"team-a","metadata":{"tier":"gold","realm":{"id":"r1"}}}`)

	var etag, staleETag string
	const mp = "application/merge-patch+json"
	js := map[string]string{"Content-Type": "application/json"}
	patchWith := func(h map[string]string) map[string]string {
		out := map[string]string{"Content-Type": mp}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	// ifMatch marks a step that sends the current (or stale) ETag.
	const current, stale = "<current>", "<stale>"
	newETag := func(t *testing.T, resp *http.Response, _ []byte) {
		t.Helper()
		got := resp.Header.Get("ETag")
		if got == "" || got == etag {
			t.Errorf("ETag after a write = %q, want a new one (was %q)", got, etag)
		}
		staleETag, etag = etag, got
	}
	metadata := func(t *testing.T, b []byte) map[string]any {
		t.Helper()
		var c struct {
			Metadata map[string]any `json:"metadata"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c.Metadata
	}

	steps := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		errHas                   string
		headers                  map[string]string // header → expected substring
		check                    func(t *testing.T, resp *http.Response, b []byte)
	}{
		{name: "GET carries an ETag", method: "GET", path: "/gatehouse/clients/svc", status: 200,
			check: func(t *testing.T, resp *http.Response, _ []byte) { etag = currentETag(t, "svc") }},

		// PATCH: RFC 7396 JSON merge patch.
		{name: "PATCH with another media type", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":"x"}`,
			header: map[string]string{"Content-Type": "text/plain"}, status: 415, errHas: "merge-patch",
			headers: map[string]string{"Accept-Patch": mp}},
		{name: "PATCH without a media type", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":"x"}`, status: 415},
		{name: "PATCH that is not an object", method: "PATCH", path: "/gatehouse/clients/svc", body: `["owner"]`,
			header: patchWith(nil), status: 400, errHas: "merge patch"},
		{name: "PATCH with malformed JSON", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":`,
			header: patchWith(nil), status: 400, errHas: "JSON"},
		{name: "RFC 7396: PATCH merges metadata, null removes a member", method: "PATCH", path: "/gatehouse/clients/svc",
			body: `{"metadata":{"tier":null,"plan":"pro"}}`, header: patchWith(map[string]string{"If-Match": current}), status: 200,
			check: func(t *testing.T, resp *http.Response, b []byte) {
				newETag(t, resp, b)
				md := metadata(t, b)
				realm, _ := md["realm"].(map[string]any)
				if _, has := md["tier"]; has || md["plan"] != "pro" || realm["id"] != "r1" {
					t.Errorf("metadata after merge patch = %v, want tier removed, plan added, realm kept", md)
				}
				var c map[string]any
				json.Unmarshal(b, &c)
				if c["owner"] != "team-a" || c["scope"] != "orders:read" {
					t.Errorf("PATCH of metadata changed other fields: %s", b)
				}
			}},
		{name: "RFC 7232 §3.1: PATCH with a stale If-Match", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":"late"}`,
			header: patchWith(map[string]string{"If-Match": stale}), status: 412, errHas: "svc"},
		{name: "the refused PATCH changed nothing", method: "GET", path: "/gatehouse/clients/svc", status: 200,
			check: func(t *testing.T, resp *http.Response, b []byte) {
				if strings.Contains(string(b), "late") || resp.Header.Get("ETag") != etag {
					t.Errorf("after a 412: %s ETag %s, want unchanged at %s", b, resp.Header.Get("ETag"), etag)
				}
			}},
		{name: "RFC 7232 §3.1: a weak tag never matches", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":"weak"}`,
			header: patchWith(map[string]string{"If-Match": "W/" + current}), status: 412},
		{name: "RFC 7232 §3.1: one tag of a list matches", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"owner":"team-b"}`,
			header: patchWith(map[string]string{"If-Match": `"1", ` + current}), status: 200, check: newETag},
		{name: "RFC 7232 §3.1: If-Match * on an existing client", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"client_name":"Svc"}`,
			header: patchWith(map[string]string{"If-Match": "*"}), status: 200, check: newETag},
		{name: "malformed If-Match", method: "PATCH", path: "/gatehouse/clients/svc", body: `{}`,
			header: patchWith(map[string]string{"If-Match": "abc"}), status: 400, errHas: "If-Match"},
		{name: "PATCH with application/json", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"introspect":true}`,
			header: js, status: 200, check: newETag},
		{name: "PATCH to an invalid scope names the field", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"scope":"a\"b"}`,
			header: patchWith(nil), status: 400, errHas: "scope"},
		{name: "PATCH with an unknown field names it", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"scopes":"x"}`,
			header: patchWith(nil), status: 400, errHas: "scopes"},
		{name: "PATCH cannot change the client_id", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"client_id":"other"}`,
			header: patchWith(nil), status: 400, errHas: "client_id"},
		{name: "PATCH cannot set a secret", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"client_secret":"hunter2"}`,
			header: patchWith(nil), status: 400, errHas: "client_secret"},
		{name: "PATCH cannot set a secret hash", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"client_secret_hash":"$2a$x"}`,
			header: patchWith(nil), status: 400, errHas: "client_secret_hash"},
		{name: "PATCH with a private key in jwks (RFC 7517 §9.2)", method: "PATCH", path: "/gatehouse/clients/svc",
			body:   `{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}}`,
			header: patchWith(nil), status: 400, errHas: "jwks"},
		{name: "PATCH of an unknown client", method: "PATCH", path: "/gatehouse/clients/nobody", body: `{}`,
			header: patchWith(nil), status: 404, errHas: "nobody"},
		{name: "If-Match on an unknown client is 404 (RFC 7232 §5)", method: "PATCH", path: "/gatehouse/clients/nobody", body: `{}`,
			header: patchWith(map[string]string{"If-Match": `"1"`}), status: 404},
		{name: "PATCH over 64 KiB", method: "PATCH", path: "/gatehouse/clients/svc",
			body: `{"client_name":"` + strings.Repeat("a", maxAdminBody) + `"}`, header: patchWith(nil), status: 413},
		{name: "PATCH disables", method: "PATCH", path: "/gatehouse/clients/svc", body: `{"disabled":true}`,
			header: patchWith(nil), status: 200, check: func(t *testing.T, resp *http.Response, b []byte) {
				newETag(t, resp, b)
				if !strings.Contains(string(b), `"disabled":true`) {
					t.Errorf("PATCH disabled: %s", b)
				}
			}},

		// PUT and DELETE honour If-Match too.
		{name: "PUT with a stale If-Match", method: "PUT", path: "/gatehouse/clients/svc", body: `{"scope":"orders:read"}`,
			header: map[string]string{"If-Match": stale}, status: 412},
		{name: "PUT with the current If-Match", method: "PUT", path: "/gatehouse/clients/svc", body: `{"scope":"orders:read","owner":"team-a"}`,
			header: map[string]string{"If-Match": current}, status: 200, check: newETag},
		{name: "DELETE with a stale If-Match", method: "DELETE", path: "/gatehouse/clients/svc",
			header: map[string]string{"If-Match": stale}, status: 412},

		// Secret rotation.
		{name: "rotate with a negative grace period", method: "POST", path: "/gatehouse/clients/svc/secret?grace_period=-1h", status: 400, errHas: "grace_period"},
		{name: "rotate with a grace period that is no duration", method: "POST", path: "/gatehouse/clients/svc/secret",
			body: `{"grace_period":"soon"}`, status: 400, errHas: "grace_period"},
		{name: "rotate with a grace period over 30 days", method: "POST", path: "/gatehouse/clients/svc/secret?grace=31d", status: 400, errHas: "grace_period"},
		{name: "rotate with the grace period given twice", method: "POST", path: "/gatehouse/clients/svc/secret?grace=1h",
			body: `{"grace_period":"2h"}`, status: 400, errHas: "twice"},
		{name: "rotate with an unknown body field", method: "POST", path: "/gatehouse/clients/svc/secret",
			body: `{"grace":"1h"}`, status: 400, errHas: "grace_period"},
		{name: "rotate an unknown client", method: "POST", path: "/gatehouse/clients/nobody/secret", status: 404, errHas: "nobody"},
		{name: "rotate with a stale If-Match", method: "POST", path: "/gatehouse/clients/svc/secret",
			header: map[string]string{"If-Match": stale}, status: 412},
		{name: "GET on the secret is not allowed", method: "GET", path: "/gatehouse/clients/svc/secret", status: 405,
			headers: map[string]string{"Allow": "POST"}},
		{name: "rotate", method: "POST", path: "/gatehouse/clients/svc/secret", body: `{"grace_period":"1h"}`,
			header: map[string]string{"If-Match": current}, status: 200,
			headers: map[string]string{"Cache-Control": "no-store"},
			check: func(t *testing.T, resp *http.Response, b []byte) {
				newETag(t, resp, b)
				var c map[string]any
				json.Unmarshal(b, &c)
				if s, _ := c["client_secret"].(string); len(s) < 43 {
					t.Errorf("rotation response %s, want the new client_secret", b)
				}
				for _, k := range []string{"previous_secret_hash", "secret_hash", "generation", "revision"} {
					if _, ok := c[k]; ok {
						t.Errorf("rotation response carries %s", k)
					}
				}
			}},
		{name: "GET after rotation shows no secret", method: "GET", path: "/gatehouse/clients/svc", status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				if strings.Contains(string(b), `"client_secret"`) || strings.Contains(string(b), "$hmac") {
					t.Errorf("GET after rotation: %s", b)
				}
			}},
		{name: "unknown sub-resource", method: "GET", path: "/gatehouse/clients/svc/keys", status: 404},

		// Import and backup: errors of the request as a whole.
		{name: "import of something that is not Hydra JSON", method: "POST", path: "/gatehouse/clients/import", body: `42`, status: 400, errHas: "import"},
		{name: "import with a malformed dry_run", method: "POST", path: "/gatehouse/clients/import?dry_run=maybe", body: `[]`, status: 400, errHas: "dry_run"},
		{name: "import over 8 MiB", method: "POST", path: "/gatehouse/clients/import",
			body: `[{"client_name":"` + strings.Repeat("a", maxImportBody) + `"}]`, status: 413},
		{name: "import of an empty list", method: "POST", path: "/gatehouse/clients/import", body: `[]`, status: 200},
		{name: "backup takes GET only", method: "POST", path: "/gatehouse/backup", status: 405, headers: map[string]string{"Allow": "GET"}},

		{name: "DELETE with the current If-Match", method: "DELETE", path: "/gatehouse/clients/svc",
			header: map[string]string{"If-Match": current}, status: 204},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			h := map[string]string{}
			for k, v := range st.header {
				v = strings.ReplaceAll(v, current, etag)
				h[k] = strings.ReplaceAll(v, stale, staleETag)
			}
			resp, b := adminRequest(t, st.method, st.path, st.body, h)
			if resp.StatusCode != st.status {
				t.Fatalf("%s %s: status %d, body %.300s; want %d", st.method, st.path, resp.StatusCode, b, st.status)
			}
			for k, want := range st.headers {
				if got := resp.Header.Get(k); !strings.Contains(got, want) {
					t.Errorf("header %s = %q, want it to contain %q", k, got, want)
				}
			}
			if st.status >= 400 {
				if msg := adminError(t, b); !strings.Contains(msg, st.errHas) {
					t.Errorf("error %q, want it to mention %q", msg, st.errHas)
				}
			} else if st.status < 300 && st.method != "DELETE" && strings.Contains(st.path, "/clients/svc") && resp.Header.Get("ETag") == "" {
				t.Errorf("%s %s: no ETag on a client response", st.method, st.path)
			}
			if st.check != nil {
				st.check(t, resp, b)
			}
		})
	}
}

// TestAdminListPagination: page_size/page_token walk every client once in
// client_id order, filtered by owner; the body stays a JSON array.
func TestAdminListPagination(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	var all, teamX []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("c%02d", 6-i) // created out of order
		owner := "team-y"
		if i%2 == 0 {
			owner = "team-x"
			teamX = append(teamX, id)
		}
		createClient(t, fmt.Sprintf(`{"client_id":%q,"owner":%q}`, id, owner))
		all = append(all, id)
	}
	sort.Strings(all)
	sort.Strings(teamX)

	walk := func(t *testing.T, query string) (ids []string, pages int) {
		t.Helper()
		next := "/gatehouse/clients?" + query
		for next != "" {
			resp, b := adminRequest(t, http.MethodGet, next, "", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", next, resp.StatusCode, b)
			}
			var page []map[string]any
			if err := json.Unmarshal(b, &page); err != nil {
				t.Fatalf("GET %s: body %.200s is not a JSON array", next, b)
			}
			for _, c := range page {
				ids = append(ids, c["client_id"].(string))
			}
			pages++
			next = ""
			if link := resp.Header.Get("Link"); link != "" {
				m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
				if m == nil {
					t.Fatalf("Link %q, want <…>; rel=\"next\" (RFC 8288)", link)
				}
				if tok := resp.Header.Get("X-Next-Page-Token"); tok == "" || !strings.Contains(m[1], "page_token="+tok) {
					t.Errorf("X-Next-Page-Token %q does not match Link %q", tok, link)
				}
				next = m[1]
			} else if resp.Header.Get("X-Next-Page-Token") != "" {
				t.Errorf("X-Next-Page-Token without a Link")
			}
			if pages > 20 {
				t.Fatal("more than 20 pages: the walk does not end")
			}
		}
		return ids, pages
	}
	for _, tt := range []struct {
		query string
		want  []string
		pages int
	}{
		{"", all, 1},
		{"page_size=1", all, 7},
		{"page_size=3", all, 3},
		{"page_size=7", all, 1},
		{"page_size=100000", all, 1}, // clamped to the maximum
		{"page_size=2&owner=team-x", teamX, 2},
		{"owner=nobody", nil, 1},
	} {
		t.Run(tt.query, func(t *testing.T) {
			ids, pages := walk(t, tt.query)
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") || pages != tt.pages {
				t.Fatalf("walked %q in %d pages, want %q in %d", ids, pages, tt.want, tt.pages)
			}
		})
	}
	resp, _ := adminRequest(t, http.MethodGet, "/gatehouse/clients?page_size=2&owner=team-x", "", nil)
	if got := resp.Header.Get("X-Total-Count"); got != strconv.Itoa(len(teamX)) {
		t.Errorf("X-Total-Count %q, want %d matching clients", got, len(teamX))
	}
	for _, q := range []string{"page_size=0", "page_size=-1", "page_size=ten", "page_token=garbage", "page_token=" + encodePageToken("a/b")} {
		resp, b := adminRequest(t, http.MethodGet, "/gatehouse/clients?"+q, "", nil)
		if resp.StatusCode != 400 {
			t.Errorf("GET ?%s: %d %s, want 400", q, resp.StatusCode, b)
		} else if msg := adminError(t, b); !strings.Contains(msg, strings.Split(q, "=")[0]) {
			t.Errorf("GET ?%s: error %q does not name the parameter", q, msg)
		}
	}
}

// TestAdminConcurrentIfMatch: operators racing with the same ETag; RFC
// 7232 §3.1 lets exactly one win, the others get 412 and nothing of
// theirs is written.
func TestAdminConcurrentIfMatch(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	createClient(t, `{"client_id":"svc","owner":"start"}`)
	tag := currentETag(t, "svc")

	const n = 12
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			method, body := http.MethodPatch, fmt.Sprintf(`{"owner":"op-%d"}`, i)
			if i%3 == 0 {
				method, body = http.MethodPut, fmt.Sprintf(`{"owner":"op-%d"}`, i)
			}
			req, _ := http.NewRequest(method, adminURL+"/gatehouse/clients/svc", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/merge-patch+json")
			req.Header.Set("If-Match", tag)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			if winner >= 0 {
				t.Errorf("operators %d and %d both won with ETag %s", winner, i, tag)
			}
			winner = i
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("operator %d: status %d, want 200 or 412", i, s)
		}
	}
	if winner < 0 {
		t.Fatalf("no operator won: %v", statuses)
	}
	resp, b := adminRequest(t, http.MethodGet, "/gatehouse/clients/svc", "", nil)
	if want := fmt.Sprintf(`"owner":"op-%d"`, winner); !strings.Contains(string(b), want) {
		t.Errorf("client after the race: %s, want the winner's %s", b, want)
	}
	if resp.Header.Get("ETag") == tag {
		t.Error("ETag unchanged after the winning write")
	}
}

// FuzzAdminPatchAndPreconditions: merge patches, If-Match values and page
// tokens are untrusted admin input. None of them panics, every refusal is
// a 400 (never a 5xx), and a patch never changes the client_id.
func FuzzAdminPatchAndPreconditions(f *testing.F) {
	f.Add(`{"metadata":{"tier":null,"plan":"pro"}}`, `"12", W/"3"`, "djE6YWxwaGE")
	f.Add(`{"client_id":"other"}`, `*`, "")
	f.Add(`{"client_secret":"x","scope":null}`, `"`, "djE6")
	f.Add(`{"hydra_extra":{"a":1},"audience":["x"],"jwks":null}`, `W/`, "!!")
	f.Add(`{"metadata":[1]}`, `"1",,"2"`, "djE6YS9i")
	cur := &clientstore.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, Scope: "a b",
		Owner: "o", Metadata: clientstore.Metadata{"tier": "gold"}, TokenEndpointAuthMethod: "client_secret_basic"}
	f.Fuzz(func(t *testing.T, patch, ifMatch, pageToken string) {
		c, err := applyMergePatch(cur, []byte(patch))
		if err != nil {
			var ae caddy.APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("applyMergePatch(%q) = %v, want a 400 API error", patch, err)
			}
		} else if c.ID != "svc" {
			t.Fatalf("applyMergePatch(%q) changed the client_id to %q", patch, c.ID)
		}
		if _, _, err := parseIfMatch([]string{ifMatch}); err != nil {
			var ae caddy.APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("parseIfMatch(%q) = %v, want a 400 API error", ifMatch, err)
			}
		}
		if id, ok := decodePageToken(pageToken); ok {
			if clientstore.ValidateID(id) != nil || decodeOrSelf(encodePageToken(id)) != id {
				t.Fatalf("decodePageToken(%q) = %q, not a valid client_id that round-trips", pageToken, id)
			}
		}
	})
}

func decodeOrSelf(tok string) string {
	id, _ := decodePageToken(tok)
	return id
}

// createFailingStore is a bbolt store whose CreateClient fails with the
// error in fail, when there is one.
type createFailingStore struct {
	*clientstore.BoltStore
	fail atomic.Pointer[error]
}

func (s *createFailingStore) CreateClient(ctx context.Context, c *clientstore.Client) error {
	if err := s.fail.Load(); err != nil {
		return *err
	}
	return s.BoltStore.CreateClient(ctx, c)
}

// An import whose write fails reports a status and a message for that
// client, whatever the store's error: unavailable (503), unexpected (500),
// or an error that already carries an admin API status but no message or
// no status, which Caddy's admin endpoint would answer with the status's
// text and 500.
func TestImportStoreFailures(t *testing.T) {
	bolt, err := clientstore.OpenBolt(filepath.Join(t.TempDir(), "g.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	store := &createFailingStore{BoltStore: bolt}
	g := newBenchGatewayOn(t, store)
	const doc = `[{"client_id":"imp","grant_types":["client_credentials"],"scope":"orders:read"}]`
	cases := []struct {
		name   string
		err    error
		status int
		reason string
	}{
		{"store unavailable", fmt.Errorf("%w: etcd: context deadline exceeded", clientstore.ErrUnavailable), http.StatusServiceUnavailable, "unavailable"},
		{"unexpected store error", errors.New("disk on fire"), http.StatusInternalServerError, "disk on fire"},
		{"API error without a message", caddy.APIError{HTTPStatus: http.StatusConflict}, http.StatusConflict, "Conflict"},
		{"API error without a status", fmt.Errorf("wrapped: %w", caddy.APIError{Message: "refused by policy"}), http.StatusInternalServerError, "refused by policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store.fail.Store(&tc.err)
			r := httptest.NewRequest(http.MethodPost, adminClientsPath+"/import", strings.NewReader(doc))
			w := httptest.NewRecorder()
			if err := serveImport(w, r, g.app); err != nil {
				t.Fatalf("serveImport = %v, want a report", err)
			}
			var rep importReport
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || len(rep.Results) != 1 {
				t.Fatalf("import report %s (%v), want one result", w.Body, err)
			}
			res := rep.Results[0]
			if w.Code != http.StatusOK || rep.Failed != 1 || res.Status != "error" || res.ErrorStatus != tc.status || !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("import: %d %+v, want 200 with the client failed: error_status %d, reason containing %q", w.Code, res, tc.status, tc.reason)
			}
		})
	}
	// Through the other admin writes, which answer such an error
	// themselves, the status and message are completed the same way.
	for _, tc := range cases {
		status, msg := apiErrorParts(storeError(tc.err, "imp"))
		if status != tc.status || !strings.Contains(msg, tc.reason) {
			t.Errorf("%s: storeError answers %d %q, want %d with %q", tc.name, status, msg, tc.status, tc.reason)
		}
		var ae caddy.APIError
		if !errors.As(storeError(tc.err, "imp"), &ae) || ae.HTTPStatus != tc.status || ae.Err == nil {
			t.Errorf("%s: storeError = %#v, want an APIError with status %d and an error", tc.name, storeError(tc.err, "imp"), tc.status)
		}
	}
	store.fail.Store(nil)
	r := httptest.NewRequest(http.MethodPost, adminClientsPath+"/import", strings.NewReader(doc))
	w := httptest.NewRecorder()
	if err := serveImport(w, r, g.app); err != nil || !strings.Contains(w.Body.String(), `"imported":1`) {
		t.Errorf("import once the store works: %v %s, want the client imported", err, w.Body)
	}
}
