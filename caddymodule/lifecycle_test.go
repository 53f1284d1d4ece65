package caddymodule

// The client lifecycle end to end, against the in-process gateway (see
// e2e_test.go for the helpers): PATCH reaching the hot path, secret
// rotation at the token endpoint, Hydra import with real hashes, and a
// backup restored.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

// useTestClock puts the running gateway's client cache on a test clock.
func useTestClock(t *testing.T) *clocktest.Clock {
	t.Helper()
	clock := clocktest.New(time.Now())
	clients := runningGatehouse(t).auth.Clients()
	clients.SetClock(clock.Now)
	t.Cleanup(func() { clients.SetClock(nil) })
	return clock
}

// tokenStatus asks the token endpoint for a token with Basic credentials
// and returns the status (and the token on success).
func tokenStatus(t *testing.T, id, secret string) (int, string) {
	t.Helper()
	resp, b := tokenRequest(t, http.MethodPost, "", formType, basicAuthz(id, secret), "grant_type=client_credentials")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(b, &out)
	return resp.StatusCode, out.AccessToken
}

// tokenRequestTo posts a form to an authorization server endpoint.
func tokenRequestTo(t *testing.T, endpoint, authz, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", formType)
	req.Header.Set("Authorization", authz)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func patchClient(t *testing.T, id, patch string) []byte {
	t.Helper()
	resp, b := adminRequest(t, http.MethodPatch, "/gatehouse/clients/"+id, patch,
		map[string]string{"Content-Type": "application/merge-patch+json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH %s %s: %d %s", id, patch, resp.StatusCode, b)
	}
	return b
}

// PATCHed metadata and owner reach the next request; disabling through
// PATCH refuses the client and all its tokens on every route, for good.
func TestPatchReachesTheHotPath(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	c := createClient(t, demoClient)
	bearer := "Bearer " + fetchToken(t, c).AccessToken
	if resp, body := callAPI(t, apiURL, bearer, nil); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, body)
	}

	inspector := createClient(t, `{"client_id":"inspector","introspect":true}`)
	introspect := func() map[string]any {
		t.Helper()
		resp, b := tokenRequestTo(t, authURL+pathIntrospect, basicAuthz(inspector.ClientID, inspector.ClientSecret),
			"token="+strings.TrimPrefix(bearer, "Bearer "))
		if resp.StatusCode != 200 {
			t.Fatalf("introspection: %d %s", resp.StatusCode, b)
		}
		return decodeJSON(t, b)
	}
	if ext, _ := introspect()["ext"].(map[string]any); ext["tier"] != "gold" {
		t.Fatalf("introspection before PATCH: ext %v", ext)
	}

	patchClient(t, c.ClientID, `{"owner":"team-b","metadata":{"tier":"platinum"}}`)
	res := introspect()
	ext, _ := res["ext"].(map[string]any)
	client, _ := res["client"].(map[string]any)
	if ext["tier"] != "platinum" || client["owner"] != "team-b" {
		t.Errorf("introspection right after PATCH (RFC 7662): ext %v client %v, want tier platinum, owner team-b", ext, client)
	}
	callAPI(t, apiURL, bearer, nil)
	h := be.last(t)
	_, claims := verifyIdentity(t, h.Get("X-Identity-Token"))
	ext, _ = claims["ext"].(map[string]any)
	realm, _ := ext["realm"].(map[string]any)
	if ext["tier"] != "platinum" || realm["id"] != "r-42" || claims["owner"] != "team-b" {
		t.Errorf("identity JWT after PATCH: owner %v ext %v, want team-b, tier platinum and realm kept", claims["owner"], ext)
	}
	if got := h.Get("X-Client-Owner"); got != "team-b" {
		t.Errorf("{gatehouse.owner} after PATCH = %q, want team-b", got)
	}

	patchClient(t, c.ClientID, `{"disabled":true}`)
	if res := introspect(); res["active"] != false || len(res) != 1 {
		t.Errorf("introspection of a disabled client's token: %v, want only active false (RFC 7662 §2.2)", res)
	}
	for _, route := range []string{apiURL, adminRoute} {
		if resp, _ := callAPI(t, route, bearer, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token of a disabled client on %s: %d, want 401", route, resp.StatusCode)
		}
	}
	if status, _ := tokenStatus(t, c.ClientID, c.ClientSecret); status != http.StatusUnauthorized {
		t.Errorf("token request of a disabled client: %d, want 401 invalid_client", status)
	}

	patchClient(t, c.ClientID, `{"disabled":false}`)
	if resp, _ := callAPI(t, apiURL, bearer, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token from before the client was disabled, after re-enabling: %d, want 401", resp.StatusCode)
	}
	status, tok := tokenStatus(t, c.ClientID, c.ClientSecret)
	if status != 200 {
		t.Fatalf("token request after re-enabling: %d", status)
	}
	if resp, _ := callAPI(t, apiURL, "Bearer "+tok, nil); resp.StatusCode != 200 {
		t.Errorf("new token after re-enabling: %d, want 200", resp.StatusCode)
	}
}

