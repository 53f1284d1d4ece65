package clientstore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hydraExport is what Ory Hydra v2's admin API (GET /admin/clients)
// returns for three typical clients, with every field Hydra writes, empty
// ones included. Hydra never exports secrets; Gatehouse's import reads the
// hash from client_secret_hash when the operator adds it from Hydra's
// database (hydra_client.secret).
const hydraExport = `[
  {
    "client_id": "orders-service",
    "client_name": "Orders service",
    "client_secret_expires_at": 0,
    "client_uri": "",
    "contacts": null,
    "created_at": "2023-06-01T10:20:30Z",
    "updated_at": "2024-01-02T03:04:05Z",
    "grant_types": ["client_credentials", "refresh_token"],
    "jwks": {},
    "logo_uri": "",
    "metadata": {"realm": {"id": "r-42"}, "tier": "gold", "big": 12345678901234567890},
    "owner": "team-a",
    "policy_uri": "",
    "redirect_uris": [],
    "allowed_cors_origins": [],
    "response_types": ["code"],
    "scope": "orders:read orders:write",
    "audience": ["https://api.example.com"],
    "skip_consent": false,
    "skip_logout_consent": null,
    "subject_type": "public",
    "token_endpoint_auth_method": "client_secret_basic",
    "tos_uri": "",
    "userinfo_signed_response_alg": "none",
    "access_token_strategy": "opaque",
    "authorization_code_grant_access_token_lifespan": null,
    "client_credentials_grant_access_token_lifespan": "30m0s",
    "registration_access_token": "ory_at_sensitive",
    "registration_client_uri": "https://hydra.example.com/oauth2/register/orders-service",
    "client_secret_hash": "$HASH$"
  },
  {
    "client_id": "web-app",
    "client_name": "Web app",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code", "id_token"],
    "redirect_uris": ["https://app.example.com/callback"],
    "scope": "openid offline",
    "token_endpoint_auth_method": "client_secret_basic",
    "metadata": {}
  },
  {
    "client_id": "spa",
    "grant_types": ["client_credentials"],
    "token_endpoint_auth_method": "none"
  }
]`

func TestParseHydraExport(t *testing.T) {
	imps, err := ParseHydraClients([]byte(strings.Replace(hydraExport, "$HASH$", "$pbkdf2-sha256$i=25000,l=32$AQEBAQEBAQEBAQEBAQEBAQ$AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI", 1)))
	if err != nil {
		t.Fatalf("ParseHydraClients = %v", err)
	}
	if len(imps) != 3 {
		t.Fatalf("%d clients parsed, want 3", len(imps))
	}

	orders := imps[0]
	if orders.Err != nil || orders.Skip != "" || orders.Client == nil {
		t.Fatalf("orders-service: err=%v skip=%q, want it importable", orders.Err, orders.Skip)
	}
	c := orders.Client
	if c.ID != "orders-service" || c.Name != "Orders service" || c.Owner != "team-a" ||
		c.Scope != "orders:read orders:write" || !reflect.DeepEqual(c.Audience, []string{"https://api.example.com"}) ||
		c.TokenEndpointAuthMethod != AuthMethodBasic || c.AccessTokenStrategy != TokenStrategyOpaque {
		t.Errorf("orders-service mapped to %+v", c)
	}
	if !reflect.DeepEqual(c.GrantTypes, []string{GrantClientCredentials}) || !reflect.DeepEqual(orders.DroppedGrantTypes, []string{"refresh_token"}) {
		t.Errorf("grant_types %v dropped %v, want [client_credentials] and refresh_token reported", c.GrantTypes, orders.DroppedGrantTypes)
	}
	if v, _ := c.Metadata.Lookup("big"); v != json.Number("12345678901234567890") {
		t.Errorf("metadata big = %#v, want the exact number", v)
	}
	if v, _ := c.Metadata.Lookup("realm.id"); v != "r-42" {
		t.Errorf("metadata realm.id = %v, want r-42", v)
	}
	if !c.CreatedAt.Equal(time.Date(2023, 6, 1, 10, 20, 30, 0, time.UTC)) {
		t.Errorf("created_at = %v, want Hydra's 2023-06-01T10:20:30Z kept", c.CreatedAt)
	}
	if c.JWKS != nil {
		t.Errorf("jwks = %s, want Hydra's empty {} read as none", c.JWKS)
	}
	if !strings.HasPrefix(orders.SecretHash, "$pbkdf2-sha256$") {
		t.Errorf("SecretHash = %.16q, want the imported PBKDF2 hash", orders.SecretHash)
	}
	wantKept := []string{"client_credentials_grant_access_token_lifespan", "client_secret_expires_at", "registration_client_uri",
		"response_types", "skip_consent", "subject_type", "userinfo_signed_response_alg"}
	if !reflect.DeepEqual(orders.KeptFields, wantKept) {
		t.Errorf("KeptFields = %q, want %q (non-empty unknown fields, sorted)", orders.KeptFields, wantKept)
	}
	if !reflect.DeepEqual(orders.DroppedFields, []string{"registration_access_token"}) {
		t.Errorf("DroppedFields = %q, want registration_access_token", orders.DroppedFields)
	}
	var extra map[string]json.RawMessage
	if err := json.Unmarshal(c.HydraExtra, &extra); err != nil {
		t.Fatalf("HydraExtra %s is not an object: %v", c.HydraExtra, err)
	}
	if string(extra["response_types"]) != `["code"]` || string(extra["subject_type"]) != `"public"` {
		t.Errorf("HydraExtra = %s, want the unknown fields with their values", c.HydraExtra)
	}
	for _, leak := range []string{"ory_at_sensitive", "pbkdf2", "registration_access_token", "redirect_uris"} {
		if strings.Contains(string(c.HydraExtra), leak) {
			t.Errorf("HydraExtra %s contains %q", c.HydraExtra, leak)
		}
	}

	if web := imps[1]; web.Client != nil || !strings.Contains(web.Skip, "client_credentials") || web.Index != 1 || web.ClientID != "web-app" {
		t.Errorf("web-app (authorization_code only): client=%v skip=%q, want skipped for lack of client_credentials", web.Client, web.Skip)
	}
	if spa := imps[2]; spa.Client != nil || !strings.Contains(spa.Skip, "none") {
		t.Errorf("spa (public client): client=%v skip=%q, want skipped as a public client", spa.Client, spa.Skip)
	}
}

