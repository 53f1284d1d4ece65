package introspection

import (
	"strings"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Result is the outcome of a successful token check: the token's claims and
// the current snapshot of the client that holds it.
type Result struct {
	Token  string // the token as presented
	Claims Claims
	Client *clientstore.Client
	Issuer string
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
	return contains(r.Claims.Audience, aud)
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
	c := r.Client
	return Response{
		Active:    true,
		Scope:     r.Claims.Scope,
		ClientID:  c.ID,
		Sub:       c.ID,
		TokenType: "Bearer",
		TokenUse:  "access_token",
		Exp:       r.Claims.ExpiresAt,
		Iat:       r.Claims.IssuedAt,
		Nbf:       r.Claims.IssuedAt,
		Aud:       r.Claims.Audience,
		Iss:       r.Issuer,
		Jti:       r.Claims.ID.String(),
		Ext:       c.Metadata,
		Client:    &ClientInfo{ClientID: c.ID, Name: c.Name, Owner: c.Owner, Metadata: c.Metadata},
	}
}
