package introspection

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

func TestResultHasScopes(t *testing.T) {
	r := &Result{Claims: Claims{Scope: "orders:read orders:write admin"}}
	tests := []struct {
		required []string
		want     bool
	}{
		{nil, true},
		{[]string{}, true},
		{[]string{"orders:read"}, true},
		{[]string{"admin"}, true},
		{[]string{"orders:write", "orders:read"}, true},
		{[]string{"orders:read", "orders:read"}, true},
		{[]string{"orders:read", "orders:delete"}, false}, // all are needed
		{[]string{"orders:delete"}, false},
		{[]string{"orders"}, false}, // no prefix matching
		{[]string{"read"}, false},   // no suffix matching
		{[]string{"orders:read orders:write"}, false},
		{[]string{"orders:rea"}, false},
		{[]string{"Orders:Read"}, false},
		{[]string{""}, false},
	}
	for _, tt := range tests {
		if got := r.HasScopes(tt.required); got != tt.want {
			t.Errorf("HasScopes(%q) with scope %q = %v, want %v", tt.required, r.Claims.Scope, got, tt.want)
		}
	}
	empty := &Result{}
	if empty.HasScopes([]string{"orders:read"}) {
		t.Error("HasScopes on a token without scopes = true, want false")
	}
	if !empty.HasScopes(nil) {
		t.Error("HasScopes(nil) on a token without scopes = false, want true")
	}
}

func TestResultHasAudience(t *testing.T) {
	r := &Result{Claims: Claims{Audience: []string{"https://a.example.com", "https://b.example.com"}}}
	tests := []struct {
		aud  string
		want bool
	}{
		{"https://a.example.com", true},
		{"https://b.example.com", true},
		{"https://c.example.com", false},
		{"https://a.example", false},
		{"https://a.example.com/", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := r.HasAudience(tt.aud); got != tt.want {
			t.Errorf("HasAudience(%q) with aud %q = %v, want %v", tt.aud, r.Claims.Audience, got, tt.want)
		}
	}
	if (&Result{}).HasAudience(testAudience) {
		t.Error("HasAudience on a token without audiences = true, want false")
	}
}

// RFC 7662 §2.2, with the `token_use`, `ext` and `client` extensions.
func TestResultResponse(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	r := e.check(t, e.issue(cl).AccessToken)
	resp := r.Response()

	meta := clientstore.Metadata{"realm": map[string]any{"id": "r1"}}
	want := Response{
		Active:    true,
		Scope:     testScope,
		ClientID:  "svc",
		Sub:       "svc",
		TokenType: "Bearer",
		TokenUse:  "access_token",
		Exp:       fixedNow.Add(DefaultTokenTTL).Unix(),
		Iat:       fixedNow.Unix(),
		Nbf:       fixedNow.Unix(),
		Aud:       []string{testAudience},
		Iss:       testIssuer,
		Jti:       r.Claims.ID.String(),
		Ext:       meta,
		Client:    &ClientInfo{ClientID: "svc", Name: "Client svc", Owner: "team-a", Metadata: meta},
	}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("Response() =\n %+v\nwant\n %+v", resp, want)
	}
	if id, ok := ParseTokenID(resp.Jti); !ok || id != r.Claims.ID {
		t.Errorf("jti %q does not parse back to the token id", resp.Jti)
	}
}

func TestResultResponseJSON(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	if cl.SecretHash == "" {
		t.Fatal("test set-up: the created client has no secret hash to look for")
	}
	r := e.check(t, e.issue(cl).AccessToken)
	b, err := json.Marshal(r.Response())
	if err != nil {
		t.Fatalf("marshalling the response: %v", err)
	}
	// A secret hash is never handed out, nor logged (README, "How it
	// works"): not even a trace of its format.
	for _, bad := range []string{cl.SecretHash, "$hmac-sha256$", "secret"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("response JSON contains %q: %s", bad, b)
		}
	}

	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	wantKeys := []string{"active", "scope", "client_id", "sub", "token_type", "token_use", "exp", "iat", "nbf", "aud", "iss", "jti", "ext", "client"}
	for _, k := range wantKeys {
		if _, ok := got[k]; !ok {
			t.Errorf("response JSON lacks %q: %s", k, b)
		}
	}
	if len(got) != len(wantKeys) {
		t.Errorf("response JSON has %d members, want exactly %d (%s): %s", len(got), len(wantKeys), strings.Join(wantKeys, ", "), b)
	}
	if got["active"] != true {
		t.Errorf(`"active" = %v, want true`, got["active"])
	}
	if exp, _ := got["exp"].(json.Number).Int64(); exp != r.Claims.ExpiresAt {
		t.Errorf(`"exp" = %v, want the number %d`, got["exp"], r.Claims.ExpiresAt)
	}
	client, _ := got["client"].(map[string]any)
	for k, want := range map[string]any{"client_id": "svc", "client_name": "Client svc", "owner": "team-a"} {
		if client[k] != want {
			t.Errorf("client.%s = %v, want %v", k, client[k], want)
		}
	}
	if len(client) != 4 {
		t.Errorf("client has members %v, want exactly client_id, client_name, owner, metadata", client)
	}
	ext, _ := got["ext"].(map[string]any)
	realm, _ := ext["realm"].(map[string]any)
	if realm["id"] != "r1" {
		t.Errorf("ext.realm.id = %v, want %q", realm["id"], "r1")
	}
}