func TestParseHydraShapes(t *testing.T) {
	one := `{"client_id":"a","grant_types":["client_credentials"]}`
	tests := []struct {
		name, doc string
		ids       []string
	}{
		{"admin API list (array)", "[" + one + "]", []string{"a"}},
		{"admin API get (one object)", one, []string{"a"}},
		{"hydra CLI list --format json", `{"items":[` + one + `,{"client_id":"b","grant_types":["client_credentials"]}],"next_page_token":"x","is_last_page":true}`, []string{"a", "b"}},
		{"empty array", "[]", nil},
		{"Gatehouse's own output re-imported", `{"client_id":"g","grant_types":["client_credentials"],"scope":"s","audience":null,"owner":"o","metadata":null,` +
			`"token_endpoint_auth_method":"client_secret_post","disabled":true,"introspect":true,"hydra_extra":{"subject_type":"public"},` +
			`"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}`, []string{"g"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imps, err := ParseHydraClients([]byte(tt.doc))
			if err != nil {
				t.Fatalf("ParseHydraClients = %v", err)
			}
			var ids []string
			for _, imp := range imps {
				if imp.Err != nil || imp.Client == nil {
					t.Fatalf("client %d: err=%v skip=%q", imp.Index, imp.Err, imp.Skip)
				}
				ids = append(ids, imp.Client.ID)
			}
			if !reflect.DeepEqual(ids, tt.ids) {
				t.Fatalf("ids %q, want %q", ids, tt.ids)
			}
		})
	}
	imps, _ := ParseHydraClients([]byte(tests[4].doc))
	if g := imps[0].Client; !g.Disabled || !g.Introspect || g.TokenEndpointAuthMethod != AuthMethodPost || string(g.HydraExtra) != `{"subject_type":"public"}` {
		t.Errorf("re-imported Gatehouse client %+v, want disabled, introspect, its auth method and hydra_extra kept", g)
	}
}

func TestParseHydraDocumentErrors(t *testing.T) {
	for _, doc := range []string{"", "   ", "null", `"a"`, "42", "[", `[{"client_id":"a"}] x`, `{"items":{"client_id":"a"}}`, "{"} {
		if imps, err := ParseHydraClients([]byte(doc)); err == nil {
			t.Errorf("ParseHydraClients(%q) = %d clients, nil error; want an error", doc, len(imps))
		}
	}
	many := "[" + strings.Repeat("{},", MaxImportClients) + "{}]"
	if _, err := ParseHydraClients([]byte(many)); err == nil {
		t.Errorf("ParseHydraClients of %d clients = nil error, want the limit enforced", MaxImportClients+1)
	}
}

