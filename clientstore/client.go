package clientstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound = errors.New("client not found")
	ErrExists   = errors.New("client already exists")
	ErrLocked   = errors.New("database is locked by another process")
	// ErrRevisionMismatch: a conditional write found the client at another
	// revision than the caller expected (someone else changed it first).
	ErrRevisionMismatch = errors.New("client changed since the expected revision")
	// ErrKeyChanged: SwapKey found other key material than expected.
	ErrKeyChanged = errors.New("key changed since it was read")
	// ErrUnavailable: the store cannot be reached (etcd down, partitioned
	// or too slow). Nothing is known to have been written; memory still
	// serves reads.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrCompacted: a watch cannot deliver the changes asked for because
	// the store has discarded that history; reload everything.
	ErrCompacted = errors.New("store history compacted")
	// ErrNotEmpty: Restore needs a store without clients.
	ErrNotEmpty = errors.New("store already has clients")
)

// Limits on client fields. They keep one client record small, so that the
// whole set fits in memory and a hostile admin request cannot bloat it.
const (
	MaxIDLength       = 128
	MaxNameLength     = 256
	MaxOwnerLength    = 256
	MaxScopeLength    = 4096
	MaxAudiences      = 32
	MaxAudienceLength = 512
	MaxMetadataBytes  = 16 << 10
)

// Grant types and token endpoint authentication methods Gatehouse supports.
const (
	GrantClientCredentials = "client_credentials"

	AuthMethodBasic         = "client_secret_basic"
	AuthMethodPost          = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"

	// Access-token formats (Hydra's access_token_strategy).
	TokenStrategyOpaque = "opaque"
	TokenStrategyJWT    = "jwt"
)

// MaxJWKSBytes bounds a client's registered key set.
const MaxJWKSBytes = 32 << 10

// privateJWKMembers are the JWK members of private and symmetric keys
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// MaxHydraExtraBytes bounds the Hydra fields an imported client keeps.
const MaxHydraExtraBytes = 16 << 10

