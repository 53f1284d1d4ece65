package caddymodule

// `caddy gatehouse …` against the in-process gateway: the registered
// command is built as caddy builds it and run with flags; its output is
// captured. No Caddy binary is built.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/spf13/cobra"
)

// runCLI runs `caddy gatehouse args…` with a fresh command tree (flags
// keep no state between runs) and returns stdout, stderr and the error
// that makes caddy exit non-zero.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	reg, ok := caddycmd.Commands()["gatehouse"]
	if !ok {
		t.Fatal("the gatehouse command is not registered with caddycmd")
	}
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	gh := &cobra.Command{Use: reg.Name + " " + reg.Usage, Short: reg.Short, Long: reg.Long}
	reg.CobraFunc(gh)
	root.AddCommand(gh)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"gatehouse"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// cli runs a command that must succeed, against the test admin endpoint.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, "", append(args, "--admin", "localhost:2999")...)
	if err != nil {
		t.Fatalf("caddy gatehouse %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// cliFails runs a command that must fail and returns its error message.
func cliFails(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := runCLI(t, "", append(args, "--admin", "localhost:2999")...)
	if err == nil {
		t.Fatalf("caddy gatehouse %s succeeded (%s), want a failure", strings.Join(args, " "), out)
	}
	return err.Error()
}

// field reads "key  value" from human output.
func field(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s+(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", key, out)
	}
	return strings.TrimSpace(m[1])
}

func TestCLI(t *testing.T) {
	be := newBackend(t)
	dir := t.TempDir()
	startGateway(t, filepath.Join(dir, "gatehouse.db"), be.Listener.Addr().String())

	var secret string
	t.Run("client create --json prints the client with its secret once", func(t *testing.T) {
		out := cli(t, "client", "create", "--id", "cli-svc", "--name", "CLI service", "--scope", "orders:read orders:write",
			"--audience", "http://localhost:9081", "--owner", "team-a", "--metadata", `{"tier":"gold","realm":{"id":"r-1"}}`, "--json")
		var c map[string]any
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("--json output is not JSON: %v\n%s", err, out)
		}
		secret, _ = c["client_secret"].(string)
		md, _ := c["metadata"].(map[string]any)
		if len(secret) < 43 || c["client_name"] != "CLI service" || c["scope"] != "orders:read orders:write" || md["tier"] != "gold" {
			t.Fatalf("created %s", out)
		}
	})

	t.Run("client create prints a table and a warning", func(t *testing.T) {
		out, errOut, err := runCLI(t, "", "client", "create", "--id", "cli-two", "--scope", "orders:read", "--admin", "localhost:2999")
		if err != nil {
			t.Fatal(err)
		}
		if field(t, out, "client_id") != "cli-two" || len(field(t, out, "client_secret")) < 43 || !strings.HasPrefix(field(t, out, "etag"), `"`) {
			t.Errorf("create output:\n%s", out)
		}
		if !strings.Contains(errOut, "not shown again") {
			t.Errorf("stderr %q, want the warning that the secret is shown once", errOut)
		}
	})

	t.Run("client create refused: the server's message, non-zero exit", func(t *testing.T) {
		msg := cliFails(t, "client", "create", "--id", "cli-svc")
		if !strings.Contains(msg, "409") || !strings.Contains(msg, `client "cli-svc" already exists`) {
			t.Errorf("error %q, want HTTP 409 and the server's message", msg)
		}
		if msg := cliFails(t, "client", "create", "--metadata", "[1"); !strings.Contains(msg, "--metadata") {
			t.Errorf("error %q, want it to name --metadata", msg)
		}
		if msg := cliFails(t, "client", "create", "--scope", `a"b`); !strings.Contains(msg, "400") || !strings.Contains(msg, "scope") {
			t.Errorf("error %q, want a 400 naming scope", msg)
		}
	})

	t.Run("client list: a table, --owner, --json, every page", func(t *testing.T) {
		out := cli(t, "client", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "CLIENT_ID") || !strings.HasPrefix(lines[1], "cli-svc ") || !strings.HasPrefix(lines[2], "cli-two ") {
			t.Fatalf("list output:\n%s", out)
		}
		if strings.Contains(out, secret) {
			t.Error("list shows a secret")
		}
		var list []map[string]any
		if err := json.Unmarshal([]byte(cli(t, "client", "list", "--owner", "team-a", "--json")), &list); err != nil || len(list) != 1 || list[0]["client_id"] != "cli-svc" {
			t.Fatalf("list --owner team-a --json = %v (%v), want cli-svc only", list, err)
		}
		if err := json.Unmarshal([]byte(cli(t, "client", "list", "--page-size", "1", "--json")), &list); err != nil || len(list) != 2 {
			t.Fatalf("list --page-size 1 --json = %d clients (%v), want both, across pages", len(list), err)
		}
	})

	var etag string
	t.Run("client get", func(t *testing.T) {
		out := cli(t, "client", "get", "cli-svc")
		etag = field(t, out, "etag")
		if field(t, out, "owner") != "team-a" || !strings.Contains(field(t, out, "metadata"), `"tier":"gold"`) || regexp.MustCompile(`(?m)^client_secret\s`).MatchString(out) {
			t.Errorf("get output:\n%s", out)
		}
		if msg := cliFails(t, "client", "get", "nobody"); !strings.Contains(msg, "404") || !strings.Contains(msg, `client "nobody" not found`) {
			t.Errorf("get unknown: %q", msg)
		}
	})

	t.Run("client update merges (RFC 7396) and honours --if-match (RFC 7232)", func(t *testing.T) {
		if msg := cliFails(t, "client", "update", "cli-svc", "--owner", "x", "--if-match", `"999999"`); !strings.Contains(msg, "412") {
			t.Errorf("update with a stale ETag: %q, want 412", msg)
		}
		out := cli(t, "client", "update", "cli-svc", "--metadata", `{"tier":null,"plan":"pro"}`, "--owner", "team-b",
			"--if-match", strings.Trim(etag, `"`), "--json")
		var c struct {
			Owner    string         `json:"owner"`
			Metadata map[string]any `json:"metadata"`
		}
		json.Unmarshal([]byte(out), &c)
		if c.Owner != "team-b" || c.Metadata["plan"] != "pro" || c.Metadata["tier"] != nil || c.Metadata["realm"] == nil {
			t.Errorf("after update: %s", out)
		}
		out = cli(t, "client", "update", "cli-svc", "--patch", `{"owner":"from-patch","client_name":"Patched"}`, "--owner", "team-a")
		if field(t, out, "owner") != "team-a" || field(t, out, "client_name") != "Patched" {
			t.Errorf("--patch with a flag on top:\n%s", out)
		}
		if msg := cliFails(t, "client", "update", "cli-svc"); !strings.Contains(msg, "nothing to change") {
			t.Errorf("update without changes: %q", msg)
		}
	})

	var accessToken string
	t.Run("token prints a token that works", func(t *testing.T) {
		out, errOut, err := runCLI(t, "", "token", "--client-id", "cli-svc", "--client-secret", secret, "--scope", "orders:read",
			"--audience", "http://localhost:9081", "--admin", "localhost:2999")
		if err != nil {
			t.Fatalf("token: %v %s", err, errOut)
		}
		accessToken = strings.TrimSpace(out)
		if strings.Contains(accessToken, "\n") || !strings.Contains(errOut, "expires in") {
			t.Fatalf("token stdout %q, stderr %q; want the token alone on stdout", out, errOut)
		}
		if resp, body := callAPI(t, apiURL, "Bearer "+accessToken, nil); resp.StatusCode != 200 {
			t.Fatalf("CLI token on the API: %d %s", resp.StatusCode, body)
		}
		t.Setenv(secretEnv, secret)
		out = cli(t, "token", "--client-id", "cli-svc", "--auth-method", "client_secret_basic", "--token-url", authURL+pathToken, "--json")
		var tok map[string]any
		if err := json.Unmarshal([]byte(out), &tok); err != nil || tok["token_type"] != "Bearer" || tok["access_token"] == "" {
			t.Fatalf("token --json with the secret from %s: %s", secretEnv, out)
		}
		t.Setenv(secretEnv, "")
		if msg := cliFails(t, "token", "--client-id", "cli-svc", "--client-secret", "wrong"); !strings.Contains(msg, "invalid_client") {
			t.Errorf("token with a wrong secret: %q, want invalid_client", msg)
		}
		if msg := cliFails(t, "token", "--client-id", "cli-svc", "--client-secret", secret, "--audience", "https://elsewhere.example"); !strings.Contains(msg, "invalid_target") {
			t.Errorf("token for an audience the client may not have: %q, want invalid_target", msg)
		}
		if msg := cliFails(t, "token", "--client-id", "cli-svc"); !strings.Contains(msg, secretEnv) {
			t.Errorf("token without a secret: %q", msg)
		}
	})

	t.Run("introspect (RFC 7662)", func(t *testing.T) {
		out := cli(t, "client", "create", "--id", "inspector", "--introspect", "--json")
		var ins map[string]any
		json.Unmarshal([]byte(out), &ins)
		insSecret := ins["client_secret"].(string)

		out = cli(t, "introspect", accessToken, "--client-id", "inspector", "--client-secret", insSecret)
		if field(t, out, "active") != "true" || field(t, out, "client_id") != "cli-svc" || !strings.Contains(field(t, out, "exp"), "Z)") {
			t.Errorf("introspect output:\n%s", out)
		}
		stdout, _, err := runCLI(t, accessToken+"\n", "introspect", "-", "--client-id", "inspector", "--client-secret", insSecret,
			"--json", "--admin", "localhost:2999")
		var res map[string]any
		if err != nil || json.Unmarshal([]byte(stdout), &res) != nil || res["active"] != true || res["scope"] != "orders:read" {
			t.Errorf("introspect - --json: %v %s", err, stdout)
		}
		out = cli(t, "introspect", "not-a-token", "--client-id", "inspector", "--client-secret", insSecret, "--json")
		if strings.TrimSpace(out) != "{\n  \"active\": false\n}" {
			t.Errorf("introspect of garbage: %q, want only active false (RFC 7662 §2.2)", out)
		}
		if msg := cliFails(t, "introspect", accessToken, "--client-id", "cli-svc", "--client-secret", secret); !strings.Contains(msg, "401") {
			t.Errorf("introspect by a client without the permission: %q, want 401", msg)
		}
	})

	t.Run("client disable and enable", func(t *testing.T) {
		out := cli(t, "client", "disable", "cli-svc")
		if field(t, out, "disabled") != "true" {
			t.Errorf("disable output:\n%s", out)
		}
		if resp, _ := callAPI(t, apiURL, "Bearer "+accessToken, nil); resp.StatusCode != 401 {
			t.Errorf("token of a client disabled with the CLI: %d, want 401", resp.StatusCode)
		}
		if msg := cliFails(t, "token", "--client-id", "cli-svc", "--client-secret", secret); !strings.Contains(msg, "invalid_client") {
			t.Errorf("token for a disabled client: %q", msg)
		}
		cli(t, "client", "enable", "cli-svc")
		cli(t, "token", "--client-id", "cli-svc", "--client-secret", secret)
	})

	t.Run("client rotate-secret", func(t *testing.T) {
		out, errOut, err := runCLI(t, "", "client", "rotate-secret", "cli-svc", "--grace", "0s", "--admin", "localhost:2999")
		if err != nil {
			t.Fatal(err)
		}
		fresh := field(t, out, "client_secret")
		if fresh == secret || !strings.Contains(errOut, "revoked") {
			t.Fatalf("rotate output %s / %s", out, errOut)
		}
		if msg := cliFails(t, "token", "--client-id", "cli-svc", "--client-secret", secret); !strings.Contains(msg, "invalid_client") {
			t.Errorf("old secret after rotate-secret --grace 0s: %q", msg)
		}
		cli(t, "token", "--client-id", "cli-svc", "--client-secret", fresh)
		out = cli(t, "client", "rotate-secret", "cli-svc", "--grace", "1h", "--json")
		var c map[string]any
		json.Unmarshal([]byte(out), &c)
		cli(t, "token", "--client-id", "cli-svc", "--client-secret", fresh) // still valid for an hour
		cli(t, "token", "--client-id", "cli-svc", "--client-secret", c["client_secret"].(string))
		if msg := cliFails(t, "client", "rotate-secret", "cli-svc", "--grace", "forever"); !strings.Contains(msg, "grace_period") {
			t.Errorf("rotate with a bad grace: %q", msg)
		}
	})

	t.Run("client import from a Hydra export", func(t *testing.T) {
		const hydraSecret = "kept-from-hydra"
		export := fmt.Sprintf(`[{"client_id":"from-hydra","grant_types":["client_credentials"],"scope":"orders:read",
			"audience":["http://localhost:9081"],"response_types":["code"],"client_secret_hash":%q},
			{"client_id":"hydra-web","grant_types":["authorization_code"]}]`, hydraPBKDF2Hash(t, hydraSecret))
		file := filepath.Join(dir, "hydra.json")
		if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, _, err := runCLI(t, export, "client", "import", "-", "--dry-run", "--admin", "localhost:2999")
		if err != nil || !strings.Contains(stdout, "would_import") || !strings.Contains(stdout, "Dry run") {
			t.Fatalf("import - --dry-run: %v\n%s", err, stdout)
		}
		out := cli(t, "client", "import", file)
		if !regexp.MustCompile(`(?m)^0\s+from-hydra\s+imported\s+keeps its Hydra secret`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^1\s+hydra-web\s+skipped`).MatchString(out) || !strings.Contains(out, "Imported 1, skipped 1, failed 0.") {
			t.Errorf("import output:\n%s", out)
		}
		cli(t, "token", "--client-id", "from-hydra", "--client-secret", hydraSecret)
		msg := cliFails(t, "client", "import", file)
		if !strings.Contains(msg, "1 of 2 clients failed") {
			t.Errorf("re-import: %q, want a non-zero exit for the 409", msg)
		}
		if msg := cliFails(t, "client", "import", filepath.Join(dir, "missing.json")); !strings.Contains(msg, "missing.json") {
			t.Errorf("import of a missing file: %q", msg)
		}
	})

	t.Run("backup", func(t *testing.T) {
		file := filepath.Join(dir, "backup.db")
		out := cli(t, "backup", file)
		if !strings.Contains(out, "Wrote "+file) || !strings.Contains(out, "clients") {
			t.Errorf("backup output: %s", out)
		}
		info, err := clientstore.InspectBackup(file)
		if err != nil || info.Clients < 4 {
			t.Fatalf("InspectBackup(%s) = %+v, %v", file, info, err)
		}
		if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
			t.Errorf("backup file mode %v, want 0600: it holds keys", st.Mode().Perm())
		}
		if msg := cliFails(t, "backup", file); !strings.Contains(msg, "--force") {
			t.Errorf("backup over an existing file: %q", msg)
		}
		cli(t, "backup", file, "--force", "--json")
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".backup.db.*"))
		if len(leftovers) != 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	})

	t.Run("client delete", func(t *testing.T) {
		if out := cli(t, "client", "delete", "cli-two"); !strings.Contains(out, "Deleted client cli-two") {
			t.Errorf("delete output: %s", out)
		}
		if msg := cliFails(t, "client", "delete", "cli-two"); !strings.Contains(msg, "404") {
			t.Errorf("delete again: %q", msg)
		}
	})

	t.Run("the admin address comes from --config like caddy reload", func(t *testing.T) {
		caddyfile := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(caddyfile, []byte("{\n\tadmin localhost:2999\n}\nhttp://localhost:9080 {\n\trespond ok\n}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runCLI(t, "", "client", "get", "cli-svc", "--config", caddyfile, "--adapter", "caddyfile")
		if err != nil || field(t, out, "client_id") != "cli-svc" {
			t.Fatalf("get with --config: %v %s %s", err, out, errOut)
		}
		_, _, err = runCLI(t, "", "client", "list", "--admin", "localhost:1")
		if err == nil || !strings.Contains(err.Error(), "is Caddy running") {
			t.Errorf("unreachable admin API: %v, want a hint", err)
		}
	})

	// Whatever the CLI did, no secret reached the server's client records
	// as anything but a hash, and a GET still shows none.
	resp, b := adminRequest(t, http.MethodGet, "/gatehouse/clients", "", nil)
	if resp.StatusCode != 200 || strings.Contains(string(b), secret) || strings.Contains(string(b), "client_secret\"") {
		t.Errorf("client list after the CLI run: %s", b)
	}
}