func rotate(t *testing.T, id, query string) string {
	t.Helper()
	resp, b := adminRequest(t, http.MethodPost, "/gatehouse/clients/"+id+"/secret"+query, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rotate %s%s: %d %s", id, query, resp.StatusCode, b)
	}
	var out struct {
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ClientSecret == "" {
		t.Fatalf("rotation response %s has no client_secret", b)
	}
	return out.ClientSecret
}

// Rotation with a grace period: old and new secrets both get tokens until
// it ends, then only the new one; tokens already issued keep working.
func TestRotateSecretGracePeriod(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	clock := useTestClock(t)
	c := createClient(t, demoClient)
	oldToken := fetchToken(t, c).AccessToken

	newSecret := rotate(t, c.ClientID, "?grace_period=1h")
	for _, s := range []string{c.ClientSecret, newSecret} {
		if status, _ := tokenStatus(t, c.ClientID, s); status != 200 {
			t.Errorf("during the grace period, secret %.6s…: token status %d, want 200", s, status)
		}
	}
	if resp, _ := callAPI(t, apiURL, "Bearer "+oldToken, nil); resp.StatusCode != 200 {
		t.Errorf("token from before a rotation with grace: %d, want 200", resp.StatusCode)
	}

	clock.Advance(time.Hour + time.Second)
	if status, _ := tokenStatus(t, c.ClientID, c.ClientSecret); status != http.StatusUnauthorized {
		t.Errorf("old secret after the grace period: token status %d, want 401", status)
	}
	if status, _ := tokenStatus(t, c.ClientID, newSecret); status != 200 {
		t.Errorf("new secret after the grace period: token status %d, want 200", status)
	}
}

// Rotation with grace 0: the old secret and every token the client holds
// stop at once, on every route.
func TestRotateSecretImmediately(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	c := createClient(t, demoClient)
	oldToken := fetchToken(t, c).AccessToken

	newSecret := rotate(t, c.ClientID, "?grace=0s")
	if status, _ := tokenStatus(t, c.ClientID, c.ClientSecret); status != http.StatusUnauthorized {
		t.Errorf("old secret after rotation with grace 0: token status %d, want 401", status)
	}
	for _, route := range []string{apiURL, adminRoute} {
		if resp, _ := callAPI(t, route, "Bearer "+oldToken, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("old token on %s after rotation with grace 0: %d, want 401", route, resp.StatusCode)
		}
	}
	status, tok := tokenStatus(t, c.ClientID, newSecret)
	if status != 200 {
		t.Fatalf("new secret: token status %d, want 200", status)
	}
	if resp, _ := callAPI(t, apiURL, "Bearer "+tok, nil); resp.StatusCode != 200 {
		t.Errorf("token of the new secret: %d, want 200", resp.StatusCode)
	}
}

// hydraPBKDF2Hash hashes like Hydra's default hasher (ory/x hasherx:
// PBKDF2-HMAC-SHA256, 16-byte salt, 32-byte key, 25,000 iterations).
func hydraPBKDF2Hash(t testing.TB, secret string) string {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	key := pbkdf2.Key([]byte(secret), salt, 25000, 32, sha256.New)
	return fmt.Sprintf("$pbkdf2-sha256$i=25000,l=32$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

type importReport struct {
	DryRun   bool `json:"dry_run"`
	Imported int  `json:"imported"`
	Skipped  int  `json:"skipped"`
	Failed   int  `json:"failed"`
	Results  []struct {
		Index             int      `json:"index"`
		ClientID          string   `json:"client_id"`
		Status            string   `json:"status"`
		Reason            string   `json:"reason"`
		ErrorStatus       int      `json:"error_status"`
		SecretOrigin      string   `json:"secret_origin"`
		ClientSecret      string   `json:"client_secret"`
		KeptFields        []string `json:"kept_fields"`
		DroppedFields     []string `json:"dropped_fields"`
		DroppedGrantTypes []string `json:"dropped_grant_types"`
	} `json:"results"`
}

func importDoc(t *testing.T, query, doc string) (importReport, []byte) {
	t.Helper()
	resp, b := adminRequest(t, http.MethodPost, "/gatehouse/clients/import"+query, doc, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import: %d %s", resp.StatusCode, b)
	}
	var rep importReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("import response %s: %v", b, err)
	}
	return rep, b
}

// A Hydra export with Hydra's secret hashes (PBKDF2 and bcrypt, made here
// with golang.org/x/crypto) imports; the migrated clients get tokens with
// the secrets they had in Hydra, and the tokens work on the protected API.
func TestHydraImport(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	const pbSecret, bcSecret = "hydra-pbkdf2-secret-kept-since-2021", "hydra-bcrypt-secret"
	pbHash := hydraPBKDF2Hash(t, pbSecret)
	bc, err := bcrypt.GenerateFromPassword([]byte(bcSecret), 10) // Hydra's default cost
	if err != nil {
		t.Fatal(err)
	}
	bcHash := string(bc)
	// As Hydra v2's admin API lists them, plus client_secret_hash from
	// Hydra's database (hydra_client.secret).
	export := fmt.Sprintf(`[
	{"client_id":"orders-pbkdf2","client_name":"Orders","client_secret_expires_at":0,"client_uri":"","contacts":null,
	 "created_at":"2023-06-01T10:20:30Z","updated_at":"2024-01-02T03:04:05Z","grant_types":["client_credentials","refresh_token"],
	 "jwks":{},"logo_uri":"","metadata":{"realm":{"id":"r-7"}},"owner":"team-a","policy_uri":"","redirect_uris":[],
	 "response_types":["code"],"scope":"orders:read orders:write","audience":["http://localhost:9081"],"skip_consent":false,
	 "subject_type":"public","token_endpoint_auth_method":"client_secret_basic","tos_uri":"","userinfo_signed_response_alg":"none",
	 "registration_access_token":"ory_at_do_not_keep","client_secret_hash":%q},
	{"client_id":"orders-bcrypt","grant_types":["client_credentials"],"scope":"orders:read","audience":["http://localhost:9081"],
	 "token_endpoint_auth_method":"client_secret_post","metadata":{},"client_secret_hash":%q},
	{"client_id":"web-login","grant_types":["authorization_code","refresh_token"],"response_types":["code"],
	 "redirect_uris":["https://app.example.com/cb"],"scope":"openid"},
	{"client_id":"no-hash","grant_types":["client_credentials"],"scope":"orders:read","audience":["http://localhost:9081"]},
	{"client_id":"bad-scope","grant_types":["client_credentials"],"scope":"a\"b"}
	]`, pbHash, bcHash)

	t.Run("dry run writes nothing", func(t *testing.T) {
		rep, _ := importDoc(t, "?dry_run=true", export)
		if !rep.DryRun || rep.Imported != 3 || rep.Skipped != 1 || rep.Failed != 1 {
			t.Fatalf("dry run: %+v, want 3 to import, 1 skipped, 1 failed", rep)
		}
		if resp, _ := adminRequest(t, http.MethodGet, "/gatehouse/clients/orders-pbkdf2", "", nil); resp.StatusCode != 404 {
			t.Fatalf("a dry run created a client (GET %d)", resp.StatusCode)
		}
	})

	rep, raw := importDoc(t, "", export)
	for _, leak := range []string{pbHash, bcHash, "$pbkdf2", "$2a$", "ory_at_do_not_keep", pbSecret, bcSecret} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("import response contains %q", leak)
		}
	}
	if rep.Imported != 3 || rep.Skipped != 1 || rep.Failed != 1 || len(rep.Results) != 5 {
		t.Fatalf("import: %+v, want 3 imported, 1 skipped, 1 failed", rep)
	}
	byID := map[string]int{}
	for i, r := range rep.Results {
		byID[r.ClientID] = i
		if r.Index != i {
			t.Errorf("result %d has index %d", i, r.Index)
		}
	}
	pb := rep.Results[byID["orders-pbkdf2"]]
	if pb.Status != "imported" || pb.SecretOrigin != "hydra_hash" || pb.ClientSecret != "" ||
		strings.Join(pb.DroppedGrantTypes, ",") != "refresh_token" || strings.Join(pb.DroppedFields, ",") != "registration_access_token" ||
		!strings.Contains(strings.Join(pb.KeptFields, ","), "response_types") {
		t.Errorf("orders-pbkdf2 result %+v", pb)
	}
	if r := rep.Results[byID["web-login"]]; r.Status != "skipped" || !strings.Contains(r.Reason, "client_credentials") {
		t.Errorf("web-login result %+v, want skipped for lack of client_credentials", r)
	}
	if r := rep.Results[byID["bad-scope"]]; r.Status != "error" || r.ErrorStatus != 400 || !strings.Contains(r.Reason, "scope") {
		t.Errorf("bad-scope result %+v, want a 400 naming scope", r)
	}
	noHash := rep.Results[byID["no-hash"]]
	if noHash.Status != "imported" || noHash.SecretOrigin != "generated" || len(noHash.ClientSecret) < 43 {
		t.Errorf("no-hash result %+v, want a generated secret shown once", noHash)
	}

	// The unknown Hydra fields are kept and shown; the hash is not.
	resp, b := adminRequest(t, http.MethodGet, "/gatehouse/clients/orders-pbkdf2", "", nil)
	var got map[string]any
	json.Unmarshal(b, &got)
	extra, _ := got["hydra_extra"].(map[string]any)
	if resp.StatusCode != 200 || extra["subject_type"] != "public" || got["created_at"] != "2023-06-01T10:20:30Z" {
		t.Errorf("GET imported client: %s, want hydra_extra and Hydra's created_at", b)
	}
	if strings.Contains(string(b), "$pbkdf2") || strings.Contains(string(b), "ory_at") {
		t.Errorf("GET imported client shows a hash or token: %s", b)
	}

	// The Hydra secrets work at the real token endpoint.
	status, tok := tokenStatus(t, "orders-pbkdf2", pbSecret)
	if status != 200 {
		t.Fatalf("token with the PBKDF2-hashed Hydra secret: %d, want 200", status)
	}
	if resp, body := callAPI(t, apiURL, "Bearer "+tok, nil); resp.StatusCode != 200 {
		t.Fatalf("token of an imported client on the API: %d %s", resp.StatusCode, body)
	}
	_, claims := verifyIdentity(t, be.last(t).Get("X-Identity-Token"))
	if ext, _ := claims["ext"].(map[string]any); ext["realm"].(map[string]any)["id"] != "r-7" || claims["owner"] != "team-a" {
		t.Errorf("identity JWT of the imported client: %v", claims)
	}
	if status, _ := tokenStatus(t, "orders-pbkdf2", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong secret for the PBKDF2 client: %d, want 401", status)
	}
	bcResp, _ := tokenRequest(t, http.MethodPost, "", formType, "",
		"grant_type=client_credentials&client_id=orders-bcrypt&client_secret="+bcSecret)
	if bcResp.StatusCode != 200 {
		t.Errorf("token with the bcrypt-hashed Hydra secret (client_secret_post): %d, want 200", bcResp.StatusCode)
	}
	if status, _ := tokenStatus(t, "no-hash", noHash.ClientSecret); status != 200 {
		t.Errorf("token with the generated secret of no-hash: %d, want 200", status)
	}

	// Importing again: 409 for each existing client, nothing changed.
	again, _ := importDoc(t, "", export)
	for _, r := range again.Results {
		if r.Status == "error" && r.ClientID != "bad-scope" && r.ErrorStatus != http.StatusConflict {
			t.Errorf("re-import of %s: %+v, want 409", r.ClientID, r)
		}
	}
	if again.Imported != 0 || again.Failed != 4 {
		t.Errorf("re-import: %+v, want nothing imported and 4 failures (3 conflicts, 1 invalid)", again)
	}
	if status, _ := tokenStatus(t, "orders-pbkdf2", pbSecret); status != 200 {
		t.Errorf("after a refused re-import the Hydra secret no longer works: %d", status)
	}
}

