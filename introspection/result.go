package introspection

import (
	"slices"
	"strings"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Result is the outcome of a successful token check. Gatehouse's own
// tokens (checked in memory by Authority.Check) and tokens another
// authorization server vouched for (an Introspector, RFC 7662) produce the
// same Result, so routes apply the same policy and sign the same identity
// JWT for both. A Result may be shared between requests: never modify it,
// its slices or what it points to.
type Result struct {
	Token string // the token as presented; empty in a cached Identity (the cache keeps the token)
	// Claims: client_id, scope, aud, iat and exp for both kinds; the
	// generation and ID (jti) only for Gatehouse's own tokens. A remote
	// token without exp has ExpiresAt 0.
	Claims Claims
	// Client, for Gatehouse's own tokens, is the state (at Check) of the
	// client that holds the token (never nil). For a remote token it is
	// the local client record with the token's client_id, when the route
	// enriches identities with it and one exists; otherwise nil.
	Client *clientstore.Client
	Issuer string // who vouched for the token: Gatehouse's issuer, or the remote iss
	// Remote is what another authorization server said beyond Claims; nil
	// for Gatehouse's own tokens.
	Remote *Remote
}

// Remote is the part of another authorization server's RFC 7662 answer
// that Claims has no room for.
type Remote struct {
	Subject  string // sub; empty: the client_id
	Username string
	JTI      string
	// Owner and Ext are the remote server's (Ext its `ext`, Owner the
	// `client.owner` a Gatehouse sends) or, after a route enriched the
	// result, merged with the local client record's.
	Owner string
	Ext   clientstore.Metadata
	// Until is when this answer stops being usable: at the latest the
	// token's exp, earlier if the answer is cached for less. An identity
	// made from it is never reused past it; the zero time means "do not
	// reuse".
	Until time.Time
}

// ClientID is the client the token was issued to ("" if a remote server
// did not say).
func (r *Result) ClientID() string { return r.Claims.ClientID }

// Subject is the identity's sub: the client_id for client_credentials
// tokens, or the remote server's sub (e.g. a user) when it sent one.
func (r *Result) Subject() string {
	if r.Remote != nil && r.Remote.Subject != "" {
		return r.Remote.Subject
	}
	return r.ClientID()
}

// Owner is the identity's owner: the client's for Gatehouse's own tokens.
func (r *Result) Owner() string {
	if r.Remote == nil {
		return r.Client.Owner
	}
	return r.Remote.Owner
}

// Metadata is the identity's trusted metadata, the identity JWT's `ext`.
// For Gatehouse's own tokens it is decoded from the client's JSON on
// every call: keep the result rather than calling it on a hot path.
func (r *Result) Metadata() clientstore.Metadata {
	if r.Remote == nil {
		return r.Client.Metadata
	}
	return r.Remote.Ext
}

// HasScopes reports whether the token was granted every scope in required.
func (r *Result) HasScopes(required []string) bool {
	for _, want := range required {
		if !hasField(r.Claims.Scope, want) {
			return false
		}
	}
	return true
}

// HasAudience reports whether aud is one of the token's audiences.
func (r *Result) HasAudience(aud string) bool {
	return slices.Contains(r.Claims.Audience, aud)
}

// hasField reports whether the space-separated list contains want, without
// allocating.
func hasField(list, want string) bool {
	for list != "" {
		var f string
		f, list, _ = strings.Cut(list, " ")
		if f == want {
			return true
		}
	}
	return false
}

// Response is an RFC 7662 §2.2 introspection response, with Hydra's
// `token_use` and `ext` and Gatehouse's `client` extensions.
type Response struct {
	Active    bool                 `json:"active"`
	Scope     string               `json:"scope,omitempty"`
	ClientID  string               `json:"client_id,omitempty"`
	Sub       string               `json:"sub,omitempty"`
	TokenType string               `json:"token_type,omitempty"`
	TokenUse  string               `json:"token_use,omitempty"`
	Exp       int64                `json:"exp,omitempty"`
	Iat       int64                `json:"iat,omitempty"`
	Nbf       int64                `json:"nbf,omitempty"`
	Aud       []string             `json:"aud,omitempty"`
	Iss       string               `json:"iss,omitempty"`
	Jti       string               `json:"jti,omitempty"`
	Ext       clientstore.Metadata `json:"ext,omitempty"`
	Client    *ClientInfo          `json:"client,omitempty"`
}

// ClientInfo is the trusted, operator-set description of the client that
// holds a token.
type ClientInfo struct {
	ClientID string               `json:"client_id"`
	Name     string               `json:"client_name,omitempty"`
	Owner    string               `json:"owner,omitempty"`
	Metadata clientstore.Metadata `json:"metadata,omitempty"`
}

// Response returns the RFC 7662 form of an active token.
func (r *Result) Response() Response {
	resp := Response{
		Active:    true,
		Scope:     r.Claims.Scope,
		ClientID:  r.ClientID(),
		Sub:       r.Subject(),
		TokenType: "Bearer",
		TokenUse:  "access_token",
		Exp:       r.Claims.ExpiresAt,
		Iat:       r.Claims.IssuedAt,
		Nbf:       r.Claims.IssuedAt,
		Aud:       r.Claims.Audience,
		Iss:       r.Issuer,
		Ext:       r.Metadata(),
	}
	if r.Remote != nil {
		resp.Jti = r.Remote.JTI
	} else {
		resp.Jti = r.Claims.ID.String()
	}
	if c := r.Client; c != nil {
		resp.Client = &ClientInfo{ClientID: c.ID, Name: c.Name, Owner: r.Owner(), Metadata: resp.Ext}
	}
	return resp
}
