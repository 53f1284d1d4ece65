package clientstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// MaxImportClients bounds the clients of one import document.
const MaxImportClients = 10000

// HydraImport is one client of an Ory Hydra export, read for import: either
// a Client ready for Cache.Import, a reason to skip it, or an error.
type HydraImport struct {
	// Index is the client's position in the document (0-based).
	Index int
	// ClientID is the client's id as the document gives it ("" if absent).
	ClientID string
	// Client is the client to import; nil if skipped or invalid.
	Client *Client
	// SecretHash is Hydra's hash of the client secret, if the document
	// carries one (Gatehouse's client_secret_hash; Hydra's own exports
	// leave secrets out).
	SecretHash string
	// KeptFields names the Hydra fields Gatehouse has no use for; their
	// values are kept in Client.HydraExtra.
	KeptFields []string
	// DroppedFields names fields deliberately not kept because they hold
	// credentials of the source server (registration_access_token).
	DroppedFields []string
	// DroppedGrantTypes are grant types Gatehouse does not support, left
	// out of a client that also has client_credentials.
	DroppedGrantTypes []string
	// Skip says why the client is not imported although it is valid for
	// Hydra (e.g. it cannot use client_credentials at all).
	Skip string
	// Err says why the client cannot be imported (a *FieldError naming the
	// field, or a JSON error).
	Err error
}

// Fields of Hydra's client model that map onto Client, and Gatehouse's own
// fields, so that Gatehouse's admin API output imports as well.
var hydraMapped = map[string]bool{
	"client_id": true, "client_name": true, "grant_types": true, "scope": true,
	"audience": true, "owner": true, "metadata": true, "token_endpoint_auth_method": true,
	"jwks": true, "jwks_uri": true, "access_token_strategy": true, "created_at": true,
	"updated_at": true, "client_secret": true, "client_secret_hash": true,
	"disabled": true, "introspect": true, "hydra_extra": true,
}

// hydraSensitive are fields that carry a credential of the source server:
// they are neither kept nor echoed.
var hydraSensitive = map[string]bool{
	"registration_access_token": true,
}

// ParseHydraClients reads clients in the shapes Ory Hydra produces: an
// array (the admin API's GET /admin/clients), a single client object (GET
// /admin/clients/{id}), or the CLI's paginated {"items": [...]} object
// (`hydra list clients --format json`). The error is for the document as
// a whole; problems of single clients are reported in their HydraImport.
func ParseHydraClients(data []byte) ([]HydraImport, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty document: want a Hydra client object or an array of them")
	}
	var raws []json.RawMessage
	switch data[0] {
	case '[':
		if err := decodeOne(data, &raws); err != nil {
			return nil, err
		}
	case '{':
		var obj map[string]json.RawMessage
		if err := decodeOne(data, &obj); err != nil {
			return nil, err
		}
		items, isList := obj["items"]
		if _, isClient := obj["client_id"]; isList && !isClient {
			if err := json.Unmarshal(items, &raws); err != nil {
				return nil, fmt.Errorf("items: must be an array of clients: %w", err)
			}
		} else {
			raws = []json.RawMessage{data}
		}
	default:
		return nil, errors.New("want a Hydra client object or an array of them")
	}
	if len(raws) > MaxImportClients {
		return nil, fmt.Errorf("%d clients in one document; at most %d", len(raws), MaxImportClients)
	}
	out := make([]HydraImport, len(raws))
	for i, raw := range raws {
		out[i] = convertHydraClient(raw)
		out[i].Index = i
	}
	return out, nil
}

// decodeOne decodes exactly one JSON value.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON: trailing data after the document")
	}
	return nil
}

