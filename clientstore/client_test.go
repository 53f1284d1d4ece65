package clientstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validClient returns a client that passes Validate, for tests to break one
// field at a time.
func validClient() *Client {
	return &Client{
		ID:                      "billing-service",
		Name:                    "Billing service",
		GrantTypes:              []string{GrantClientCredentials},
		Scope:                   "invoices:read invoices:write",
		Audience:                []string{"https://api.example.com"},
		Owner:                   "team-billing",
		Metadata:                Metadata{"tier": "gold"},
		TokenEndpointAuthMethod: AuthMethodBasic,
	}
}

// wantFieldError fails unless err is a *FieldError naming field.
func wantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want *FieldError for field %q", field)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v (%T), want *FieldError for field %q", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("got *FieldError for field %q (%v), want field %q", fe.Field, err, field)
	}
	if !strings.HasPrefix(err.Error(), field+": ") || fe.Message == "" {
		t.Fatalf("error text %q should be %q followed by a message", err.Error(), field+": ")
	}
}

func TestNormalizeDefaults(t *testing.T) {
	tests := []struct {
		name       string
		in         Client
		wantGrants []string
		wantMethod string
		wantScope  string
	}{
		{
			name:       "empty client gets client_credentials and client_secret_basic (RFC 6749 §4.4, §2.3.1)",
			in:         Client{ID: "a"},
			wantGrants: []string{GrantClientCredentials},
			wantMethod: AuthMethodBasic,
			wantScope:  "",
		},
		{
			name:       "explicit client_secret_post is kept",
			in:         Client{ID: "a", TokenEndpointAuthMethod: AuthMethodPost},
			wantGrants: []string{GrantClientCredentials},
			wantMethod: AuthMethodPost,
		},
		{
			name:       "explicit grant types are kept",
			in:         Client{ID: "a", GrantTypes: []string{GrantClientCredentials}},
			wantGrants: []string{GrantClientCredentials},
			wantMethod: AuthMethodBasic,
		},
		{
			name:       "scope whitespace folded to single spaces (RFC 6749 §3.3 delimiter is %x20)",
			in:         Client{ID: "a", Scope: "  read\t write\n\r\nadmin  "},
			wantGrants: []string{GrantClientCredentials},
			wantMethod: AuthMethodBasic,
			wantScope:  "read write admin",
		},
		{
			name:       "whitespace-only scope becomes empty",
			in:         Client{ID: "a", Scope: " \t\n "},
			wantGrants: []string{GrantClientCredentials},
			wantMethod: AuthMethodBasic,
			wantScope:  "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			if err := c.Normalize(); err != nil {
				t.Fatalf("Normalize() = %v, want nil", err)
			}
			if !reflect.DeepEqual(c.GrantTypes, tt.wantGrants) {
				t.Errorf("GrantTypes = %q, want %q", c.GrantTypes, tt.wantGrants)
			}
			if c.TokenEndpointAuthMethod != tt.wantMethod {
				t.Errorf("TokenEndpointAuthMethod = %q, want %q", c.TokenEndpointAuthMethod, tt.wantMethod)
			}
			if c.Scope != tt.wantScope {
				t.Errorf("Scope = %q, want %q", c.Scope, tt.wantScope)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Client)
	}{
		{"the base client", func(c *Client) {}},
		{"client_id of exactly MaxIDLength", func(c *Client) { c.ID = strings.Repeat("a", MaxIDLength) }},
		{"client_id with every allowed punctuation", func(c *Client) { c.ID = "Az09-._~:@+" }},
		{"scope with every boundary byte of RFC 6749 §3.3 (%x21 %x23 %x5B %x5D %x7E)", func(c *Client) { c.Scope = "! # [ ] ~ a!#[]~z" }},
		{"empty scope", func(c *Client) { c.Scope = "" }},
		{"scope of exactly MaxScopeLength", func(c *Client) { c.Scope = strings.Repeat("s", MaxScopeLength) }},
		{"non-ASCII name and owner", func(c *Client) { c.Name, c.Owner = "Zoë's app ☃", "équipe" }},
		{"name of exactly MaxNameLength", func(c *Client) { c.Name = strings.Repeat("n", MaxNameLength) }},
		{"owner of exactly MaxOwnerLength", func(c *Client) { c.Owner = strings.Repeat("o", MaxOwnerLength) }},
		{"no audience", func(c *Client) { c.Audience = nil }},
		{"MaxAudiences audiences of MaxAudienceLength", func(c *Client) {
			c.Audience = make([]string, MaxAudiences)
			for i := range c.Audience {
				c.Audience[i] = strings.Repeat("x", MaxAudienceLength)
			}
		}},
		{"nil metadata", func(c *Client) { c.Metadata = nil }},
		{"metadata of exactly MaxMetadataBytes", func(c *Client) {
			// {"k":"…"} is 8 bytes of JSON around the value.
			c.Metadata = Metadata{"k": strings.Repeat("x", MaxMetadataBytes-8)}
		}},
		{"client_secret_post", func(c *Client) { c.TokenEndpointAuthMethod = AuthMethodPost }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validClient()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if err := c.Normalize(); err != nil {
				t.Fatalf("Normalize() = %v, want nil", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	manyAudiences := make([]string, MaxAudiences+1)
	for i := range manyAudiences {
		manyAudiences[i] = "aud"
	}
	tests := []struct {
		name      string
		mutate    func(c *Client)
		wantField string
	}{
		// client_id
		{"empty client_id", func(c *Client) { c.ID = "" }, "client_id"},
		{"client_id longer than MaxIDLength", func(c *Client) { c.ID = strings.Repeat("a", MaxIDLength+1) }, "client_id"},
		{"client_id with slash", func(c *Client) { c.ID = "a/b" }, "client_id"},
		{"client_id with space", func(c *Client) { c.ID = "a b" }, "client_id"},
		{"client_id with non-ASCII", func(c *Client) { c.ID = "clïent" }, "client_id"},
		{"client_id with percent", func(c *Client) { c.ID = "a%2F" }, "client_id"},
		{"client_id with newline", func(c *Client) { c.ID = "a\nb" }, "client_id"},
		{"client_id with NUL", func(c *Client) { c.ID = "a\x00" }, "client_id"},

		// client_name
		{"name with ANSI escape", func(c *Client) { c.Name = "\x1b[31mred" }, "client_name"},
		{"name with newline", func(c *Client) { c.Name = "a\nb" }, "client_name"},
		{"name with DEL", func(c *Client) { c.Name = "a\x7f" }, "client_name"},
		{"name with invalid UTF-8", func(c *Client) { c.Name = "a\xffb" }, "client_name"},
		{"name longer than MaxNameLength", func(c *Client) { c.Name = strings.Repeat("n", MaxNameLength+1) }, "client_name"},

		// grant_types (RFC 6749 §4.4: client_credentials only)
		{"unknown grant type", func(c *Client) { c.GrantTypes = []string{"authorization_code"} }, "grant_types"},
		{"unknown grant type next to a known one", func(c *Client) {
			c.GrantTypes = []string{GrantClientCredentials, "password"}
		}, "grant_types"},
		{"empty grant type string", func(c *Client) { c.GrantTypes = []string{""} }, "grant_types"},
		{"grant type with different case", func(c *Client) { c.GrantTypes = []string{"Client_Credentials"} }, "grant_types"},

		// scope: RFC 6749 §3.3 scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		{"RFC 6749 §3.3: scope with double quote", func(c *Client) { c.Scope = `read "write"` }, "scope"},
		{"RFC 6749 §3.3: scope with backslash", func(c *Client) { c.Scope = `read wr\ite` }, "scope"},
		{"RFC 6749 §3.3: scope with NUL", func(c *Client) { c.Scope = "read\x00" }, "scope"},
		{"RFC 6749 §3.3: scope with SOH", func(c *Client) { c.Scope = "re\x01ad" }, "scope"},
		{"RFC 6749 §3.3: scope with unit separator", func(c *Client) { c.Scope = "read\x1fwrite" }, "scope"},
		{"RFC 6749 §3.3: scope with DEL", func(c *Client) { c.Scope = "read\x7f" }, "scope"},
		{"RFC 6749 §3.3: scope with non-ASCII", func(c *Client) { c.Scope = "read écrire" }, "scope"},
		{"RFC 6749 §3.3: scope with invalid UTF-8", func(c *Client) { c.Scope = "read \xff" }, "scope"},
		{"scope longer than MaxScopeLength", func(c *Client) { c.Scope = strings.Repeat("s", MaxScopeLength+1) }, "scope"},

		// audience
		{"empty audience entry", func(c *Client) { c.Audience = []string{"ok", ""} }, "audience"},
		{"audience with space", func(c *Client) { c.Audience = []string{"api one"} }, "audience"},
		{"audience with tab", func(c *Client) { c.Audience = []string{"api\tone"} }, "audience"},
		{"audience with newline", func(c *Client) { c.Audience = []string{"api\n"} }, "audience"},
		{"too many audiences", func(c *Client) { c.Audience = manyAudiences }, "audience"},
		{"audience longer than MaxAudienceLength", func(c *Client) {
			c.Audience = []string{strings.Repeat("x", MaxAudienceLength+1)}
		}, "audience"},

		// owner
		{"owner with NUL", func(c *Client) { c.Owner = "team\x00" }, "owner"},
		{"owner with newline (log injection)", func(c *Client) { c.Owner = "team\nINFO fake line" }, "owner"},
		{"owner with carriage return", func(c *Client) { c.Owner = "team\r" }, "owner"},
		{"owner with DEL", func(c *Client) { c.Owner = "\x7f" }, "owner"},
		{"owner longer than MaxOwnerLength", func(c *Client) { c.Owner = strings.Repeat("o", MaxOwnerLength+1) }, "owner"},

		// metadata
		{"metadata one byte over MaxMetadataBytes", func(c *Client) {
			c.Metadata = Metadata{"k": strings.Repeat("x", MaxMetadataBytes-8+1)}
		}, "metadata"},
		{"metadata far over 16 KiB", func(c *Client) {
			m := Metadata{}
			for i := 0; i < 100; i++ {
				m[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("z", i)] = strings.Repeat("v", 200)
			}
			c.Metadata = m
		}, "metadata"},
		{"metadata not serializable (NaN)", func(c *Client) { c.Metadata = Metadata{"f": math.NaN()} }, "metadata"},

		// token_endpoint_auth_method
		{"auth method none (public clients) refused, RFC 6749 §4.4", func(c *Client) { c.TokenEndpointAuthMethod = "none" }, "token_endpoint_auth_method"},
		{"private_key_jwt without keys", func(c *Client) { c.TokenEndpointAuthMethod = "private_key_jwt" }, "jwks"},
		{"jwks not a JWK Set", func(c *Client) {
			c.TokenEndpointAuthMethod = "private_key_jwt"
			c.JWKS = json.RawMessage(`{"keys":[]}`)
		}, "jwks"},
		{"hydra_extra not an object", func(c *Client) { c.HydraExtra = json.RawMessage(`[1]`) }, "hydra_extra"},
		{"hydra_extra too big", func(c *Client) {
			c.HydraExtra = json.RawMessage(`{"a":"` + strings.Repeat("x", MaxHydraExtraBytes) + `"}`)
		}, "hydra_extra"},
		{"jwks_uri not https", func(c *Client) { c.TokenEndpointAuthMethod = "private_key_jwt"; c.JWKSURI = "http://x/jwks" }, "jwks_uri"},
		{"unknown access_token_strategy", func(c *Client) { c.AccessTokenStrategy = "macaroon" }, "access_token_strategy"},
		{"none not supported (RFC 6749 §4.4: confidential clients only)", func(c *Client) { c.TokenEndpointAuthMethod = "none" }, "token_endpoint_auth_method"},
		{"auth method with different case", func(c *Client) { c.TokenEndpointAuthMethod = "CLIENT_SECRET_BASIC" }, "token_endpoint_auth_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validClient()
			tt.mutate(c)
			wantFieldError(t, c.Validate(), tt.wantField)
			wantFieldError(t, c.Normalize(), tt.wantField)
		})
	}
}

// Validate alone fills no defaults: it is what Normalize relies on after
// filling them.
func TestValidateWithoutNormalize(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(c *Client)
		wantField string
	}{
		{"no grant types", func(c *Client) { c.GrantTypes = nil }, "grant_types"},
		{"no auth method", func(c *Client) { c.TokenEndpointAuthMethod = "" }, "token_endpoint_auth_method"},
		// Normalize folds a tab into a delimiter; Validate alone must not
		// accept it inside a token (RFC 6749 §3.3).
		{"RFC 6749 §3.3: tab inside scope", func(c *Client) { c.Scope = "read\twrite" }, "scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validClient()
			tt.mutate(c)
			wantFieldError(t, c.Validate(), tt.wantField)
		})
	}
}

// TestValidScopeTokenEveryByte checks the RFC 6749 §3.3 scope-token grammar
// byte by byte: 1*( %x21 / %x23-5B / %x5D-7E ).
func TestValidScopeTokenEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		want := b == 0x21 || (b >= 0x23 && b <= 0x5B) || (b >= 0x5D && b <= 0x7E)
		s := "a" + string([]byte{byte(b)}) + "z"
		if got := ValidScopeToken(s); got != want {
			t.Errorf("ValidScopeToken(%q) = %v, want %v (byte %#02x)", s, got, want, b)
		}
	}
	if ValidScopeToken("") {
		t.Error(`ValidScopeToken("") = true, want false: RFC 6749 §3.3 needs at least one character`)
	}
}