func TestParseHydraClientErrors(t *testing.T) {
	tests := []struct {
		name, client, field string
	}{
		{"not an object", `42`, ""},
		{"no client_id", `{"grant_types":["client_credentials"]}`, "client_id"},
		{"client_id Gatehouse cannot route", `{"client_id":"a/b","grant_types":["client_credentials"]}`, "client_id"},
		{"plaintext secret", `{"client_id":"a","grant_types":["client_credentials"],"client_secret":"hunter2"}`, "client_secret"},
		{"unsupported hash", `{"client_id":"a","grant_types":["client_credentials"],"client_secret_hash":"$argon2id$v=19$x"}`, "client_secret_hash"},
		{"scope of the wrong type", `{"client_id":"a","grant_types":["client_credentials"],"scope":["a"]}`, "scope"},
		{"scope outside RFC 6749 §3.3", `{"client_id":"a","grant_types":["client_credentials"],"scope":"a\"b"}`, "scope"},
		{"metadata not an object", `{"client_id":"a","grant_types":["client_credentials"],"metadata":[1]}`, "metadata"},
		{"grant_types not an array", `{"client_id":"a","grant_types":"client_credentials"}`, "grant_types"},
		{"created_at not a time", `{"client_id":"a","grant_types":["client_credentials"],"created_at":"yesterday"}`, "created_at"},
		{"unsupported auth method", `{"client_id":"a","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_jwt"}`, "token_endpoint_auth_method"},
		{"private key in jwks", `{"client_id":"a","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt",` +
			`"jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a","d":"hunter2"}]}}`, "jwks"},
		{"disabled not a bool", `{"client_id":"a","grant_types":["client_credentials"],"disabled":"yes"}`, "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imps, err := ParseHydraClients([]byte("[" + tt.client + "]"))
			if err != nil {
				t.Fatalf("ParseHydraClients = %v, want per-client errors only", err)
			}
			imp := imps[0]
			if imp.Err == nil || imp.Client != nil {
				t.Fatalf("client %s: err=nil client=%+v, want an error", tt.client, imp.Client)
			}
			if tt.field != "" {
				wantFieldError(t, imp.Err, tt.field)
			}
			if strings.Contains(imp.Err.Error(), "hunter2") {
				t.Errorf("error %q repeats the secret", imp.Err)
			}
		})
	}
}

// FuzzParseHydraClients: the import document is untrusted input. Parsing
// never panics; whatever it accepts is a valid client that keeps no
// credential of the source server.
func FuzzParseHydraClients(f *testing.F) {
	f.Add(hydraExport)
	f.Add(`{"items":[{"client_id":"a","grant_types":["client_credentials"],"registration_access_token":"t"}]}`)
	f.Add(`{"client_id":"a","grant_types":["client_credentials"],"metadata":{"a":{"b":null}},"hydra_extra":{"x":1}}`)
	f.Add(`[{"client_id":"a","grant_types":null,"jwks":{"keys":[{"kty":"EC"}]}}, 1, null, "x"]`)
	f.Add(`[{"client_id":"","client_secret_hash":"$2a$04$abcdefghijklmnopqrstuu9dRJa4CZ.1XWQ5Tf7VJ1gmCRbzJKsVi"}]`)
	f.Fuzz(func(t *testing.T, doc string) {
		imps, err := ParseHydraClients([]byte(doc))
		if err != nil {
			return
		}
		for _, imp := range imps {
			if imp.Client == nil {
				if imp.Err == nil && imp.Skip == "" {
					t.Fatalf("client %d: neither imported, skipped nor failed", imp.Index)
				}
				continue
			}
			if imp.Err != nil || imp.Skip != "" {
				t.Fatalf("client %d: has a client and err=%v skip=%q", imp.Index, imp.Err, imp.Skip)
			}
			if err := imp.Client.Validate(); err != nil {
				t.Fatalf("client %d passed import but fails Validate: %v", imp.Index, err)
			}
			var extra map[string]json.RawMessage
			if len(imp.Client.HydraExtra) > 0 {
				if err := json.Unmarshal(imp.Client.HydraExtra, &extra); err != nil {
					t.Fatalf("HydraExtra %q is not an object", imp.Client.HydraExtra)
				}
			}
			for _, k := range []string{"registration_access_token", "client_secret", "client_secret_hash"} {
				if _, ok := extra[k]; ok {
					t.Fatalf("HydraExtra keeps %s", k)
				}
			}
		}
	})
}
