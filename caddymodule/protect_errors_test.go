package caddymodule

// Refusals of gatehouse_protect under Caddy's error handling: on a server
// with handle_errors routes they are returned to them, otherwise answered
// by the handler itself, with its JSON body.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// handleErrorsConfig has a protected site on a server without error
// routes (:9082), and two protected sites on one server (:9081): with a
// catch-all handle_errors (127.0.0.1), and with one for 401 and 403
// (127.0.0.2). On each, /remote checks tokens at an introspection endpoint
// that refuses connections.
func handleErrorsConfig(dbPath, deadURL string) string {
	protected := fmt.Sprintf(`	handle /remote {
		gatehouse_protect {
			introspect %s {
				timeout 2s
			}
			scope orders:admin
		}
		respond "ok"
	}
	handle {
		gatehouse_protect {
			scope orders:admin
		}
		respond "ok"
	}
`, deadURL)
	return fmt.Sprintf(`{
`+testServerOptions+`	gatehouse {
		storage bolt %s
		issuer http://localhost:9080
	}
}
http://localhost:9080 {
	gatehouse_server
}
http://localhost:9082 {
%s}
http://127.0.0.1:9081 {
	handle_errors {
		respond "custom {err.status_code} {err.message}"
	}
%s}
http://127.0.0.2:9081 {
	handle_errors 401 403 {
		respond "{err.status_code}: {err.message}"
	}
%s}
`, dbPath, protected, protected, protected)
}

var protectedOutcomeRE = regexp.MustCompile(`(?m)^gatehouse_protected_requests_total\{outcome="(\w+)"\} (\S+)$`)

// protectedOutcomes reads gatehouse_protected_requests_total by outcome.
func protectedOutcomes(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]int{}
	for _, sm := range protectedOutcomeRE.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(sm[2], 64)
		m[sm[1]] = int(v)
	}
	return m
}

func TestProtectRefusalsAndHandleErrors(t *testing.T) {
	dead := httptest.NewServer(nil)
	deadURL := dead.URL + "/introspect"
	dead.Close()
	caddytest.NewTester(t).InitServer(handleErrorsConfig(filepath.Join(t.TempDir(), "g.db"), deadURL), "caddyfile")
	reader := fetchToken(t, createClient(t, `{"scope":"orders:read"}`))

	type refusal struct {
		name, path, authz string
		status            int
		code, challenge   string
	}
	refusals := []refusal{
		{"token twice", "/orders?access_token=x", "Bearer " + reader.AccessToken, 400, "invalid_request",
			`Bearer error="invalid_request", error_description="send the token once, in the Authorization header"`},
		{"no token", "/orders", "", 401, "unauthorized", `Bearer realm="gatehouse"`},
		{"invalid token", "/orders", "Bearer garbage", 401, "invalid_token", invalidTokenChallenge},
		{"missing scope", "/orders", "Bearer " + reader.AccessToken, 403, "insufficient_scope",
			`Bearer error="insufficient_scope", error_description="the token lacks a required scope or audience", scope="orders:admin"`},
		{"introspection unreachable", "/remote", "Bearer ory_at_somewhere", 503, "temporarily_unavailable", ""},
	}
	// The headers of a refusal; Date and Server are Go's and Caddy's.
	headerNames := func(rf refusal, contentType bool) []string {
		names := []string{"Cache-Control", "Content-Length", "Date", "Server"}
		if contentType {
			names = append(names, "Content-Type")
		}
		if rf.challenge != "" {
			names = append(names, "Www-Authenticate")
		}
		if rf.status == 503 {
			names = append(names, "Retry-After")
		}
		slices.Sort(names)
		return names
	}
	check := func(t *testing.T, base string, rf refusal, wantBody string, contentType string) {
		t.Helper()
		resp, body := callAPI(t, base+rf.path, rf.authz, nil)
		if resp.StatusCode != rf.status || body != wantBody {
			t.Errorf("%s: %d %q, want %d %q", rf.name, resp.StatusCode, body, rf.status, wantBody)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != rf.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", rf.name, got, rf.challenge)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", rf.name, got)
		}
		if got := resp.Header.Get("Content-Type"); got != contentType {
			t.Errorf("%s: Content-Type %q, want %q", rf.name, got, contentType)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(wantBody)) {
			t.Errorf("%s: Content-Length %q, want %d", rf.name, got, len(wantBody))
		}
		if rf.status == 503 {
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", rf.name, resp.Header.Get("Retry-After"))
			}
		}
		var names []string
		for k := range resp.Header {
			names = append(names, k)
		}
		slices.Sort(names)
		if want := headerNames(rf, contentType != ""); !slices.Equal(names, want) {
			t.Errorf("%s: headers %v, want exactly %v", rf.name, names, want)
		}
	}

	before := protectedOutcomes(t)
	// Without error routes, the handler's own answer: the JSON error code.
	t.Run("own answer", func(t *testing.T) {
		for _, rf := range refusals {
			check(t, "http://localhost:9082", rf, `{"error":"`+rf.code+`"}`, "application/json")
		}
	})
	// With a catch-all handle_errors, the site's own body, and the
	// challenge and caching headers still set.
	t.Run("handle_errors", func(t *testing.T) {
		for _, rf := range refusals {
			check(t, "http://127.0.0.1:9081", rf, fmt.Sprintf("custom %d %s", rf.status, rf.code), "text/plain; charset=utf-8")
		}
	})
	// With handle_errors 401 403, those statuses get the site's body, the
	// others what Caddy gives an error no route handles: the status, with
	// the challenge and caching headers, and no body.
	t.Run("handle_errors 401 403", func(t *testing.T) {
		for _, rf := range refusals {
			if rf.status == 401 || rf.status == 403 {
				check(t, "http://127.0.0.2:9081", rf, fmt.Sprintf("%d: %s", rf.status, rf.code), "text/plain; charset=utf-8")
			} else {
				check(t, "http://127.0.0.2:9081", rf, "", "")
			}
		}
	})

	// Each refusal counted once, by outcome, however it was answered.
	after := protectedOutcomes(t)
	for outcome, want := range map[string]int{"bad_request": 3, "unauthorized": 6, "forbidden": 3, "unavailable": 3, "granted": 0} {
		if got := after[outcome] - before[outcome]; got != want {
			t.Errorf("gatehouse_protected_requests_total{outcome=%q} grew by %d, want %d", outcome, got, want)
		}
	}
}