// Client is an OAuth 2.0 client. JSON names follow Ory Hydra's client model
// so that Hydra exports and tooling map onto it directly.
//
// A *Client obtained from a Cache is the caller's own copy: changing it
// changes nothing else.
type Client struct {
	ID                      string   `json:"client_id"`
	Name                    string   `json:"client_name,omitempty"`
	GrantTypes              []string `json:"grant_types"`
	Scope                   string   `json:"scope"`
	Audience                []string `json:"audience"`
	Owner                   string   `json:"owner"`
	Metadata                Metadata `json:"metadata"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	// JWKS holds the client's public keys for private_key_jwt (RFC 7523),
	// as a JWK Set document; JWKSURI names where to fetch them instead.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI string          `json:"jwks_uri,omitempty"`
	// AccessTokenStrategy picks the token format: "opaque" (default) or
	// "jwt" (RFC 9068).
	AccessTokenStrategy string    `json:"access_token_strategy,omitempty"`
	Disabled            bool      `json:"disabled"`
	Introspect          bool      `json:"introspect"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`

	// HydraExtra keeps the fields of an imported Ory Hydra client that
	// Gatehouse has no use for (redirect_uris, response_types, …), as a JSON
	// object, so that nothing of the source is lost. Informational only.
	HydraExtra json.RawMessage `json:"hydra_extra,omitempty"`

	// SecretHash is the hash of the client secret: Gatehouse's keyed
	// HMAC-SHA-256, or a PBKDF2/bcrypt hash imported from Hydra. It is
	// persisted by the store but never part of the client's JSON form.
	SecretHash string `json:"-"`

	// PreviousSecretHash is the hash of the secret a rotation replaced; it
	// keeps authenticating until PreviousSecretExpiresAt (the grace period).
	// Store-only, like SecretHash.
	PreviousSecretHash      string    `json:"-"`
	PreviousSecretExpiresAt time.Time `json:"-"`

	// Revision identifies the stored version of the client: the store
	// assigns a new, never reused value on every write. Conditional writes
	// (UpdateClientIf, DeleteClientIf) compare it, and the admin API shows
	// it as the ETag. It maps onto an etcd key's mod revision.
	Revision uint64 `json:"-"`

	// Generation changes whenever every token the client holds must stop
	// working at once (disable, secret rotation). Tokens carry the
	// generation they were minted under.
	Generation uint64 `json:"-"`
}

// MetadataJSON returns the client's metadata as compact JSON, or nil if
// it has none (a nil map).
func (c *Client) MetadataJSON() (json.RawMessage, error) {
	if c.Metadata == nil {
		return nil, nil
	}
	return json.Marshal(c.Metadata)
}

// Metadata is an operator-set, trusted JSON object attached to a client. It
// is copied into identity JWTs (as `ext`) and introspection results.
type Metadata map[string]any

// UnmarshalJSON accepts only a JSON object (or null), keeping numbers exact.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*m = nil
		return nil
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("metadata must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if dec.More() {
		return errors.New("metadata: trailing data after the object")
	}
	*m = v
	return nil
}

// Lookup walks a dotted path ("realm.id") through nested objects.
func (m Metadata) Lookup(path string) (any, bool) {
	var cur any = map[string]any(m)
	for path != "" {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		key, rest, _ := strings.Cut(path, ".")
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
		path = rest
	}
	return cur, true
}

// Clone returns a deep enough copy of c to modify: slices and metadata are
// copied, so the original stays untouched.
func (c *Client) Clone() *Client {
	n := *c
	n.GrantTypes = append([]string(nil), c.GrantTypes...)
	n.Audience = append([]string(nil), c.Audience...)
	n.JWKS = append(json.RawMessage(nil), c.JWKS...)
	n.HydraExtra = append(json.RawMessage(nil), c.HydraExtra...)
	if c.Metadata != nil {
		// Metadata values are only ever replaced whole, never mutated in
		// place, so a shallow copy of the top level is enough.
		n.Metadata = make(Metadata, len(c.Metadata))
		for k, v := range c.Metadata {
			n.Metadata[k] = v
		}
	}
	return &n
}

// Scopes returns the client's allowed scopes.
func (c *Client) Scopes() []string { return SplitScope(c.Scope) }

// SplitScope splits a scope string on ASCII white space only (RFC 6749
// §3.3 delimits with %x20; tabs and newlines are folded for convenience).
// Any other character, Unicode spaces included, stays part of a token and
// so fails ValidScopeToken.
func SplitScope(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

// HasGrant reports whether the client may use the grant type.
func (c *Client) HasGrant(grant string) bool {
	for _, g := range c.GrantTypes {
		if g == grant {
			return true
		}
	}
	return false
}

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Normalize fills defaults (grant types, auth method) and validates c.
// It returns a *FieldError naming the first invalid field.
func (c *Client) Normalize() error {
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{GrantClientCredentials}
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = AuthMethodBasic
	}
	c.Scope = strings.Join(SplitScope(c.Scope), " ")
	if t := bytes.TrimSpace(c.HydraExtra); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		c.HydraExtra = nil
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, t); err != nil {
			return fieldErr("hydra_extra", "must be a JSON object")
		}
		c.HydraExtra = buf.Bytes()
	}
	return c.Validate()
}

// Validate checks every field against Gatehouse's rules.
func (c *Client) Validate() error {
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	if len(c.Name) > MaxNameLength || !printable(c.Name, true) {
		return fieldErr("client_name", "must be at most %d printable characters", MaxNameLength)
	}
	if len(c.GrantTypes) == 0 {
		return fieldErr("grant_types", "must not be empty")
	}
	for _, g := range c.GrantTypes {
		if g != GrantClientCredentials {
			return fieldErr("grant_types", "unsupported grant type %q (supported: %s)", g, GrantClientCredentials)
		}
	}
	if len(c.Scope) > MaxScopeLength {
		return fieldErr("scope", "must be at most %d bytes", MaxScopeLength)
	}
	for _, s := range strings.Split(c.Scope, " ") {
		if s != "" && !ValidScopeToken(s) {
			return fieldErr("scope", "scope token %q has a character outside RFC 6749 §3.3 (%%x21 / %%x23-5B / %%x5D-7E)", s)
		}
	}
	if len(c.Audience) > MaxAudiences {
		return fieldErr("audience", "at most %d entries", MaxAudiences)
	}
	for _, a := range c.Audience {
		if a == "" || len(a) > MaxAudienceLength || !printable(a, false) {
			return fieldErr("audience", "entries must be 1 to %d visible characters without spaces", MaxAudienceLength)
		}
	}
	if len(c.Owner) > MaxOwnerLength || !printable(c.Owner, true) {
		return fieldErr("owner", "must be at most %d printable characters", MaxOwnerLength)
	}
	if c.Metadata != nil {
		b, err := c.MetadataJSON()
		if err != nil {
			return fieldErr("metadata", "not serializable: %v", err)
		}
		if len(b) > MaxMetadataBytes {
			return fieldErr("metadata", "must be at most %d bytes of JSON, got %d", MaxMetadataBytes, len(b))
		}
	}
	switch c.TokenEndpointAuthMethod {
	case AuthMethodBasic, AuthMethodPost:
	case AuthMethodPrivateKeyJWT:
		if len(c.JWKS) == 0 && c.JWKSURI == "" {
			return fieldErr("jwks", "private_key_jwt needs jwks or jwks_uri")
		}
	default:
		return fieldErr("token_endpoint_auth_method", "unsupported method %q (supported: %s, %s, %s)",
			c.TokenEndpointAuthMethod, AuthMethodBasic, AuthMethodPost, AuthMethodPrivateKeyJWT)
	}
	if len(c.JWKS) > 0 {
		if len(c.JWKS) > MaxJWKSBytes {
			return fieldErr("jwks", "must be at most %d bytes", MaxJWKSBytes)
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(c.JWKS, &set); err != nil || len(set.Keys) == 0 {
			return fieldErr("jwks", "must be a JWK Set: an object with a non-empty \"keys\" array")
		}
	}
	if c.JWKSURI != "" {
		if len(c.JWKSURI) > MaxAudienceLength || !strings.HasPrefix(c.JWKSURI, "https://") || !printable(c.JWKSURI, false) {
			return fieldErr("jwks_uri", "must be an https URL of at most %d characters", MaxAudienceLength)
		}
		if len(c.JWKS) > 0 {
			return fieldErr("jwks_uri", "set jwks or jwks_uri, not both")
		}
	}
	switch c.AccessTokenStrategy {
	case "", TokenStrategyOpaque, TokenStrategyJWT:
	default:
		return fieldErr("access_token_strategy", "must be %q or %q", TokenStrategyOpaque, TokenStrategyJWT)
	}
	if len(c.HydraExtra) > 0 {
		if len(c.HydraExtra) > MaxHydraExtraBytes {
			return fieldErr("hydra_extra", "must be at most %d bytes", MaxHydraExtraBytes)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(c.HydraExtra, &obj); err != nil || obj == nil {
			return fieldErr("hydra_extra", "must be a JSON object")
		}
	}
	return nil
}

// CheckPublicJWKS refuses a JWK Set that holds private or symmetric key
// material. A client's jwks is shown on every read of the client, so such
// a key would be handed to anyone who may read clients; and no verifier
// should ever use one (RFC 8725 §2.1). Operator input (admin API, import)
// is checked with it; token verification refuses such keys on its own.
func CheckPublicJWKS(jwks json.RawMessage) error {
	if len(jwks) == 0 {
		return nil
	}
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return fieldErr("jwks", "must be a JWK Set: an object with a non-empty \"keys\" array")
	}
	for i, k := range set.Keys {
		for _, m := range privateJWKMembers {
			if _, ok := k[m]; ok {
				return fieldErr("jwks", "key %d has %q: register public keys only (RFC 7517 §9.2)", i, m)
			}
		}
	}
	return nil
}

// ValidateID checks a client_id: 1–128 characters from the URL-safe set
// A-Z a-z 0-9 - . _ ~ : @ +, so it is safe in admin API paths, logs and
// HTTP Basic credentials alike.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return fieldErr("client_id", "must be 1 to %d characters", MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:@+", c) >= 0) {
			return fieldErr("client_id", "character %q not allowed (use A-Z a-z 0-9 - . _ ~ : @ +)", c)
		}
	}
	return nil
}

// ValidScopeToken reports whether s is a scope-token per RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return false
		}
	}
	return true
}

// printable reports whether s has no control characters (and, unless
// spaces is set, no spaces). Non-ASCII UTF-8 is allowed.
func printable(s string, spaces bool) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\uFFFD' || (!spaces && r == ' ') {
			return false
		}
	}
	return true
}