func TestValidateIDFieldError(t *testing.T) {
	wantFieldError(t, ValidateID(""), "client_id")
	if err := ValidateID("ok-id"); err != nil {
		t.Errorf("ValidateID(%q) = %v, want nil", "ok-id", err)
	}
}

func TestMetadataUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Metadata
		wantErr string
	}{
		{name: "object", in: `{"a":"b","n":{"x":true}}`, want: Metadata{"a": "b", "n": map[string]any{"x": true}}},
		{name: "empty object", in: `{}`, want: Metadata{}},
		{name: "object with surrounding space", in: " \n{\"a\":1}\t", want: Metadata{"a": json.Number("1")}},
		{name: "null", in: `null`, want: nil},
		{name: "array", in: `[1,2]`, wantErr: "metadata must be a JSON object"},
		{name: "string", in: `"x"`, wantErr: "metadata must be a JSON object"},
		{name: "number", in: `42`, wantErr: "metadata must be a JSON object"},
		{name: "boolean", in: `true`, wantErr: "metadata must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Straight into Metadata.
			m := Metadata{"stale": 1}
			err := json.Unmarshal([]byte(tt.in), &m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Unmarshal(%s) = %v, want nil", tt.in, err)
				}
				if !reflect.DeepEqual(m, tt.want) {
					t.Fatalf("Unmarshal(%s) gave %#v, want %#v", tt.in, m, tt.want)
				}
			}

			// And as the metadata field of a client, the way the admin API
			// receives it.
			var c Client
			err = json.Unmarshal([]byte(`{"client_id":"a","metadata":`+tt.in+`}`), &c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("client with metadata %s: error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("client with metadata %s: %v, want nil", tt.in, err)
			}
			if !reflect.DeepEqual(c.Metadata, tt.want) {
				t.Fatalf("client metadata = %#v, want %#v", c.Metadata, tt.want)
			}
		})
	}
}

