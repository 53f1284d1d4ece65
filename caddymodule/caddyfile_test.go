package caddymodule

// Caddyfile syntax: adapt tests as data files (Caddyfile in, expected JSON
// out) in the style of Caddy's caddytest/integration, plus the parse errors
// that must stop adaptation at the offending line.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdaptToJSON runs every testdata/caddyfile_adapt/*.caddyfiletest:
// a Caddyfile, a line of ten dashes, and the JSON it must adapt to.
func TestCaddyfileAdaptToJSON(t *testing.T) {
	const dir = "testdata/caddyfile_adapt"
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	winNewlines := regexp.MustCompile(`\r?\n`)
	n := 0
	for _, f := range files {
		if f.IsDir() || !strings.HasSuffix(f.Name(), ".caddyfiletest") {
			continue
		}
		n++
		filename := f.Name()
		t.Run(filename, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, filename))
			if err != nil {
				t.Fatalf("reading %s: %v", filename, err)
			}
			parts := strings.Split(string(data), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile, a line of ten dashes and the JSON, got %d parts", filename, len(parts))
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			expected = winNewlines.ReplaceAllString(expected, "\n")
			if !caddytest.CompareAdapt(t, filename, caddyfile, "caddyfile", expected) {
				t.Errorf("%s does not adapt to its expected JSON (diff above)", filename)
			}
		})
	}
	if n == 0 {
		t.Fatalf("no .caddyfiletest files in %s", dir)
	}
}