// Backup and restore, as the README documents it: GET /gatehouse/backup
// while serving; later, stop Gatehouse, put the copy in place of the
// database (or point `storage bolt` at it), start. Clients, secrets and
// tokens from before the backup work; later changes are gone.
func TestBackupRestore(t *testing.T) {
	be := newBackend(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "gatehouse.db")
	startGateway(t, db, be.Listener.Addr().String())
	c := createClient(t, demoClient)
	tok := fetchToken(t, c).AccessToken

	resp, backup := adminRequest(t, http.MethodGet, "/gatehouse/backup", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /gatehouse/backup: %d %s", resp.StatusCode, backup)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q, want application/octet-stream", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=gatehouse-") || !strings.HasSuffix(cd, ".db") {
		t.Errorf("Content-Disposition %q, want an attachment named gatehouse-….db", cd)
	}
	if resp.ContentLength != int64(len(backup)) || resp.ContentLength == 0 {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(backup))
	}
	copyPath := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(copyPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	if info, err := clientstore.InspectBackup(copyPath); err != nil || info.Clients != 1 {
		t.Fatalf("InspectBackup = %+v, %v; want a valid store with 1 client", info, err)
	}
	later := createClient(t, `{"client_id":"after-backup","scope":"orders:read"}`)

	check := func(t *testing.T) {
		t.Helper()
		if resp, body := callAPI(t, apiURL, "Bearer "+tok, nil); resp.StatusCode != 200 {
			t.Errorf("token from before the backup: %d %s, want 200", resp.StatusCode, body)
		}
		if status, _ := tokenStatus(t, c.ClientID, c.ClientSecret); status != 200 {
			t.Errorf("secret from before the backup: token status %d, want 200", status)
		}
		if resp, _ := adminRequest(t, http.MethodGet, "/gatehouse/clients/"+later.ClientID, "", nil); resp.StatusCode != 404 {
			t.Errorf("client created after the backup: GET %d, want 404", resp.StatusCode)
		}
	}

	t.Run("storage pointed at the backup file", func(t *testing.T) {
		startGateway(t, copyPath, be.Listener.Addr().String())
		check(t)
	})

	t.Run("backup copied over the stopped database", func(t *testing.T) {
		stopGatehouse(t, db)
		if err := os.WriteFile(db, backup, 0o600); err != nil {
			t.Fatal(err)
		}
		startGateway(t, db, be.Listener.Addr().String())
		check(t)
	})
}