// convertHydraClient maps one Hydra client object onto a Client.
func convertHydraClient(raw json.RawMessage) (imp HydraImport) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		imp.Err = errors.New("not a JSON object")
		return imp
	}
	f := hydraFields{obj: obj}
	c := &Client{}
	imp.ClientID = f.str("client_id")
	c.ID = imp.ClientID
	c.Name = f.str("client_name")
	c.Scope = f.str("scope")
	c.Audience = f.strs("audience")
	c.Owner = f.str("owner")
	c.TokenEndpointAuthMethod = f.str("token_endpoint_auth_method")
	c.JWKSURI = f.str("jwks_uri")
	c.AccessTokenStrategy = f.str("access_token_strategy")
	c.Disabled = f.boolean("disabled")
	c.Introspect = f.boolean("introspect")
	grants := f.strs("grant_types")
	imp.SecretHash = f.str("client_secret_hash")
	plainSecret := f.str("client_secret")
	if md := f.object("metadata"); md != nil {
		if err := json.Unmarshal(md, &c.Metadata); err != nil {
			f.fail(fieldErr("metadata", "%v", err))
		}
	}
	if jwks := f.object("jwks"); jwks != nil {
		if err := CheckPublicJWKS(jwks); err != nil {
			f.fail(err)
		}
		c.JWKS = jwks
	}
	if ts := f.str("created_at"); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			f.fail(fieldErr("created_at", "must be an RFC 3339 time"))
		}
		c.CreatedAt = t
	}
	extra := map[string]json.RawMessage{}
	if prev := f.object("hydra_extra"); prev != nil {
		if err := json.Unmarshal(prev, &extra); err != nil {
			f.fail(fieldErr("hydra_extra", "must be a JSON object"))
		}
	}
	for k, v := range obj {
		switch {
		case hydraMapped[k]:
		case hydraSensitive[k]:
			if !emptyJSON(v) {
				imp.DroppedFields = append(imp.DroppedFields, k)
			}
		case !emptyJSON(v):
			extra[k] = v
			imp.KeptFields = append(imp.KeptFields, k)
		}
	}
	// Whatever the source, credentials are never kept as "extra" data.
	for _, k := range []string{"client_secret", "client_secret_hash", "registration_access_token"} {
		delete(extra, k)
	}
	sort.Strings(imp.KeptFields)
	sort.Strings(imp.DroppedFields)
	if f.err != nil {
		imp.Err = f.err
		return imp
	}
	if plainSecret != "" {
		imp.Err = fieldErr("client_secret", "plaintext secrets are not imported (a chosen secret may be weak): "+
			"give Hydra's hash as client_secret_hash to keep it, or leave both out to get a new secret")
		return imp
	}

	// Hydra's defaults: no grant types means authorization_code only
	// (OpenID Connect Dynamic Client Registration §2), no method means
	// client_secret_basic.
	if len(grants) == 0 {
		grants = []string{"authorization_code"}
	}
	has := false
	for _, g := range grants {
		if g == GrantClientCredentials {
			has = true
		} else if !slices.Contains(imp.DroppedGrantTypes, g) {
			imp.DroppedGrantTypes = append(imp.DroppedGrantTypes, g)
		}
	}
	if !has {
		imp.Skip = fmt.Sprintf("grant_types %s: no client_credentials, the only grant Gatehouse serves", strings.Join(grants, ", "))
		imp.DroppedGrantTypes = nil
		return imp
	}
	c.GrantTypes = []string{GrantClientCredentials}
	if c.TokenEndpointAuthMethod == "none" {
		imp.Skip = "token_endpoint_auth_method none: a public client cannot use client_credentials (RFC 6749 §4.4)"
		return imp
	}
	if imp.SecretHash != "" {
		if err := CheckImportedHash(imp.SecretHash); err != nil {
			imp.Err = err
			return imp
		}
	}
	if len(extra) > 0 {
		b, err := json.Marshal(extra)
		if err != nil {
			imp.Err = fieldErr("hydra_extra", "%v", err)
			return imp
		}
		c.HydraExtra = b
	}
	if err := c.Normalize(); err != nil {
		imp.Err = err
		return imp
	}
	imp.Client = c
	return imp
}

// hydraFields reads typed fields of one client object, keeping the first
// type error.
type hydraFields struct {
	obj map[string]json.RawMessage
	err error
}

func (f *hydraFields) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

func (f *hydraFields) str(k string) string {
	var s *string
	if v, ok := f.obj[k]; ok {
		if err := json.Unmarshal(v, &s); err != nil {
			f.fail(fieldErr(k, "must be a string"))
		}
	}
	if s == nil {
		return ""
	}
	return *s
}

func (f *hydraFields) strs(k string) []string {
	var s []string
	if v, ok := f.obj[k]; ok {
		if err := json.Unmarshal(v, &s); err != nil {
			f.fail(fieldErr(k, "must be an array of strings"))
		}
	}
	return s
}

func (f *hydraFields) boolean(k string) bool {
	var b *bool
	if v, ok := f.obj[k]; ok {
		if err := json.Unmarshal(v, &b); err != nil {
			f.fail(fieldErr(k, "must be true or false"))
		}
	}
	return b != nil && *b
}

// object returns a field that must be a JSON object, or nil when it is
// absent, null or empty ({}, as Hydra writes unset jwks and metadata).
func (f *hydraFields) object(k string) json.RawMessage {
	v, ok := f.obj[k]
	if !ok || emptyJSON(v) {
		return nil
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' {
		f.fail(fieldErr(k, "must be a JSON object"))
		return nil
	}
	return v
}

// emptyJSON reports whether v is null, "", [] or {}: a value that says
// nothing and is not worth keeping.
func emptyJSON(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "null", `""`:
		return true
	}
	var arr []json.RawMessage
	if json.Unmarshal(v, &arr) == nil && len(arr) == 0 {
		return true
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(v, &obj) == nil && len(obj) == 0
}
