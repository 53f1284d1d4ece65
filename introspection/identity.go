package introspection

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// identityClaims is the payload of an identity JWT (README, "The identity
// JWT"). owner and ext are always present so backends see one shape.
type identityClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      Audience `json:"aud,omitempty"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Owner    string   `json:"owner"`
	// Ext is a clientstore.Metadata (a remote result's) or the compact
	// JSON of a cached client's metadata (json.RawMessage).
	Ext any `json:"ext"`
}

// Identity is what a request with a valid token gets on a route: the
// checked token, the signed identity JWT and the placeholders. It is shared
// between requests: never modify it. Its Result has no Client, an identity
// keeps only the client's revision to know when it no longer holds, and
// no Token: the cache key is the token (or its hash). Header values made
// from it must be fresh slices per request — handlers after ours may edit
// a request's header values in place (request_header with a regex does).
type Identity struct {
	Result Result
	JWT    string // the identity JWT
	bearer string // "Bearer " + JWT, the same memory
	// Placeholder resolves gatehouse.client_id, gatehouse.owner,
	// gatehouse.scope and gatehouse.metadata.<path>.
	Placeholder func(key string) (any, bool)

	clientRev uint64 // revision of the local client it was made from; 0: none
	refreshAt int64  // reused only before this (Unix seconds)

	// For placeholders: the owner, and a local client's metadata as JSON,
	// decoded only when a placeholder first asks for it. One allocation,
	// not slices of the client's decoded copy, which would keep all of it.
	owner, mdJSON string
	mdOnce        sync.Once
	md            clientstore.Metadata
}

const bearerPrefix = "Bearer "

// Bearer is the identity JWT as an Authorization header value, without
// allocating.
func (g *Identity) Bearer() string { return g.bearer }

// sign signs a new identity JWT for r and caches the identity under key: the
// token of a local result, the SHA-256 of a remote one.
func (rt *Authorizer) sign(r *Result, now int64, key string) (*Identity, error) {
	exp := now + int64(rt.auth.cfg.IdentityTTL.Seconds())
	if r.Claims.ExpiresAt > 0 && r.Claims.ExpiresAt < exp {
		exp = r.Claims.ExpiresAt
	}
	aud := rt.audience
	if aud == nil {
		aud = r.Claims.Audience
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, err
	}
	var ext any = emptyExt
	var md json.RawMessage // a local client's metadata
	if r.Remote != nil {
		if r.Remote.Ext != nil {
			ext = r.Remote.Ext
		}
	} else {
		// The metadata as the cache keeps it: compact JSON, not decoded.
		var err error
		if md, err = r.Client.MetadataJSON(); err != nil {
			return nil, err
		}
		if md != nil {
			ext = md
		}
	}
	clientID, owner := r.ClientID(), r.Owner()
	payload, err := json.Marshal(identityClaims{
		Iss:      rt.auth.cfg.Issuer,
		Sub:      r.Subject(),
		Aud:      aud,
		Iat:      now,
		Nbf:      now,
		Exp:      exp,
		Jti:      base64.RawURLEncoding.EncodeToString(jti[:]),
		ClientID: clientID,
		Scope:    r.Claims.Scope,
		Owner:    owner,
		Ext:      ext,
	})
	if err != nil {
		return nil, err
	}
	jwt, err := rt.auth.signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	g := &Identity{
		Result:    *r,
		clientRev: revision(r.Client),
		refreshAt: now + (exp-now)*3/4,
		bearer:    bearerPrefix + jwt,
	}
	g.JWT = g.bearer[len(bearerPrefix):]
	buf := owner + string(md)
	g.owner, g.mdJSON = buf[:len(owner)], buf[len(owner):]
	g.Result.Client, g.Result.Token = nil, "" // the revision is all an identity needs of the client; the key is the token
	if r.Remote != nil {
		// Never past the remote answer's own lifetime.
		g.refreshAt = min(g.refreshAt, r.Remote.Until.Unix())
	}
	g.Placeholder = g.placeholder
	if key != "" && now < g.refreshAt {
		rt.cache.put(key, g)
	}
	return g, nil
}

// revision is c's revision, 0 for no client.
func revision(c *clientstore.Client) uint64 {
	if c == nil {
		return 0
	}
	return c.Revision
}

// emptyExt is the `ext` of an identity without metadata.
var emptyExt = json.RawMessage("{}")

// placeholder resolves the gatehouse.* placeholders of an identity.
func (g *Identity) placeholder(key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, "gatehouse.")
	if !ok {
		return nil, false
	}
	switch rest {
	case "client_id":
		return g.Result.Claims.ClientID, true
	case "owner":
		return g.owner, true
	case "scope":
		return g.Result.Claims.Scope, true
	}
	if path, ok := strings.CutPrefix(rest, "metadata."); ok {
		return g.metadata().Lookup(path)
	}
	return nil, false
}

// metadata is the identity's metadata, decoded at most once and only when
// first asked for: placeholders need it only if a route's configuration
// names a gatehouse.metadata.<path>.
func (g *Identity) metadata() clientstore.Metadata {
	if g.Result.Remote != nil {
		return g.Result.Remote.Ext
	}
	g.mdOnce.Do(func() {
		if g.mdJSON != "" {
			_ = g.md.UnmarshalJSON([]byte(g.mdJSON)) // encoded from a map by the cache: it decodes
		}
	})
	return g.md
}