// TestCaddyfileErrors: malformed gatehouse syntax fails adaptation, and the
// error names the Caddyfile line so an operator can find it.
func TestCaddyfileErrors(t *testing.T) {
	global := func(lines ...string) string {
		return "{\n\tgatehouse {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}\n}\n"
	}
	site := func(lines ...string) string {
		return ":8081 {\n\t" + strings.Join(lines, "\n\t") + "\n}\n"
	}
	cases := []struct {
		name, caddyfile string
		line            string // "Caddyfile:N"
		msg             string // part of the error message
	}{
		{"unknown subdirective in gatehouse_protect", site("gatehouse_protect {", "\tscopes orders:read", "}"), "Caddyfile:3", `unrecognized subdirective "scopes"`},
		{"unknown subdirective in gatehouse_server", site("gatehouse_server {", "\ttoken_path /token", "}"), "Caddyfile:3", `unrecognized subdirective "token_path"`},
		{"unknown subdirective in the global option", global("issuer https://auth.example.com", "storage_path /x"), "Caddyfile:4", `unrecognized subdirective "storage_path"`},
		{"unknown storage backend", global("storage redis"), "Caddyfile:3", `unknown storage backend "redis"`},
		{"storage etcd without endpoints", global("storage etcd {", "\tprefix /gh/", "}"), "Caddyfile:5", "endpoints are required"},
		{"storage etcd with a path", global("storage etcd /x {", "\tendpoints http://127.0.0.1:2379", "}"), "Caddyfile:3", "wrong argument count"},
		{"storage etcd endpoint without a scheme", global("storage etcd {", "\tendpoints 10.0.0.1:2379", "}"), "Caddyfile:4", `"10.0.0.1:2379" is not an http(s)://host:port URL`},
		{"storage etcd relative prefix", global("storage etcd {", "\tendpoints http://127.0.0.1:2379", "\tprefix gh", "}"), "Caddyfile:5", `prefix "gh" must start with /`},
		{"storage etcd bad dial_timeout", global("storage etcd {", "\tendpoints http://127.0.0.1:2379", "\tdial_timeout soon", "}"), "Caddyfile:5", `dial_timeout: want a positive duration`},
		{"storage etcd unknown option", global("storage etcd {", "\tendpoints http://127.0.0.1:2379", "\tlease 5s", "}"), "Caddyfile:5", `unrecognized option "lease"`},
		{"storage etcd tls unknown option", global("storage etcd {", "\tendpoints http://127.0.0.1:2379", "\ttls {", "\t\tcrt /c.pem", "\t}", "}"), "Caddyfile:6", `tls: unrecognized option "crt"`},
		{"storage etcd tls cert without key", global("storage etcd {", "\tendpoints http://127.0.0.1:2379", "\ttls cert /c.pem", "}"), "Caddyfile:5", "cert and key go together"},
		{"storage without a backend", global("storage"), "Caddyfile:3", "wrong argument count"},
		{"storage with two paths", global("storage bolt /a.db /b.db"), "Caddyfile:3", "wrong argument count"},
		{"issuer with another scheme (RFC 8414 §2)", global("issuer ftp://auth.example.com"), "Caddyfile:3", `issuer "ftp://auth.example.com"`},
		{"issuer with a query (RFC 8414 §2)", global("issuer https://auth.example.com?tenant=a"), "Caddyfile:3", "no query"},
		{"issuer with a fragment (RFC 8414 §2)", global("issuer https://auth.example.com#top"), "Caddyfile:3", "fragment"},
		{"issuer with user info", global("issuer https://admin@auth.example.com"), "Caddyfile:3", "user info"},
		{"relative issuer", global("issuer /auth"), "Caddyfile:3", `issuer "/auth"`},
		{"issuer without a value", global("issuer"), "Caddyfile:3", "wrong argument count"},
		{"two issuers on a line", global("issuer https://a.example https://b.example"), "Caddyfile:3", "wrong argument count"},
		{"token_ttl abc", global("token_ttl abc"), "Caddyfile:3", `token_ttl: invalid duration "abc"`},
		{"token_ttl negative", global("token_ttl -1h"), "Caddyfile:3", "token_ttl: invalid duration"},
		{"identity_ttl zero", global("identity_ttl 0s"), "Caddyfile:3", "identity_ttl: invalid duration"},
		{"identity_cache_size -1", global("identity_cache_size -1"), "Caddyfile:3", `identity_cache_size: want a positive number, got "-1"`},
		{"identity_cache_size abc", global("identity_cache_size abc"), "Caddyfile:3", "identity_cache_size"},
		{"token_concurrency 0", global("token_concurrency 0"), "Caddyfile:3", `token_concurrency: want a positive number, got "0"`},
		{"token_queue abc", global("token_queue abc"), "Caddyfile:3", `token_queue: want a positive number, got "abc"`},
		{"arguments to the global option", "{\n\tgatehouse bolt {\n\t\tissuer https://a.example\n\t}\n}\n", "Caddyfile:2", "wrong argument count"},
		{"header with a space (RFC 9110 §5.1)", site("gatehouse_protect {", `	header "bad header"`, "}"), "Caddyfile:3", `invalid header name "bad header"`},
		{"header without a value", site("gatehouse_protect {", "\theader", "}"), "Caddyfile:3", "wrong argument count"},
		{"scope with no arguments", site("gatehouse_protect {", "\tscope orders:read", "\tscope", "}"), "Caddyfile:4", "wrong argument count"},
		{"audience with two values", site("gatehouse_protect {", "\taudience https://a.example https://b.example", "}"), "Caddyfile:3", "wrong argument count"},
		{"argument to gatehouse_protect", site("gatehouse_protect orders:read {", "\taudience https://a.example", "}"), "Caddyfile:2", "wrong argument count"},
		{"argument to gatehouse_server", site("gatehouse_server oauth2"), "Caddyfile:2", "wrong argument count"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := adapter.Adapt([]byte(tc.caddyfile), nil)
			if err == nil {
				t.Fatalf("Caddyfile\n%s\nadapted to %s; want an error at %s", tc.caddyfile, out, tc.line)
			}
			msg := err.Error()
			if !regexp.MustCompile(regexp.QuoteMeta(tc.line) + `(\D|$)`).MatchString(msg) {
				t.Errorf("error %q, want it to name %s", msg, tc.line)
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want it to contain %q", msg, tc.msg)
			}
		})
	}
}