// Numbers in metadata are copied into JWTs and introspection results: they
// must come out exactly as they went in, not through float64.
func TestMetadataNumbersExact(t *testing.T) {
	// Keys sorted and compact, so the marshalled form must be byte-identical.
	in := `{"big":12345678901234567890,"neg":-9007199254740993,"nested":{"f":0.1000000000000000055511151231257827,"i":1}}`
	var m Metadata
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(out) != in {
		t.Fatalf("metadata round trip changed numbers:\n got %s\nwant %s", out, in)
	}
	if v, _ := m.Lookup("big"); v != json.Number("12345678901234567890") {
		t.Errorf("Lookup(big) = %#v, want json.Number(\"12345678901234567890\")", v)
	}
}

func TestMetadataLookup(t *testing.T) {
	var m Metadata
	if err := json.Unmarshal([]byte(`{
		"tier": "gold",
		"realm": {"id": "r1", "deep": {"x": 1}},
		"list": [1, 2],
		"nothing": null,
		"flag": false
	}`), &m); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{"tier", "gold", true},
		{"realm.id", "r1", true},
		{"realm.deep.x", json.Number("1"), true},
		{"realm.deep", map[string]any{"x": json.Number("1")}, true},
		{"nothing", nil, true},
		{"flag", false, true},
		{"missing", nil, false},
		{"realm.missing", nil, false},
		{"realm.deep.x.y", nil, false},
		{"tier.x", nil, false},    // intermediate is a string
		{"list.0", nil, false},    // intermediate is an array
		{"nothing.x", nil, false}, // intermediate is null
		{"flag.x", nil, false},    // intermediate is a boolean
		{"Tier", nil, false},      // keys are case-sensitive
		{"realm..id", nil, false}, // empty segment is a missing key
		{".realm.id", nil, false}, // leading dot is an empty key
		{"missing.x.y", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := m.Lookup(tt.path)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Lookup(%q) = (%#v, %v), want (%#v, %v)", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}

	var empty Metadata
	if got, ok := empty.Lookup("a.b"); ok {
		t.Errorf("nil Metadata: Lookup(%q) = (%#v, true), want not found", "a.b", got)
	}
}

// The client's JSON form goes to admin API responses and logs: it must never
// carry the secret hash or the generation.
func TestClientJSONHidesSecretHashAndGeneration(t *testing.T) {
	h, err := NewHasher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := validClient()
	c.SecretHash = h.Hash("super-secret")
	c.Generation = 987654321
	c.CreatedAt = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	c.UpdatedAt = c.CreatedAt

	out, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	enc := strings.TrimPrefix(c.SecretHash, hmacPrefix)
	for _, forbidden := range []string{c.SecretHash, enc, hmacPrefix, "987654321", "super-secret"} {
		if bytes.Contains(out, []byte(forbidden)) {
			t.Errorf("client JSON contains %q, want it absent:\n%s", forbidden, out)
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out, &fields); err != nil {
		t.Fatalf("Unmarshal into map: %v", err)
	}
	for key := range fields {
		k := strings.ToLower(key)
		if strings.Contains(k, "secret") || strings.Contains(k, "hash") || strings.Contains(k, "generation") {
			t.Errorf("client JSON has key %q, want no secret, hash or generation key:\n%s", key, out)
		}
	}
	// Ory Hydra's field names, so Hydra exports map onto Client.
	for _, key := range []string{"client_id", "client_name", "grant_types", "scope", "audience", "owner",
		"metadata", "token_endpoint_auth_method", "created_at", "updated_at"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("client JSON lacks Hydra field %q:\n%s", key, out)
		}
	}
}

// A client posted to the admin API cannot plant a secret hash or generation.
func TestClientJSONIgnoresSecretHashAndGenerationInput(t *testing.T) {
	in := `{"client_id":"a","secret_hash":"$hmac-sha256$x","SecretHash":"$hmac-sha256$y","generation":5,"Generation":6}`
	var c Client
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if c.SecretHash != "" || c.Generation != 0 {
		t.Fatalf("decoded SecretHash=%q Generation=%d, want both empty", c.SecretHash, c.Generation)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	orig := validClient()
	orig.Audience = []string{"a1", "a2"}
	cl := orig.Clone()
	cl.GrantTypes[0] = "changed"
	cl.Audience[0] = "changed"
	cl.Metadata["tier"] = "changed"
	cl.Metadata["new"] = true
	cl.Scope = "changed"

	if orig.GrantTypes[0] != GrantClientCredentials || orig.Audience[0] != "a1" ||
		orig.Metadata["tier"] != "gold" || len(orig.Metadata) != 1 || orig.Scope != "invoices:read invoices:write" {
		t.Fatalf("changing a clone changed the original: %+v", orig)
	}
	if (&Client{}).Clone().Metadata != nil {
		t.Error("Clone of a client without metadata invented metadata")
	}
}

func TestScopesAndHasGrant(t *testing.T) {
	c := &Client{Scope: "a  b c", GrantTypes: []string{GrantClientCredentials}}
	if got, want := c.Scopes(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Scopes() = %q, want %q", got, want)
	}
	if got := (&Client{}).Scopes(); len(got) != 0 {
		t.Errorf("Scopes() of empty scope = %q, want none", got)
	}
	if !c.HasGrant(GrantClientCredentials) {
		t.Errorf("HasGrant(%q) = false, want true", GrantClientCredentials)
	}
	if c.HasGrant("password") {
		t.Error(`HasGrant("password") = true, want false`)
	}
}

// FuzzMetadataUnmarshalJSON: metadata arrives from the admin API. Whatever
// the bytes, decoding must not panic, and what it accepts is an object (or
// null) that marshals back.
func FuzzMetadataUnmarshalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"a":12345678901234567890}`, `{"a":{"b":[1,"x",null]}}`, `"s"`, ``, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Metadata
		if err := json.Unmarshal(b, &m); err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("accepted %q but cannot marshal it back: %v", b, err)
		}
	})
}

// Private and symmetric keys never go into a client's jwks through the
// admin API or an import (they would be shown on every read).
func TestCheckPublicJWKS(t *testing.T) {
	for _, tt := range []struct {
		name, jwks string
		ok         bool
	}{
		{"none", ``, true},
		{"public EC key", `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`, true},
		{"public RSA key", `{"keys":[{"kty":"RSA","n":"a","e":"AQAB"}]}`, true},
		{"private EC key (RFC 7518 §6.2.2)", `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"s"}]}`, false},
		{"private RSA key (RFC 7518 §6.3.2)", `{"keys":[{"kty":"RSA","n":"a","e":"AQAB","p":"s","q":"t"}]}`, false},
		{"private Ed25519 key (RFC 8037 §2)", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a","d":"s"}]}`, false},
		{"symmetric key second (RFC 7518 §6.4.1)", `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"oct","k":"c2VjcmV0"}]}`, false},
		{"not a set", `[1]`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPublicJWKS(json.RawMessage(tt.jwks))
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPublicJWKS = %v, want nil", err)
				}
				return
			}
			wantFieldError(t, err, "jwks")
			if strings.Contains(err.Error(), `"s"`) || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("error %q repeats key material", err)
			}
		})
	}
}

// hydra_extra: null is no extra data; an object is stored compact.
func TestNormalizeHydraExtra(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`null`, ``},
		{` null `, ``},
		{"{ \"subject_type\" : \"public\",\n \"x\": [1, 2] }", `{"subject_type":"public","x":[1,2]}`},
	} {
		c := validClient()
		c.HydraExtra = json.RawMessage(tt.in)
		if err := c.Normalize(); err != nil {
			t.Fatalf("Normalize(hydra_extra %q) = %v", tt.in, err)
		}
		if string(c.HydraExtra) != tt.want {
			t.Errorf("Normalize(hydra_extra %q) = %q, want %q", tt.in, c.HydraExtra, tt.want)
		}
	}
	c := validClient()
	c.HydraExtra = json.RawMessage(`{"a":`)
	wantFieldError(t, c.Normalize(), "hydra_extra")
}