// TestCaddyfileExample: the demo the README points at adapts cleanly and
// wires up the app and both handlers.
func TestCaddyfileExample(t *testing.T) {
	const path = "../Caddyfile.example"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": path})
	if err != nil {
		t.Fatalf("%s does not adapt: %v", path, err)
	}
	for _, w := range warnings {
		t.Errorf("%s:%d: warning: %s: %s", w.File, w.Line, w.Directive, w.Message)
	}
	var cfg struct {
		Apps struct {
			Gatehouse *App           `json:"gatehouse"`
			HTTP      map[string]any `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted JSON does not decode: %v", err)
	}
	if cfg.Apps.Gatehouse == nil || cfg.Apps.Gatehouse.Issuer == "" {
		t.Fatalf("adapted config has no gatehouse app with an issuer: %s", out)
	}
	if err := cfg.Apps.Gatehouse.validate(); err != nil {
		t.Errorf("the example's gatehouse app does not validate: %v", err)
	}
	handlers := map[string]int{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if h, ok := v["handler"].(string); ok {
				handlers[h]++
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(cfg.Apps.HTTP)
	for _, h := range []string{"gatehouse_server", "gatehouse_protect"} {
		if handlers[h] != 1 {
			t.Errorf("the example has %d %s handlers, want 1 (handlers: %v)", handlers[h], h, handlers)
		}
	}
}

// TestAppValidate: configuration errors the JSON API can carry past the
// Caddyfile parser are caught when the app is provisioned.
func TestAppValidate(t *testing.T) {
	cases := []struct {
		name string
		app  App
		want string // "" for valid
	}{
		{"https issuer", App{Issuer: "https://auth.example.com"}, ""},
		{"http issuer for development", App{Issuer: "http://localhost:8080"}, ""},
		{"http issuer elsewhere (RFC 8414 §2)", App{Issuer: "http://auth.example.com"}, "https"},
		{"issuer with a path (RFC 8414 §2)", App{Issuer: "https://example.com/auth"}, ""},
		{"bolt storage", App{Issuer: "https://a.example", Storage: &Storage{Backend: "bolt", Path: "/tmp/x.db"}}, ""},
		{"no issuer", App{}, "issuer is required"},
		{"issuer with a query (RFC 8414 §2)", App{Issuer: "https://a.example?x=1"}, "no query"},
		{"issuer with an empty query (RFC 8414 §2)", App{Issuer: "https://a.example?"}, "no query"},
		{"issuer with a fragment (RFC 8414 §2)", App{Issuer: "https://a.example#f"}, "fragment"},
		{"issuer with an empty fragment (RFC 8414 §2)", App{Issuer: "https://a.example#"}, "fragment"},
		{"issuer without a host", App{Issuer: "https://:443"}, "host"},
		{"issuer with user info", App{Issuer: "https://u:p@a.example"}, "user info"},
		{"issuer without a host", App{Issuer: "https:///path"}, "absolute"},
		{"relative issuer", App{Issuer: "auth.example.com"}, "absolute"},
		{"negative token_ttl", App{Issuer: "https://a.example", TokenTTL: -1}, "negative"},
		{"negative identity_ttl", App{Issuer: "https://a.example", IdentityTTL: -1}, "negative"},
		{"negative identity_cache_size", App{Issuer: "https://a.example", IdentityCacheSize: -1}, "negative"},
		{"negative token_queue", App{Issuer: "https://a.example", TokenQueue: -1}, "negative"},
		{"unknown storage backend", App{Issuer: "https://a.example", Storage: &Storage{Backend: "redis"}}, `unknown storage backend "redis"`},
		{"etcd storage without endpoints", App{Issuer: "https://a.example", Storage: &Storage{Backend: "etcd"}}, "needs endpoints"},
		{"etcd storage with a bad endpoint", App{Issuer: "https://a.example", Storage: &Storage{Backend: "etcd", Etcd: &EtcdStorage{Endpoints: []string{"etcd:2379"}}}}, "not an http(s)://host:port URL"},
		{"etcd storage with a missing CA file", App{Issuer: "https://a.example", Storage: &Storage{Backend: "etcd", Etcd: &EtcdStorage{Endpoints: []string{"https://etcd:2379"}, TLS: &EtcdTLS{CA: "/nonexistent/ca.pem"}}}}, "tls ca"},
		{"etcd storage with a bolt path", App{Issuer: "https://a.example", Storage: &Storage{Backend: "etcd", Path: "/x.db", Etcd: &EtcdStorage{Endpoints: []string{"http://etcd:2379"}}}}, "path given with the etcd backend"},
		{"etcd storage", App{Issuer: "https://a.example", Storage: &Storage{Backend: "etcd", Etcd: &EtcdStorage{Endpoints: []string{"http://etcd:2379"}}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := tc.app
			err := app.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v, want the config accepted", err)
			case tc.want != "" && err == nil:
				t.Fatalf("validate accepted %+v, want an error mentioning %q", tc.app, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("validate: %v, want it to mention %q", err, tc.want)
			}
			if err == nil && app.SigningAlg != "ES256" {
				t.Errorf("signing_alg defaulted to %q, want ES256", app.SigningAlg)
			}
		})
	}
}
